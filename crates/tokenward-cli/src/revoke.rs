//! `tokenward revoke` and `tokenward check`: revocations in a Redis revocation store, the
//! one the applications' Guards read (same URL, same key prefix).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use tokenward_core::{IssuerScope, StoreId, TokenRef, UnixTime};
use tokenward_redis::{RedisConfig, RedisRevocationStore};
use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};

use crate::error::CliError;
use crate::escape::{escape_controls, escape_lines};
use crate::time::{human_duration, now_or, rfc3339};

/// How long a session or subject revocation lasts when --until is not given.
const DEFAULT_SPAN: u64 = 24 * 3600;

/// The largest clock leeway a tokenward verifier accepts, in seconds.
const MAX_LEEWAY_SECS: u64 = tokenward_claims::MAX_LEEWAY.as_secs();

/// Where the revocation store is. The URL may carry a password: prefer the environment
/// variable to the command line, where other users can see it (`ps`).
#[derive(Debug, clap::Args)]
pub(crate) struct RedisArgs {
    /// The Redis of the revocation store: `redis://[[user]:password@]host[:port][/db]`, or
    /// `rediss://…` for TLS (the platform's trust store, or --redis-ca).
    #[arg(
        long = "redis",
        value_name = "URL",
        env = "TOKENWARD_REDIS_URL",
        hide_env_values = true
    )]
    url: String,
    /// The key prefix the applications use (`tokenward:` is the default of every tokenward
    /// component, `RedisConfig::DEFAULT_KEY_PREFIX`, the demo's included). Both commands
    /// print the prefix they used.
    #[arg(long, value_name = "PREFIX", default_value = RedisConfig::DEFAULT_KEY_PREFIX)]
    prefix: String,
    /// How long to wait for Redis, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    timeout_ms: u64,
    /// With `rediss://`: trust exactly the CA certificates in this PEM file (a private CA)
    /// instead of the platform's trust store.
    #[arg(long = "redis-ca", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// With `rediss://`: a client certificate chain (PEM) for servers that require one
    /// (mutual TLS); needs --redis-client-key.
    #[arg(
        long = "redis-client-cert",
        value_name = "FILE",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,
    /// The private key (PEM) of --redis-client-cert.
    #[arg(
        long = "redis-client-key",
        value_name = "FILE",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,
    /// Work with a Redis whose maxmemory-policy may evict keys (refused otherwise: it
    /// silently forgets revocations when full).
    #[arg(long)]
    dangerous_allow_eviction: bool,
    /// --redis names seed nodes of a Redis Cluster: one `redis://host:port` URL or a
    /// comma-separated list, all `redis://` or all `rediss://` (then `--redis-ca` and the
    /// client certificate flags apply to every node). The startup check runs
    /// on every primary.
    #[arg(long = "redis-cluster")]
    cluster: bool,
}

impl RedisArgs {
    /// The store, after the startup check on `runtime` (Redis answers over TLS if asked,
    /// its `maxmemory-policy` does not evict unless --dangerous-allow-eviction).
    fn store(&self, runtime: &tokio::runtime::Runtime) -> Result<RedisRevocationStore, CliError> {
        let config = if self.cluster {
            let seeds = self.url.split(',').map(str::trim).filter(|u| !u.is_empty());
            RedisConfig::default().cluster(seeds)
        } else {
            RedisConfig::new(&self.url)
        };
        let mut config = config
            .key_prefix(&self.prefix)
            .operation_timeout(Duration::from_millis(self.timeout_ms))
            .dangerous_allow_eviction(self.dangerous_allow_eviction);
        config.tls_ca_file.clone_from(&self.ca);
        config.tls_client_cert_file.clone_from(&self.client_cert);
        config.tls_client_key_file.clone_from(&self.client_key);
        let store = RedisRevocationStore::connect(&config)?;
        let check = runtime.block_on(store.backend().check_server())?;
        let endpoint = escape_controls(store.backend().endpoint());
        let warning = match check.maxmemory_policy.as_deref() {
            None => Some(
                "cannot read maxmemory-policy (CONFIG is renamed, disabled or denied); make \
                 sure it is noeviction"
                    .to_owned(),
            ),
            Some("noeviction") => None,
            Some(policy) => Some(format!(
                "maxmemory-policy is {}: Redis may evict revocations when full \
                 (--dangerous-allow-eviction)",
                escape_controls(policy)
            )),
        };
        if let Some(warning) = warning {
            let _ = writeln!(
                std::io::stderr().lock(),
                "tokenward: warning: redis at {endpoint}: {warning}"
            );
        }
        Ok(store)
    }

