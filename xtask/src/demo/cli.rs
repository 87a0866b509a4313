//! The demo's command-line steps: `tokenward keygen` writes the keys the API uses, and at the
//! end `tokenward issue` / `verify` show the same keys accepting a token and rejecting a
//! tampered, an expired, a misdirected and an unsigned one, each with its typed class.

use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Demo, strings};
use crate::{Result, cmd};

const KID: &str = "demo-2026-11";
const ISS: &str = "https://auth.demo.example";
const AUD: &str = "orders-api";
/// The issued token's lifetime, in seconds.
const TTL: u64 = 900;

/// What a step must produce.
enum Expect {
    /// Exit status 0.
    Success,
    /// `verify --json`: exit 0 and a `{"valid":true,...}` line.
    Valid,
    /// `verify --json`: exit 1 and a rejection of this class.
    Rejected(&'static str),
}

impl Expect {
    /// Whether a step that exited with `code` and printed `stdout` did what was expected.
    fn is_met(&self, code: Option<i32>, stdout: &str) -> bool {
        // `verify --json` prints one JSON object per token: `{"valid":true,"claims":{...}}`
        // or `{"valid":false,"class":"...","reason":"..."}`.
        let answer = || {
            let line = stdout.lines().next()?;
            serde_json::from_str::<serde_json::Value>(line).ok()
        };
        match self {
            Expect::Success => code == Some(0),
            Expect::Valid => {
                code == Some(0) && answer().is_some_and(|a| a.get("valid") == Some(&true.into()))
            }
            Expect::Rejected(class) => {
                code == Some(1)
                    && answer().is_some_and(|a| {
                        a.get("valid") == Some(&false.into())
                            && a.get("class").and_then(|c| c.as_str()) == Some(*class)
                    })
            }
        }
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Success => f.write_str("exit 0"),
            Expect::Valid => f.write_str("valid, exit 0"),
            Expect::Rejected(class) => write!(f, "rejected with class `{class}`, exit 1"),
        }
    }
}

/// One `tokenward verify` step.
struct Check {
    what: &'static str,
    /// A line under the header that says what the token is.
    note: Option<String>,
    args: Vec<String>,
    /// The name the transcript shows for the token (`TOKEN`, ...), and the token.
    token: (&'static str, String),
    expect: Expect,
}

/// The `verify` steps for `token`, issued at `now` by the `issue` step: it verifies, and
/// its tampered, expired, misdirected and unsigned variants are rejected with their class.
fn verify_checks(token: &str, now: u64) -> Result<Vec<Check>> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("`tokenward issue` printed no JWS: {token:?}").into());
    };
    // An attacker edits the claims and keeps the signature.
    let claims = String::from_utf8(
        URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| "the issued token's payload is not base64url")?,
    )?;
    if !claims.contains(r#""sub":"alice""#) {
        return Err(format!("unexpected claims in the issued token: {claims}").into());
    }
    let forged_claims = claims.replace(r#""sub":"alice""#, r#""sub":"admin""#);
    let tampered = format!(
        "{header}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(forged_claims.as_bytes())
    );
    // An attacker drops the signature and says none is needed.
    let none_header = format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{KID}"}}"#);
    let unsigned = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(none_header.as_bytes())
    );

    let verify = |aud: &str, extra: &[&str], token: &str| {
        let mut args = strings(&[
            "verify",
            "--jwks",
            "keys/jwks.json",
            "--iss",
            ISS,
            "--aud",
            aud,
            "--json",
        ]);
        args.extend(strings(extra));
        args.push(token.to_owned());
        args
    };
    let later = (now + TTL + 60).to_string();
    Ok(vec![
        Check {
            what: "Verify it: the key pins the algorithm; issuer, audience, lifetime, typ all \
                   checked",
            note: None,
            args: verify(AUD, &[], token),
            token: ("TOKEN", token.to_owned()),
            expect: Expect::Valid,
        },
        Check {
            what: "Tampered token: `sub` changed from alice to admin, original signature kept",
            note: Some(format!(
                "TAMPERED = TOKEN with its claims edited to {forged_claims}"
            )),
            args: verify(AUD, &[], &tampered),
            token: ("TAMPERED", tampered),
            expect: Expect::Rejected("signature"),
        },
        Check {
            what: "Expired token: the same token verified 16 minutes after it was issued \
                   (--now; past exp and the 30 s leeway)",
            note: None,
            args: verify(AUD, &["--now", &later], token),
            token: ("TOKEN", token.to_owned()),
            expect: Expect::Rejected("expired"),
        },
        Check {
            what: "Wrong audience: alice's orders-api token presented to admin-api",
            note: None,
            args: verify("admin-api", &[], token),
            token: ("TOKEN", token.to_owned()),
            expect: Expect::Rejected("audience"),
        },
        Check {
            what: "`alg: none` forgery: an unsigned token with alice's claims",
            note: Some(format!(
                "UNSIGNED = header {none_header} + TOKEN's claims + an empty signature"
            )),
            args: verify(AUD, &[], &unsigned),
            token: ("UNSIGNED", unsigned),
            expect: Expect::Rejected("algorithm"),
        },
    ])
}

