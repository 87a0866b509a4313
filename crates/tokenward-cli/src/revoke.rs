//! `tokenward revoke` and `tokenward check`: revocations in the revocation store the
//! applications' Guards read — Redis (same URL, same key prefix), PostgreSQL (same schema),
//! or both (the hybrid deployment: PostgreSQL first, as the durable copy) — and
//! `revoke --import`, a Rails denylist export revoked in one command.

mod import;
mod stores;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use tokenward_core::{IssuerScope, StoreId, TokenRef, UnixTime};
use tokenward_revocation::{RevocationStatus, RevocationStore, RevokedBy};

use crate::error::CliError;
use crate::escape::{escape_controls, escape_lines};
use crate::time::{human_duration, now_or, rfc3339};

use self::stores::{Revocation, StoreArgs};

/// How long a session or subject revocation lasts when --until is not given.
const DEFAULT_SPAN: u64 = 24 * 3600;

/// The largest clock leeway a tokenward verifier accepts, in seconds.
const MAX_LEEWAY_SECS: u64 = tokenward_claims::MAX_LEEWAY.as_secs();

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

/// Revoke a token (--jti), a session (--sid) or every token of a user (--sub) until a time,
/// or import a denylist (--import).
///
/// The store is --redis, --postgres, or both (the hybrid deployment: PostgreSQL, the durable
/// copy, is written first, then Redis). Revocations only ever extend: revoking again with an
/// earlier --until (or an earlier --before) changes nothing, so re-running a command is
/// harmless. Times are seconds since the Unix epoch. Prints what was revoked until when, then
/// `issuer: ISS (key tag TAG)`, `redis key prefix: PREFIX` and/or `postgres schema: NAME`.
///
/// --import FILE reads a CSV export of a denylist table (devise-jwt's `jwt_denylist`):
/// `jti,exp` rows, a header row optional (with one, the `jti` and `exp` columns are found by
/// name among any others); `exp` in Unix seconds or as an ISO 8601 / SQL timestamp
/// (`2024-01-01T12:00:00Z`, `2024-01-01 12:00:00[.ffffff][+00]`; without a zone, UTC).
/// The whole file is checked first: any malformed row (listed with its line number) means
/// nothing is written. Rows whose token expired more than 5 minutes ago are skipped; a jti
/// named twice keeps its later exp; the rest are revoked until exp + 5 minutes. PostgreSQL
/// takes them in one transaction (all or none); Redis has no transaction over them, so a
/// failure midway leaves those written (run the same import again). Prints `rows: N`,
/// `imported: N`, `skipped (expired): N`, `duplicates: N`.
///
/// Exit status: 0 when revoked (or nothing was left to revoke), 2 on a usage, file or store
/// error (with both stores: also when Redis failed after PostgreSQL was written — the
/// message says so).
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["jti", "sid", "sub", "import"]))]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    stores: StoreArgs,
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
    #[arg(long, value_name = "UNIX", conflicts_with_all = ["jti", "import"])]
    until: Option<u64>,
    /// Revoke every token listed in a CSV denylist export (`jti,exp`; `-` reads standard
    /// input): see above. The ids are --iss's, like the tokens' own.
    #[arg(long, value_name = "FILE")]
    import: Option<PathBuf>,
}