    /// The line of human output that names the key prefix: a revocation under another prefix
    /// than the applications' is one they never see.
    fn prefix_line(&self) -> String {
        format!("redis key prefix: {}", escape_controls(&self.prefix))
    }
}

/// Whose tokens: revocations are kept per issuer, as the Guard looks them up (tenant A's
/// `alice` is not tenant B's).
#[derive(Debug, clap::Args)]
pub(crate) struct IssuerArgs {
    /// The issuer (`iss` claim, exactly as in the tokens) of the tokens to revoke or check.
    #[arg(long = "iss", value_name = "ISS", env = "TOKENWARD_ISSUER")]
    iss: String,
}

impl IssuerArgs {
    fn scope(&self) -> IssuerScope {
        IssuerScope::new(&self.iss)
    }

    /// `flag`'s id in this issuer's scope: a usage error names the flag otherwise (the value
    /// may be a pasted token; it is not echoed).
    fn id(&self, flag: &str, value: &str) -> Result<StoreId<'static>, CliError> {
        self.scope()
            .id(value)
            .map_err(|e| CliError::Usage(format!("{flag}: {e}")))
    }

    /// The line of human output that names the issuer.
    fn issuer_line(&self) -> String {
        format!(
            "issuer: {} (key tag {})",
            escape_controls(&self.iss),
            self.scope().tag()
        )
    }
}

/// Revoke a token (--jti), a session (--sid) or every token of a user (--sub) until a time.
///
/// Revocations only ever extend: revoking again with an earlier --until (or an earlier
/// --before) changes nothing. Times are seconds since the Unix epoch. Prints what was
/// revoked until when, then `redis key prefix: PREFIX`. Exit status: 0 when revoked (or
/// nothing was left to revoke), 2 on a usage or connection error.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["jti", "sid", "sub"]))]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    issuer: IssuerArgs,
    /// Revoke the token with this jti (needs --exp).
    #[arg(long, value_name = "JTI", requires = "exp")]
    jti: Option<String>,
    /// The token's exp: the revocation lasts until then plus 5 minutes (verifiers accept a
    /// token for their clock leeway after its exp).
    #[arg(long, value_name = "UNIX", requires = "jti")]
    exp: Option<u64>,
    /// Revoke every token of this session (refresh-token family).
    #[arg(long, value_name = "SID")]
    sid: Option<String>,
    /// Revoke every token of this subject issued before --before ("sign out everywhere").
    #[arg(long, value_name = "SUB")]
    sub: Option<String>,
    /// With --sub: the cutoff; tokens with iat < BEFORE (or without iat) are revoked.
    /// Default: now + --leeway + 1 s, so tokens issued in the current second are included,
    /// and so are those of an issuer whose clock runs up to the leeway ahead (verifiers
    /// accept an iat that far in the future). A token issued after the revocation but before
    /// the cutoff is refused too: the user signs in again after the leeway. (An application
    /// that knows the user's sessions revokes them by --sid instead, and a new login works
    /// at once.)
    #[arg(long, value_name = "UNIX", requires = "sub")]
    before: Option<u64>,
    /// With --sub and no --before: the verifiers' clock leeway, in seconds (tokenward's
    /// default is 30, at most 300).
    #[arg(long, value_name = "SECS", default_value_t = 30, requires = "sub")]
    leeway: u64,
    /// With --sid/--sub: how long the revocation lasts; make it at least the exp of the
    /// newest token it must catch. Default: --sid now + 24 h, --sub BEFORE + 24 h.
    #[arg(long, value_name = "UNIX", conflicts_with = "jti")]
    until: Option<u64>,
}