impl Demo {
    /// The first step: the key directory the servers and the CLI steps use.
    pub(super) fn keygen(&mut self) -> Result {
        println!("== Keys ==\n");
        self.exec(
            "Generate an EdDSA signing key: the private key stays here, jwks.json is what \
             verifying services get",
            None,
            &["keygen", "--alg", "EdDSA", "--kid", KID, "--out", "keys"],
            &[],
            &Expect::Success,
        )?;
        Ok(())
    }

    /// The last steps: a token issued and checked from the command line.
    pub(super) fn cli(&mut self) -> Result {
        println!("== The same keys from the command line ==\n");
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let issued = self.exec(
            "Issue a 15-minute access token for alice (random jti, kid and typ headers); call it TOKEN",
            None,
            &[
                "issue",
                "--keys",
                "keys",
                "--iss",
                ISS,
                "--aud",
                AUD,
                "--sub",
                "alice",
                "--sid",
                "session-1",
                "--scope",
                "orders:read",
                "--ttl",
                &TTL.to_string(),
                "--now",
                &now.to_string(),
            ],
            &[],
            &Expect::Success,
        )?;
        for check in verify_checks(issued.trim_end(), now)? {
            let (name, token) = &check.token;
            self.exec(
                check.what,
                check.note.as_deref(),
                &check.args,
                &[(name, token.as_str())],
                &check.expect,
            )?;
        }
        Ok(())
    }

    /// Runs one `tokenward` step, prints it (each argument equal to one of `vars` shown as
    /// `"$NAME"`), and records a failure if the result is not `expect`. Returns stdout; an
    /// error only when the tool cannot be run or a setup step (`Expect::Success`) fails:
    /// later steps depend on it.
    fn exec<S: AsRef<str>>(
        &mut self,
        what: &str,
        note: Option<&str>,
        args: &[S],
        vars: &[(&str, &str)],
        expect: &Expect,
    ) -> Result<String> {
        self.begin_step(what);
        if let Some(note) = note {
            println!("  {note}");
        }
        println!("  $ tokenward {}", shown(args, vars));
        let output = Command::new(&self.bin)
            .args(args.iter().map(AsRef::as_ref))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run {}: {e}", self.bin.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        for line in stdout.lines() {
            println!("  | {}", abbreviate(line));
        }
        for line in stderr.lines() {
            println!("  ! {line}");
        }
        let code = output.status.code();
        let status = code.map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}"));
        if expect.is_met(code, &stdout) {
            println!("  => as expected: {expect}\n");
        } else {
            println!("  => UNEXPECTED: wanted {expect}, got {status}\n");
            let failure = format!("step {} ({what}): wanted {expect}, got {status}", self.step);
            if matches!(expect, Expect::Success) {
                return Err(failure.into());
            }
            self.failures.push(failure);
        }
        Ok(stdout)
    }
}