/// Tell whether a token with these parts would be rejected as revoked, and by which rule.
///
/// Prints `active`, or `revoked by token`, `revoked by session` or
/// `revoked by subject (cutoff T)`, then `issuer: ISS (key tag TAG)` and
/// `redis key prefix: PREFIX` and/or `postgres schema: NAME`. With both --redis and
/// --postgres both are read: the first line ends with `(redis and postgres agree)`, or is
/// `stores disagree: redis: ANSWER; postgres: ANSWER` — the applications answer as Redis
/// does — and the command exits 2 saying what to do. A Redis without the hybrid's loaded
/// mark (emptied by a restart; the applications answer 503 until they have reloaded it from
/// PostgreSQL) is reported as such, with PostgreSQL's answer.
///
/// Exit status: 0 active, 1 revoked, 2 on a usage or connection error or when the stores
/// disagree.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("parts").required(true).multiple(true).args(["jti", "sid", "sub"]))]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    stores: StoreArgs,
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
    /// with "before":T (the cutoff) for the subject rule, "key_prefix" (the Redis prefix the
    /// answer was looked up under), "postgres_schema" (with --postgres) and "iss". With both
    /// stores, the top-level answer is Redis's (PostgreSQL's while Redis lacks the hybrid's
    /// loaded mark: "redis_loaded":false), and "redis" and "postgres" hold each store's
    /// answer ({"revoked":…,"rule":…,"before":…}) and "agree" whether they are the same.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run_revoke(args: &RevokeArgs) -> Result<ExitCode, CliError> {
    if args.before.is_some() && args.sub.is_none() {
        return Err(CliError::Usage("--before only applies to --sub".into()));
    }
    args.stores.check_usage()?;
    if let Some(path) = &args.import {
        return import::run(&args.stores, &args.issuer, path);
    }
    let now = now_or(None);
    let (what, revocation) = match (&args.jti, &args.sid, &args.sub) {
        (Some(jti), _, _) => {
            let exp = args
                .exp
                .ok_or_else(|| CliError::Usage("--jti needs --exp".into()))?;
            // Past exp by the verifiers' leeway, during which the token still verifies.
            let until = tokenward_revocation::revoke_until(UnixTime::from_secs(exp));
            let id = args.issuer.id("--jti", jti)?;
            (format!("token {jti:?}"), Revocation::Token(id, until))
        }
        (None, Some(sid), _) => {
            let until = args.until.unwrap_or(now.saturating_add(DEFAULT_SPAN));
            let id = args.issuer.id("--sid", sid)?;
            let until = UnixTime::from_secs(until);
            (format!("session {sid:?}"), Revocation::Session(id, until))
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
            let what = format!(
                "every token of subject {sub:?} issued before {} ({before})",
                rfc3339(before)
            );
            let revocation = Revocation::Subject {
                id: args.issuer.id("--sub", sub)?,
                before: UnixTime::from_secs(before),
                until: UnixTime::from_secs(until),
            };
            (what, revocation)
        }
        (None, None, None) => {
            return Err(CliError::Usage(
                "give --jti, --sid, --sub or --import".into(),
            ));
        }
    };
    let runtime = runtime()?;
    let stores = args.stores.connect(&runtime)?;
    runtime.block_on(stores.revoke(&revocation))?;
    let until = match &revocation {
        Revocation::Token(_, until)
        | Revocation::Session(_, until)
        | Revocation::Subject { until, .. } => until.as_secs(),
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
        "\n{}{}",
        args.issuer.issuer_line(),
        args.stores.where_lines()
    );
    let text = escape_lines(&text);
    writeln!(std::io::stdout().lock(), "{text}").map_err(CliError::Output)?;
    Ok(ExitCode::SUCCESS)
}

/// One store's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct Answer {
    revoked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<u64>,
}

impl Answer {
    fn of(status: RevocationStatus) -> Answer {
        match status {
            RevocationStatus::Revoked(by) => Answer {
                revoked: true,
                rule: Some(by.as_str()),
                before: match by {
                    RevokedBy::Subject { before } => Some(cutoff_secs(before)),
                    _ => None,
                },
            },
            _ => Answer {
                revoked: false,
                rule: None,
                before: None,
            },
        }
    }

    /// `active`, `revoked by token`, `revoked by subject (cutoff T, DATE)`.
    fn text(self) -> String {
        match (self.rule, self.before) {
            (None, _) => "active".to_owned(),
            (Some(rule), None) => format!("revoked by {rule}"),
            (Some(rule), Some(before)) => {
                format!("revoked by {rule} (cutoff {before}, {})", rfc3339(before))
            }
        }
    }
}

/// `check --json`. The fields of one answer come first, as before there were two stores.
#[derive(Serialize)]
struct CheckAnswer<'a> {
    #[serde(flatten)]
    answer: Answer,
    /// The key prefix the answer was looked up under (with Redis).
    #[serde(skip_serializing_if = "Option::is_none")]
    key_prefix: Option<&'a str>,
    /// The issuer whose ids were looked up.
    iss: &'a str,
    /// The schema the answer was looked up in (with PostgreSQL).
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres_schema: Option<&'a str>,
    /// With both stores: Redis's answer (also the top-level one).
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<Answer>,
    /// With both stores: PostgreSQL's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres: Option<Answer>,
    /// With both stores: whether they answer the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    agree: Option<bool>,
    /// With both stores: whether Redis carries the hybrid's loaded mark. Without it the
    /// applications answer 503 until they have reloaded Redis from PostgreSQL, and the
    /// top-level answer is PostgreSQL's.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_loaded: Option<bool>,
}