/// Tell whether a token with these parts would be rejected as revoked, and by which rule.
///
/// Prints `active`, or `revoked by token`, `revoked by session` or
/// `revoked by subject (cutoff T)`, then `redis key prefix: PREFIX`. Exit status: 0 active,
/// 1 revoked, 2 on a usage or connection error.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("parts").required(true).multiple(true).args(["jti", "sid", "sub"]))]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    issuer: IssuerArgs,
    /// The token's jti.
    #[arg(long, value_name = "JTI")]
    jti: Option<String>,
    /// The token's sid.
    #[arg(long, value_name = "SID")]
    sid: Option<String>,
    /// The token's sub.
    #[arg(long, value_name = "SUB")]
    sub: Option<String>,
    /// The token's iat. Without it, any cutoff of the subject matches (a token without iat
    /// cannot prove it is newer).
    #[arg(long, value_name = "UNIX", requires = "sub")]
    iat: Option<u64>,
    /// The token's exp (informational: revocations are looked up by id).
    #[arg(long, value_name = "UNIX")]
    exp: Option<u64>,
    /// Answer as JSON: {"revoked":false} or {"revoked":true,"rule":"token|session|subject"},
    /// with "before":T (the cutoff) for the subject rule, and "key_prefix" (the prefix the
    /// answer was looked up under).
    #[arg(long)]
    json: bool,
}

pub(crate) fn run_revoke(args: &RevokeArgs) -> Result<ExitCode, CliError> {
    if args.before.is_some() && args.sub.is_none() {
        return Err(CliError::Usage("--before only applies to --sub".into()));
    }
    let runtime = runtime()?;
    let store = args.redis.store(&runtime)?;
    let now = now_or(None);
    let (what, until) = match (&args.jti, &args.sid, &args.sub) {
        (Some(jti), _, _) => {
            let exp = args
                .exp
                .ok_or_else(|| CliError::Usage("--jti needs --exp".into()))?;
            // Past exp by the verifiers' leeway, during which the token still verifies.
            let until = tokenward_revocation::revoke_until(UnixTime::from_secs(exp));
            let jti_id = args.issuer.id("--jti", jti)?;
            runtime.block_on(store.revoke_token(&jti_id, until))?;
            (format!("token {jti:?}"), until.as_secs())
        }
        (None, Some(sid), _) => {
            let until = args.until.unwrap_or(now.saturating_add(DEFAULT_SPAN));
            let sid_id = args.issuer.id("--sid", sid)?;
            runtime.block_on(store.revoke_session(&sid_id, UnixTime::from_secs(until)))?;
            (format!("session {sid:?}"), until)
        }
        (None, None, Some(sub)) => {
            if args.leeway > MAX_LEEWAY_SECS {
                return Err(CliError::Usage(format!(
                    "--leeway: {} s is more than verifiers accept ({MAX_LEEWAY_SECS} s)",
                    args.leeway
                )));
            }
            let before = args
                .before
                .unwrap_or(now.saturating_add(args.leeway).saturating_add(1));
            let until = args.until.unwrap_or(before.saturating_add(DEFAULT_SPAN));
            runtime.block_on(store.revoke_subject(
                &args.issuer.id("--sub", sub)?,
                UnixTime::from_secs(before),
                UnixTime::from_secs(until),
            ))?;
            let what = format!(
                "every token of subject {sub:?} issued before {} ({before})",
                rfc3339(before)
            );
            (what, until)
        }
        (None, None, None) => {
            return Err(CliError::Usage("give --jti, --sid or --sub".into()));
        }
    };
    let mut text = String::new();
    if until <= now {
        let _ = write!(
            text,
            "nothing to revoke: {what} would have been revoked until {} ({until}), which has \
             passed; no token it could match is still valid",
            rfc3339(until)
        );
    } else {
        let _ = write!(
            text,
            "revoked {what} until {} ({until}, in {})",
            rfc3339(until),
            human_duration(until - now)
        );
    }
    let _ = write!(
        text,
        "\n{}\n{}",
        args.issuer.issuer_line(),
        args.redis.prefix_line()
    );
    let text = escape_lines(&text);
    writeln!(std::io::stdout().lock(), "{text}").map_err(CliError::Output)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct CheckAnswer<'a> {
    revoked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<u64>,
    /// The key prefix the answer was looked up under.
    key_prefix: &'a str,
    /// The issuer whose ids were looked up.
    iss: &'a str,
}

