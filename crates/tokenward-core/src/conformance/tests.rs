//! The harness's own tests.

use super::*;

#[test]
fn public_async_fns_are_found() {
    let src = "pub async fn alpha(env: Env) -> CaseResult {\n}\n    pub async fn beta_2(x: u8)\nasync fn private()\npub fn sync_helper()\n";
    assert_eq!(public_async_fns(&[src]), ["alpha", "beta_2"]);
}

#[test]
fn an_unlisted_case_is_an_error() {
    let src = "pub async fn alpha()\npub async fn beta()\n";
    assert!(check_cases_listed(&[src], &["alpha", "beta"]).is_ok());
    let err = check_cases_listed(&[src], &["alpha"]).unwrap_err();
    assert!(err.contains("`beta` is not in"), "{err}");
    let err = check_cases_listed(&[src], &["alpha", "beta", "gamma"]).unwrap_err();
    assert!(err.contains("`gamma` is listed but"), "{err}");
    let err = check_cases_listed(&[src], &["alpha", "beta", "beta"]).unwrap_err();
    assert!(err.contains("listed 2 times"), "{err}");
}

#[test]
fn a_suite_module_is_read_whole_or_is_an_error() {
    let dir = std::env::temp_dir().join(format!("suite-listed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("suite")).unwrap();
    std::fs::write(dir.join("suite.rs"), "pub async fn alpha()\n").unwrap();
    std::fs::write(dir.join("suite/more.rs"), "pub async fn beta()\n").unwrap();
    let module = dir.join("suite");
    assert!(check_suite_listed(&module, &["alpha", "beta"]).is_ok());
    let err = check_suite_listed(&module, &["alpha"]).unwrap_err();
    assert!(err.contains("`beta` is not in"), "{err}");
    let err = check_suite_listed(&dir.join("missing"), &["alpha"]).unwrap_err();
    assert!(err.contains("cannot be read"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn store_errors_are_found_through_sources() {
    #[derive(Debug)]
    struct Wrapper(StoreError);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("engine failed")
        }
    }
    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
    let direct: Result<(), StoreError> = Err(StoreError::corrupt("x"));
    let e = direct.step("check").unwrap_err();
    assert_eq!(
        e.store_error().map(StoreError::kind),
        Some(crate::StoreErrorKind::Corrupt)
    );
    assert!(e.to_string().starts_with("check failed: "), "{e}");
    let wrapped: Result<(), Wrapper> = Err(Wrapper(StoreError::invalid_input("y")));
    let e = wrapped.step("rotate").unwrap_err();
    assert_eq!(
        e.store_error().map(StoreError::kind),
        Some(crate::StoreErrorKind::InvalidInput)
    );
    assert!(ConformanceError::new("plain").store_error().is_none());
}

struct Counting {
    envs: std::sync::atomic::AtomicU32,
    teardowns: std::sync::atomic::AtomicU32,
}

#[async_trait]
impl Fixture<u32> for Counting {
    async fn env(&self, _case: &'static str) -> Result<u32, BoxError> {
        Ok(self.envs.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
    }
    async fn teardown(&self, _case: &'static str) -> Result<(), BoxError> {
        self.teardowns
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

static RUNNER: SuiteRuntime<Counting> = SuiteRuntime::new();

async fn setup() -> Result<Counting, BoxError> {
    Ok(Counting {
        envs: 0.into(),
        teardowns: 0.into(),
    })
}

#[test]
fn fixture_is_shared_and_torn_down_after_every_case() {
    use std::sync::atomic::Ordering::SeqCst;
    RUNNER
        .run_case("ok", setup, |_env| async { Ok(()) })
        .unwrap();
    let failed = RUNNER.run_case("fails", setup, |_env| async {
        Err(ConformanceError::new("expected failure"))
    });
    assert_eq!(failed.unwrap_err().to_string(), "expected failure");
    let panicked = std::panic::catch_unwind(|| {
        RUNNER.run_case("panics", setup, |_env| async { panic!("case panicked") })
    });
    let payload = panicked.unwrap_err();
    assert_eq!(panic_message(&*payload), "case panicked");
    let fixture = RUNNER.fixture.get().unwrap();
    assert_eq!(fixture.envs.load(SeqCst), 3);
    assert_eq!(fixture.teardowns.load(SeqCst), 3);
}
