//! What operators see, on the demo *binary* (a process of its own, so its metrics are only
//! this test's requests — the recorder is process-wide): `GET /metrics` counts every
//! decision under its exact labels, and `--log-format json` writes one JSON object per line
//! on stderr, the audit events with target `tokenward::audit`.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokenward_demo::client::Client;

use crate::common::login;

/// A running `tokenward-demo --log-format json`, its stderr lines collected; killed on drop.
pub(crate) struct DemoProcess {
    child: Child,
    pub(crate) lines: Arc<Mutex<Vec<String>>>,
    pub(crate) url: String,
}

impl DemoProcess {
    fn start() -> DemoProcess {
        Self::start_with(&[])
    }

    /// The demo with `extra` arguments.
    pub(crate) fn start_with(extra: &[&str]) -> DemoProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokenward-demo"))
            .args(["--bind", "127.0.0.1:0", "--log-format", "json"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut demo = DemoProcess {
            child,
            lines,
            url: String::new(),
        };
        let listening = demo.wait_for(|v| v["fields"]["message"] == "listening");
        let addr = listening["fields"]["addr"].as_str().unwrap().to_owned();
        demo.url = format!("http://{addr}");
        demo
    }

    /// Every stderr line so far, each parsed as JSON (a line that is not JSON fails).
    pub(crate) fn json_lines(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// The first line matching `pred`, waiting up to 20 s for it.
    pub(crate) fn wait_for(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = self.json_lines().into_iter().find(|v| pred(v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no such line in:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The samples of a Prometheus text: `name{label="value",...}` (labels sorted) → value.
pub(crate) fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let key = match series.split_once('{') {
            Some((name, labels)) => {
                let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                labels.sort();
                format!("{name}{{{}}}", labels.join(","))
            }
            None => series.to_owned(),
        };
        out.insert(key, value.parse().unwrap());
    }
    out
}

#[tokio::test]
async fn metrics_count_the_decisions_and_json_logs_carry_the_audit_target() {
    let demo = DemoProcess::start();
    let base = demo.url.as_str();
    let client = Client::new();
    let alice = login(&client, base, "alice", "alice-password")
        .await
        .unwrap();
    assert_eq!(alice.status, 200);
    let alice = alice.str_field("access_token").unwrap();
    let bob = login(&client, base, "bob", "bob-password").await.unwrap();
    let bob = bob.str_field("access_token").unwrap();
    // Alice's header and claims with Bob's signature: forged.
    let (alice_signed, _) = alice.rsplit_once('.').unwrap();
    let (_, bob_signature) = bob.rsplit_once('.').unwrap();
    let forged = format!("{alice_signed}.{bob_signature}");

    for _ in 0..3 {
        let r = client
            .get(&format!("{base}/me"), Some(&alice))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    for _ in 0..2 {
        let r = client
            .get(&format!("{base}/me"), Some(&forged))
            .await
            .unwrap();
        assert_eq!(r.status, 401);
    }
    let r = client.get(&format!("{base}/me"), None).await.unwrap();
    assert_eq!(r.status, 401);
    let auth = format!("Bearer {alice}");
    let r = client
        .post(&format!("{base}/logout"), &[("authorization", &auth)], None)
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let r = client
        .get(&format!("{base}/me"), Some(&alice))
        .await
        .unwrap();
    assert_eq!(r.status, 401);

    let r = client.get(&format!("{base}/metrics"), None).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type").unwrap().starts_with("text/plain"),
        "{:?}",
        r.header("content-type")
    );
    let text = r.text();
    let s = samples(&text);
    let decisions: BTreeMap<&str, f64> = s
        .iter()
        .filter(|(k, _)| k.starts_with("tokenward_decisions_total{"))
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    // 3 × /me and the logout allowed; 2 forged, 1 without a token, 1 revoked after logout.
    let expected = BTreeMap::from([
        (
            r#"tokenward_decisions_total{class="missing_token",outcome="denied"}"#,
            1.0,
        ),
        (
            r#"tokenward_decisions_total{class="none",outcome="allowed"}"#,
            4.0,
        ),
        (
            r#"tokenward_decisions_total{class="revoked",outcome="denied"}"#,
            1.0,
        ),
        (
            r#"tokenward_decisions_total{class="signature",outcome="denied"}"#,
            2.0,
        ),
    ]);
    assert_eq!(decisions, expected, "{text}");
    assert_eq!(
        s[r#"tokenward_refresh_total{result="issued"}"#], 2.0,
        "{text}"
    );
    assert_eq!(
        s[r#"tokenward_guard_seconds_count{outcome="allowed"}"#], 4.0,
        "{text}"
    );
    assert_eq!(
        s[r#"tokenward_guard_seconds_count{outcome="denied"}"#], 4.0,
        "{text}"
    );
    // The in-memory stores. No client is banned, so the ban check before each Guard decision
    // and each login is answered at once, without a store call: no `ban` sample. The
    // revocation check of each verified token is one (3 × /me, the logout, the revoked /me).
    assert!(
        !s.contains_key(r#"tokenward_store_seconds_count{check="ban"}"#),
        "{text}"
    );
    assert_eq!(
        s[r#"tokenward_store_seconds_count{check="revocation"}"#], 5.0,
        "{text}"
    );
    // A ban record for each forged token.
    assert_eq!(
        s[r#"tokenward_store_seconds_count{check="ban_record"}"#], 2.0,
        "{text}"
    );
    assert!(text.contains("# HELP tokenward_decisions_total "), "{text}");
    assert!(
        text.contains("# TYPE tokenward_store_seconds histogram"),
        "{text}"
    );
    // Nothing that identifies a user or a client.
    for secret in ["alice", "bob", "127.0.0.1", alice.as_str(), bob_signature] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    // The JSON logs: every line parses; the allowed /me is an audit event inside the
    // Guard's span.
    let allowed = demo.wait_for(|v| {
        v["target"] == "tokenward::audit"
            && v["fields"]["decision"] == "allow"
            && v["fields"]["path"] == "/me"
    });
    assert_eq!(allowed["level"], "INFO", "{allowed}");
    assert_eq!(allowed["fields"]["sub"], "alice", "{allowed}");
    assert_eq!(allowed["fields"]["client_ip"], "127.0.0.1", "{allowed}");
    assert_eq!(
        allowed["span"]["name"], "tokenward.authenticate",
        "{allowed}"
    );
    assert_eq!(allowed["span"]["url.path"], "/me", "{allowed}");
    assert_eq!(allowed["span"]["enduser.id"], "alice", "{allowed}");
    let denied = demo
        .wait_for(|v| v["target"] == "tokenward::audit" && v["fields"]["reason"] == "signature");
    assert_eq!(denied["level"], "WARN", "{denied}");
    assert_eq!(denied["fields"]["decision"], "deny", "{denied}");
    // The token is never logged, in any line.
    let all = demo.lines.lock().unwrap().join("\n");
    assert!(!all.contains(bob_signature), "{all}");
}