pub(crate) fn run_check(args: &CheckArgs) -> Result<ExitCode, CliError> {
    if args.iat.is_some() && args.sub.is_none() {
        return Err(CliError::Usage(
            "--iat only matters with --sub (the subject rule)".into(),
        ));
    }
    let runtime = runtime()?;
    let store = args.redis.store(&runtime)?;
    let token = TokenRef {
        jti: args
            .jti
            .as_deref()
            .map(|v| args.issuer.id("--jti", v))
            .transpose()?,
        sid: args
            .sid
            .as_deref()
            .map(|v| args.issuer.id("--sid", v))
            .transpose()?,
        sub: args
            .sub
            .as_deref()
            .map(|v| args.issuer.id("--sub", v))
            .transpose()?,
        iat: args.iat.map(UnixTime::from_secs),
        exp: UnixTime::from_secs(args.exp.unwrap_or_else(|| now_or(None))),
    };
    let status = runtime.block_on(store.check(&token))?;
    let answer = match status {
        RevocationStatus::Revoked(by) => CheckAnswer {
            revoked: true,
            rule: Some(by.as_str()),
            before: match by {
                RevokedBy::Subject { before } => Some(cutoff_secs(before)),
                _ => None,
            },
            key_prefix: &args.redis.prefix,
            iss: &args.issuer.iss,
        },
        _ => CheckAnswer {
            revoked: false,
            rule: None,
            before: None,
            key_prefix: &args.redis.prefix,
            iss: &args.issuer.iss,
        },
    };
    let text = if args.json {
        serde_json::to_string(&answer).map_err(|e| CliError::Output(std::io::Error::other(e)))?
    } else {
        let answer = match (answer.rule, answer.before) {
            (None, _) => "active".to_owned(),
            (Some(rule), None) => format!("revoked by {rule}"),
            (Some(rule), Some(before)) => {
                format!("revoked by {rule} (cutoff {before}, {})", rfc3339(before))
            }
        };
        escape_lines(&format!(
            "{answer}\n{}\n{}",
            args.issuer.issuer_line(),
            args.redis.prefix_line()
        ))
    };
    writeln!(std::io::stdout().lock(), "{text}").map_err(CliError::Output)?;
    Ok(if answer.revoked {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A subject cutoff in whole seconds, rounded up: for the whole-second `iat`s of JWTs,
/// `iat < ceil(cutoff)` is exactly the store's rule `iat < cutoff`.
fn cutoff_secs(before: UnixTime) -> u64 {
    before.as_millis().div_ceil(1000)
}

/// A current-thread runtime for the startup check and the one store call of a command (only
/// these commands need one). The store's connections live on it, so each command builds
/// exactly one.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_round_up_to_whole_seconds() {
        for (ms, secs) in [
            (0, 0),
            (1_000, 1),
            (1_001, 2),
            (1_800_000_000_000, 1_800_000_000),
        ] {
            assert_eq!(cutoff_secs(UnixTime::from_millis(ms)), secs, "{ms} ms");
        }
    }
}
