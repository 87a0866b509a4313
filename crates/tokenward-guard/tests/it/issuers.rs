//! `profile` and `[[issuers]]` in the Guard's configuration: the parsing table (every key
//! source, profile names, errors naming their field, secrets never shown), and Guards built
//! from it — two issuers each verified only with its own keys, an Entra tenant template
//! restricted to listed tenants.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};

use tokenward_claims::{
    AccessToken, Algorithm, Key, KeySet, Profile, RejectionClass, TokenIssuer, generate_pkcs8,
};
use tokenward_guard::{AuthRequest, Credentials, Denial, Guard, GuardConfig, GuardStores};

fn parse(toml: &str) -> Result<GuardConfig, String> {
    toml::from_str::<GuardConfig>(toml).map_err(|e| e.to_string())
}

/// A file under the temporary directory, unique to this process and `name`.
fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tokenward-guard-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

/// A TOML string literal for `path`.
fn lit(path: &std::path::Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

const SECRET: &[u8] = b"a-32-byte-secret-for-issuer-aaaa";

/// Cargo sets this variable for every test run; its value (the package directory, over 32
/// bytes) serves as an HMAC secret without mutating the process environment.
const SECRET_ENV: &str = "CARGO_MANIFEST_DIR";

#[test]
fn every_key_source_and_profile_parses_and_validates() {
    let cases = [
        (r#"keys = { jwks_file = "keys.json" }"#, None),
        (
            r#"keys = { jwks_file = "keys.json", rsa_alg = "PS256" }"#,
            None,
        ),
        (
            r#"keys = { jwks_url = "https://idp.example/keys" }"#,
            Some(Profile::Okta),
        ),
        (
            r#"keys = { discovery = "https://idp.example" }"#,
            Some(Profile::Keycloak),
        ),
        (
            r#"keys = { hmac_secret_file = "/run/secrets/jwt" }"#,
            Some(Profile::Auth0),
        ),
        (
            r#"keys = { hmac_secret_env = "JWT_SECRET", hmac_alg = "HS512", kid = "rails" }"#,
            Some(Profile::Cognito),
        ),
    ];
    for (keys, profile) in cases {
        let profile_line = profile.map_or(String::new(), |p| format!("profile = \"{}\"", p.name()));
        let c = parse(&format!(
            "[[issuers]]\nissuer = \"https://idp.example\"\naudiences = [\"api\"]\n{profile_line}\n{keys}"
        ))
        .unwrap();
        assert_eq!(c.issuers[0].profile, profile, "{keys}");
        let remote = keys.contains("jwks_url") || keys.contains("discovery");
        match c.validate() {
            Ok(()) => assert!(!remote || cfg!(feature = "jwks"), "{keys}"),
            // Without the `jwks` feature a remote source is refused at startup, naming it.
            Err(e) => {
                assert!(remote && !cfg!(feature = "jwks"), "{keys}: {e}");
                assert_eq!(e.field, "issuers[0].keys");
            }
        }
    }
    for p in Profile::ALL {
        let c = parse(&format!(
            "profile = \"{}\"\n[validation]\nissuers = [\"https://login.microsoftonline.com/{{tenantid}}/v2.0\"]\naudiences = [\"api\"]",
            p.name()
        ))
        .unwrap();
        assert_eq!(c.profile, Some(p));
    }
}

#[test]
fn bad_issuer_entries_name_their_field() {
    let entry = |rest: &str| {
        format!("[[issuers]]\nissuer = \"https://a.example\"\naudiences = [\"api\"]\n{rest}")
    };
    let cases = [
        (entry("keys = {}"), "issuers[0].keys"),
        (
            entry(r#"keys = { jwks_file = "k.json", hmac_secret_env = "S" }"#),
            "issuers[0].keys",
        ),
        (
            entry(r#"keys = { jwks_file = "k.json", kid = "k1" }"#),
            "issuers[0].keys.kid",
        ),
        (
            entry(r#"keys = { hmac_secret_env = "S", hmac_alg = "RS256" }"#),
            "issuers[0].keys.hmac_alg",
        ),
        (
            entry(r#"keys = { jwks_file = "k.json", rsa_alg = "HS256" }"#),
            "issuers[0].keys.rsa_alg",
        ),
        (
            entry(r#"keys = { hmac_secret_env = "S", rsa_alg = "RS256" }"#),
            "issuers[0].keys.rsa_alg",
        ),
        (
            entry(r#"keys = { jwks_file = "k.json", dangerous_allow_http = true }"#),
            "issuers[0].keys.dangerous_allow_http",
        ),
        (
            "[[issuers]]\nissuer = \"https://a.example\"\naudiences = []\nkeys = { hmac_secret_env = \"S\" }"
                .to_owned(),
            "issuers[0].audiences",
        ),
        (
            format!(
                "[validation]\naudiences = [\"api\"]\n{}",
                entry(r#"keys = { hmac_secret_env = "S" }"#)
            ),
            "validation.audiences",
        ),
    ];
    for (toml, field) in cases {
        let e = parse(&toml).unwrap().validate().unwrap_err();
        assert_eq!(e.field, field, "{toml}\n{e}");
        assert!(e.to_string().contains(field));
    }
    // Serde errors name the field too: an unknown profile, an unknown key source.
    let e = parse(&entry(
        "profile = \"azure\"\nkeys = { hmac_secret_env = \"S\" }",
    ))
    .unwrap_err();
    assert!(e.contains("profile") && e.contains("azure"), "{e}");
    let e = parse("profile = \"azure\"\n[validation]\nissuers = [\"i\"]\naudiences = [\"a\"]")
        .unwrap_err();
    assert!(e.contains("profile") && e.contains("azure"), "{e}");
    let e = parse(&entry("keys = { pem_file = \"k.pem\" }")).unwrap_err();
    assert!(e.contains("pem_file"), "{e}");
}

#[tokio::test]
async fn secrets_are_never_in_errors_or_debug_output() {
    // A secret too short for HS512: refused, naming the field, without quoting it.
    let weak = b"short-but-secret-value";
    let path = temp_file("weak-secret", weak);
    let c = parse(&format!(
        "[[issuers]]\nissuer = \"https://a.example\"\naudiences = [\"api\"]\nkeys = {{ hmac_secret_file = {}, hmac_alg = \"HS512\" }}",
        lit(&path)
    ))
    .unwrap();
    let e = c.load_verifier(None).await.unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(e.field, "issuers[0].keys.hmac_secret_file");
    let shown = format!("{e} {e:?} {c:?}");
    assert!(!shown.contains("short-but-secret"), "{shown}");

    // A working secret from the environment: the Debug output of the config and the verifier
    // name the variable, never its value.
    let c = parse(&format!(
        "[[issuers]]\nissuer = \"https://a.example\"\naudiences = [\"api\"]\nkeys = {{ hmac_secret_env = \"{SECRET_ENV}\" }}"
    ))
    .unwrap();
    let verifier = c.load_verifier(None).await.unwrap();
    let value = std::env::var(SECRET_ENV).unwrap();
    let shown = format!("{c:?} {verifier:?}");
    assert!(
        shown.contains(SECRET_ENV) && !shown.contains(&value),
        "{shown}"
    );

    let c = parse(
        "[[issuers]]\nissuer = \"https://a.example\"\naudiences = [\"api\"]\nkeys = { hmac_secret_env = \"TOKENWARD_TEST_SURELY_UNSET_7f3a\" }",
    )
    .unwrap();
    let e = c.load_verifier(None).await.unwrap_err();
    assert_eq!(e.field, "issuers[0].keys.hmac_secret_env");
}

static NEXT_IP: AtomicU8 = AtomicU8::new(1);

/// The rejection class of `token` at `guard` (`None` when accepted), each call from its own
/// address so failures never add up to a ban.
async fn verdict(guard: &Guard, token: &str) -> Option<RejectionClass> {
    let ip: IpAddr = format!("198.51.100.{}", NEXT_IP.fetch_add(1, Ordering::Relaxed))
        .parse()
        .unwrap();
    let req = AuthRequest::new("GET", "/", ip, Credentials::Bearer(token));
    match guard.authenticate(&req).await {
        Ok(_) => None,
        Err(Denial::InvalidToken { class }) => Some(class),
        Err(other) => panic!("unexpected denial {other:?}"),
    }
}

async fn guard_from(toml: &str) -> Guard {
    parse(toml)
        .unwrap()
        .load_guard_builder(GuardStores::memory(), None)
        .await
        .unwrap()
        .build()
        .unwrap()
}

#[tokio::test]
async fn two_issuers_each_verify_only_with_their_own_keys() {
    // Issuer A: an HMAC secret from a file. Issuer B: an EdDSA key from a JWKS file.
    let a_keys = KeySet::single(Key::hmac("default", Algorithm::HS256, SECRET).unwrap());
    let pkcs8 = generate_pkcs8(Algorithm::EdDSA).unwrap();
    let b_keys = KeySet::single(Key::from_pkcs8_der("b-1", Algorithm::EdDSA, &pkcs8).unwrap());
    let secret = temp_file("a-secret", &[SECRET, b"\n"].concat());
    let jwks = temp_file("b-jwks.json", b_keys.public_jwks_json().unwrap().as_bytes());
    let guard = guard_from(&format!(
        "[[issuers]]\nissuer = \"https://a.example\"\naudiences = [\"api\"]\nkeys = {{ hmac_secret_file = {} }}\n\
         [[issuers]]\nissuer = \"https://b.example\"\naudiences = [\"api\"]\nkeys = {{ jwks_file = {} }}",
        lit(&secret),
        lit(&jwks)
    ))
    .await;
    std::fs::remove_file(&secret).unwrap();
    std::fs::remove_file(&jwks).unwrap();

    let token = |keys: &KeySet, iss: &str| {
        TokenIssuer::builder(keys.clone(), iss)
            .audience("api")
            .build()
            .unwrap()
            .issue(&AccessToken::new("alice"))
            .unwrap()
            .token
    };
    let cases = [
        (token(&a_keys, "https://a.example"), None),
        (token(&b_keys, "https://b.example"), None),
        // Each issuer's token signed with the other's key: the other key is not this
        // issuer's, whatever the token's `kid` says.
        (
            token(&b_keys, "https://a.example"),
            Some(RejectionClass::Key),
        ),
        (
            token(&a_keys, "https://b.example"),
            Some(RejectionClass::Key),
        ),
        (
            token(&a_keys, "https://c.example"),
            Some(RejectionClass::Issuer),
        ),
    ];
    for (i, (token, expected)) in cases.iter().enumerate() {
        assert_eq!(verdict(&guard, token).await, *expected, "case {i}");
    }
}

#[tokio::test]
async fn an_entra_tenant_template_accepts_only_listed_tenants() {
    const T1: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
    const T2: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let keys = KeySet::single(Key::hmac("default", Algorithm::HS256, SECRET).unwrap());
    let secret = temp_file("entra-secret", SECRET);
    // The same issuer as an `[[issuers]]` entry with its key source, and in the single-issuer
    // form (`[validation]`, keys given in code).
    let entry = guard_from(&format!(
        "profile = \"entra\"\n[[issuers]]\nissuer = \"https://login.microsoftonline.com/{{tenantid}}/v2.0\"\n\
         audiences = [\"api://orders\"]\ntenants = [\"{T1}\"]\nkeys = {{ hmac_secret_file = {} }}",
        lit(&secret)
    ))
    .await;
    std::fs::remove_file(&secret).unwrap();
    let single = parse(&format!(
        "profile = \"entra\"\n[validation]\nissuers = [\"https://login.microsoftonline.com/{{tenantid}}/v2.0\"]\n\
         audiences = [\"api://orders\"]\ntenants = [\"{T1}\"]"
    ))
    .unwrap()
    .guard_builder(keys.clone(), GuardStores::memory(), None)
    .unwrap()
    .build()
    .unwrap();

    let token = |iss_tenant: &str, tid: &str| {
        TokenIssuer::builder(
            keys.clone(),
            format!("https://login.microsoftonline.com/{iss_tenant}/v2.0"),
        )
        .audience("api://orders")
        .build()
        .unwrap()
        .issue_with(
            &AccessToken::new("alice"),
            &serde_json::json!({ "tid": tid }),
        )
        .unwrap()
        .token
    };
    let cases = [
        ("listed tenant", token(T1, T1), None),
        (
            "another tenant",
            token(T2, T2),
            Some(RejectionClass::Issuer),
        ),
        (
            "tid disagrees with iss",
            token(T1, T2),
            Some(RejectionClass::Issuer),
        ),
    ];
    for guard in [&entry, &single] {
        for (name, token, expected) in &cases {
            assert_eq!(verdict(guard, token).await, *expected, "{name}");
        }
    }
}

#[tokio::test]
async fn the_single_issuer_form_still_takes_its_keys_in_code() {
    let c = parse("[validation]\nissuers = [\"iss\"]\naudiences = [\"aud\"]").unwrap();
    // No [[issuers]]: no keys to load.
    assert_eq!(c.load_verifier(None).await.unwrap_err().field, "issuers");
    let keys = crate::common::keys();
    let guard = c
        .guard_builder(keys.clone(), GuardStores::memory(), None)
        .unwrap()
        .build()
        .unwrap();
    let token = crate::common::issuer(&keys)
        .issue(&AccessToken::new("bob"))
        .unwrap()
        .token;
    assert_eq!(verdict(&guard, &token).await, None);
    // [[issuers]] name their own keys: keys given in code are refused.
    let c = parse(&format!(
        "[[issuers]]\nissuer = \"iss\"\naudiences = [\"aud\"]\nkeys = {{ hmac_secret_env = \"{SECRET_ENV}\" }}"
    ))
    .unwrap();
    let e = c
        .guard_builder(keys, GuardStores::memory(), None)
        .unwrap_err();
    assert_eq!(e.field, "issuers");
}

/// A loopback issuer over plain HTTP: its discovery document (`issuer` = the base URL,
/// `jwks_uri` = `<base>/keys`) and `jwks`; every other path is 404. Returns the base URL.
async fn serve_issuer(jwks: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let discovery =
        serde_json::json!({ "issuer": base, "jwks_uri": format!("{base}/keys") }).to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&request);
            let path = line.split(' ').nth(1).unwrap_or("");
            let (status, body) = match path {
                "/.well-known/openid-configuration" => ("200 OK", discovery.as_str()),
                "/keys" => ("200 OK", jwks.as_str()),
                _ => ("404 Not Found", "{}"),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncache-control: max-age=300\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(response.as_bytes()).await;
        }
    });
    base
}

#[tokio::test]
async fn remote_key_sources_load_by_url_and_by_discovery() {
    let pkcs8 = generate_pkcs8(Algorithm::EdDSA).unwrap();
    let keys = KeySet::single(Key::from_pkcs8_der("r-1", Algorithm::EdDSA, &pkcs8).unwrap());
    let base = serve_issuer(keys.public_jwks_json().unwrap()).await;
    let token = TokenIssuer::builder(keys.clone(), base.clone())
        .audience("api")
        .build()
        .unwrap()
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token;
    let other = KeySet::single(Key::hmac("r-1", Algorithm::HS256, SECRET).unwrap());
    let forged = TokenIssuer::builder(other, base.clone())
        .audience("api")
        .build()
        .unwrap()
        .issue(&AccessToken::new("alice"))
        .unwrap()
        .token;
    for keys_line in [
        format!("keys = {{ jwks_url = \"{base}/keys\", dangerous_allow_http = true }}"),
        format!("keys = {{ discovery = \"{base}\", dangerous_allow_http = true }}"),
    ] {
        let guard = guard_from(&format!(
            "[[issuers]]\nissuer = \"{base}\"\naudiences = [\"api\"]\n{keys_line}"
        ))
        .await;
        assert_eq!(verdict(&guard, &token).await, None, "{keys_line}");
        assert_eq!(
            verdict(&guard, &forged).await,
            Some(RejectionClass::Algorithm),
            "{keys_line}"
        );
    }
    // Plain HTTP needs the dangerous_ switch: refused at startup, naming the source.
    let e = parse(&format!(
        "[[issuers]]\nissuer = \"{base}\"\naudiences = [\"api\"]\nkeys = {{ discovery = \"{base}\" }}"
    ))
    .unwrap()
    .load_verifier(None)
    .await
    .unwrap_err();
    assert_eq!(e.field, "issuers[0].keys.discovery", "{e}");
}