pub(crate) fn run_check(args: &CheckArgs) -> Result<ExitCode, CliError> {
    if args.iat.is_some() && args.sub.is_none() {
        return Err(CliError::Usage(
            "--iat only matters with --sub (the subject rule)".into(),
        ));
    }
    args.stores.check_usage()?;
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
    let runtime = runtime()?;
    let stores = args.stores.connect(&runtime)?;
    let redis = match &stores.redis {
        Some(store) => Some(Answer::of(runtime.block_on(store.check(&token))?)),
        None => None,
    };
    let postgres = match &stores.postgres {
        Some(store) => Some(Answer::of(runtime.block_on(store.check(&token))?)),
        None => None,
    };
    let loaded = runtime.block_on(stores.redis_loaded())?;
    let (answer, both) = match (redis, postgres) {
        // Redis answers the requests, once it holds what PostgreSQL holds.
        (Some(redis), Some(postgres)) if loaded != Some(false) => (redis, Some((redis, postgres))),
        (Some(redis), Some(postgres)) => (postgres, Some((redis, postgres))),
        (Some(one), None) | (None, Some(one)) => (one, None),
        (None, None) => return Err(CliError::Usage("no store to check".into())),
    };
    let unloaded = loaded == Some(false);
    let text = if args.json {
        let json = CheckAnswer {
            answer,
            key_prefix: redis.map(|_| args.stores.redis.prefix.as_str()),
            iss: &args.issuer.iss,
            postgres_schema: postgres.map(|_| args.stores.postgres.pg_schema.as_str()),
            redis: both.map(|(r, _)| r),
            postgres: both.map(|(_, p)| p),
            agree: both.map(|(r, p)| r == p),
            redis_loaded: loaded,
        };
        serde_json::to_string(&json).map_err(|e| CliError::Output(std::io::Error::other(e)))?
    } else {
        let first = match both {
            None => answer.text(),
            Some((r, p)) if unloaded => format!(
                "{} (postgres; redis is not loaded: the applications answer 503 until they \
                 have reloaded it from PostgreSQL; redis alone says {})",
                p.text(),
                r.text()
            ),
            Some((r, p)) if r == p => format!("{} (redis and postgres agree)", r.text()),
            Some((r, p)) => format!(
                "stores disagree: redis: {}; postgres: {}",
                r.text(),
                p.text()
            ),
        };
        escape_lines(&format!(
            "{first}\n{}{}",
            args.issuer.issuer_line(),
            args.stores.where_lines()
        ))
    };
    writeln!(std::io::stdout().lock(), "{text}").map_err(CliError::Output)?;
    if let Some((r, p)) = both.filter(|(r, p)| r != p && !unloaded) {
        return Err(CliError::Disagree {
            redis: r.text(),
            postgres: p.text(),
        });
    }
    Ok(if answer.revoked {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A subject cutoff in whole seconds, rounded up: for the whole-second `iat`s of JWTs,
/// `iat < ceil(cutoff)` is exactly the store's rule `iat < cutoff`. Rounded from the exact
/// instant, so Redis (milliseconds) and PostgreSQL (microseconds, both rounded up when
/// written) give the same second for the same revocation.
fn cutoff_secs(before: UnixTime) -> u64 {
    let d = before.as_duration();
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A current-thread runtime for the startup checks and the store calls of a command (only
/// these commands need one). The stores' connections live on it, so each command builds
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
        // A cutoff of 5.000000001 s, as PostgreSQL (µs) and Redis (ms) keep it: 6 for both.
        for kept in [
            std::time::Duration::new(5, 1_000),
            std::time::Duration::new(5, 1_000_000),
        ] {
            assert_eq!(cutoff_secs(UnixTime::from_duration(kept)), 6, "{kept:?}");
        }
    }
}