/// `args` as the transcript shows them: shell words, an argument equal to one of `vars`
/// as `"$NAME"`.
fn shown<S: AsRef<str>>(args: &[S], vars: &[(&str, &str)]) -> String {
    args.iter()
        .map(|arg| {
            let arg = arg.as_ref();
            match vars.iter().find(|(_, value)| *value == arg) {
                Some((name, _)) => format!("\"${name}\""),
                None => cmd::shell_quote(arg),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A line of output with long tokens shortened, so the transcript stays readable.
fn abbreviate(line: &str) -> String {
    line.split(' ')
        .map(|word| {
            let jws_like = word.matches('.').count() == 2
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if word.len() > 60 && jws_like {
                let head: String = word.chars().take(24).collect();
                format!("{head}…({} bytes)", word.len())
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token as `tokenward issue` prints it (the signature is not checked here).
    fn issued(claims: &str) -> String {
        let header = r#"{"alg":"EdDSA","typ":"at+jwt","kid":"demo-2026-11"}"#;
        format!(
            "{}.{}.c2lnbmF0dXJl",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    fn decoded(part: &str) -> String {
        String::from_utf8(URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn verify_checks_are_the_token_and_its_forgeries() {
        let claims = r#"{"iss":"https://auth.demo.example","sub":"alice","exp":1900}"#;
        let token = issued(claims);
        let checks = verify_checks(&token, 1_000).unwrap();
        let base = "verify --jwks keys/jwks.json --iss https://auth.demo.example --aud";
        let lines: Vec<(String, &str, String)> = checks
            .iter()
            .map(|c| {
                let line = shown(&c.args, &[(c.token.0, c.token.1.as_str())]);
                (line, c.token.0, c.expect.to_string())
            })
            .collect();
        assert_eq!(
            lines,
            [
                (
                    format!("{base} orders-api --json \"$TOKEN\""),
                    "TOKEN",
                    "valid, exit 0".to_owned()
                ),
                (
                    format!("{base} orders-api --json \"$TAMPERED\""),
                    "TAMPERED",
                    "rejected with class `signature`, exit 1".to_owned()
                ),
                (
                    format!("{base} orders-api --json --now 1960 \"$TOKEN\""),
                    "TOKEN",
                    "rejected with class `expired`, exit 1".to_owned()
                ),
                (
                    format!("{base} admin-api --json \"$TOKEN\""),
                    "TOKEN",
                    "rejected with class `audience`, exit 1".to_owned()
                ),
                (
                    format!("{base} orders-api --json \"$UNSIGNED\""),
                    "UNSIGNED",
                    "rejected with class `algorithm`, exit 1".to_owned()
                ),
            ]
        );
        for check in &checks {
            assert_eq!(check.args.last(), Some(&check.token.1));
        }

        // The tampered token: the original header and signature, `sub` edited.
        let original: Vec<&str> = token.split('.').collect();
        let tampered: Vec<&str> = checks[1].token.1.split('.').collect();
        let forged = claims.replace("alice", "admin");
        assert_eq!(tampered.len(), 3);
        assert_eq!((tampered[0], tampered[2]), (original[0], original[2]));
        assert_eq!(decoded(tampered[1]), forged);
        assert_eq!(
            checks[1].note.as_deref(),
            Some(format!("TAMPERED = TOKEN with its claims edited to {forged}").as_str())
        );
        // The unsigned one: an `alg: none` header, the original claims, no signature.
        let unsigned: Vec<&str> = checks[4].token.1.split('.').collect();
        assert_eq!(
            decoded(unsigned[0]),
            r#"{"alg":"none","typ":"at+jwt","kid":"demo-2026-11"}"#
        );
        assert_eq!((unsigned[1], unsigned[2]), (original[1], ""));
    }

    #[test]
    fn verify_checks_refuse_what_issue_should_not_print() {
        for (token, error) in [
            (
                "a.b".to_owned(),
                "`tokenward issue` printed no JWS: \"a.b\"",
            ),
            (
                "a.b.c.d".to_owned(),
                "`tokenward issue` printed no JWS: \"a.b.c.d\"",
            ),
            (
                "a.b+c.d".to_owned(),
                "the issued token's payload is not base64url",
            ),
            (
                issued(r#"{"sub":"bob"}"#),
                r#"unexpected claims in the issued token: {"sub":"bob"}"#,
            ),
        ] {
            let err = verify_checks(&token, 0).err().unwrap();
            assert_eq!(err.to_string(), error, "{token}");
        }
    }

    #[test]
    fn verify_answers_are_judged_on_exit_code_valid_and_class() {
        let valid = r#"{"valid":true,"claims":{"sub":"alice","class":"x"}}"#;
        let rejected = r#"{"valid":false,"class":"signature","reason":"InvalidSignature"}"#;
        for (expect, code, stdout, met) in [
            (Expect::Success, Some(0), "", true),
            (Expect::Success, Some(1), "", false),
            (Expect::Success, None, "", false),
            (Expect::Valid, Some(0), valid, true),
            (Expect::Valid, Some(1), valid, false),
            (Expect::Valid, Some(0), rejected, false),
            (Expect::Valid, Some(0), "valid", false),
            (Expect::Rejected("signature"), Some(1), rejected, true),
            (Expect::Rejected("expired"), Some(1), rejected, false),
            (Expect::Rejected("signature"), Some(0), rejected, false),
            (Expect::Rejected("signature"), Some(1), valid, false),
            (Expect::Rejected("signature"), Some(1), "", false),
        ] {
            assert_eq!(
                expect.is_met(code, stdout),
                met,
                "{expect} {code:?} {stdout}"
            );
        }
        assert_eq!(
            Expect::Rejected("audience").to_string(),
            "rejected with class `audience`, exit 1"
        );
    }

    #[test]
    fn transcript_shows_variables_and_quotes_the_rest() {
        assert_eq!(
            shown(
                &["verify", "--aud", "a b", "eyJ.x.y"],
                &[("TOKEN", "eyJ.x.y")]
            ),
            r#"verify --aud 'a b' "$TOKEN""#
        );
    }

    #[test]
    fn long_tokens_are_abbreviated() {
        let token = format!("{}.{}.{}", "a".repeat(30), "b".repeat(30), "c".repeat(30));
        let line = abbreviate(&format!("token: {token}"));
        assert_eq!(line, format!("token: {}…(92 bytes)", "a".repeat(24)));
        let json = r#"{"valid":true,"claims":{"iss":"https://auth.demo.example","sub":"alice"}}"#;
        assert_eq!(abbreviate(json), json);
    }
}
