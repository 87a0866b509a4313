//! The CLI's one error type. Every variant means exit status 2; messages name files and
//! settings, never key material or tokens.

use std::io;
use std::path::PathBuf;

use tokenward_claims::{IssueError, KeyError, PolicyError};
use tokenward_core::StoreError;

/// Why a command could not do its job (as opposed to a token being rejected).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CliError {
    /// Arguments that parse but do not make sense together.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A key file does not hold a usable key.
    #[error("{}: {source}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why the key is unusable (never the key material).
        source: KeyError,
    },
    /// A file's content is unusable, for a reason the CLI itself found.
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (never its content).
        reason: String,
    },
    /// A place `keygen` does not write to or extend without `--force`: someone else may have
    /// planted or altered it.
    #[error("{}: {reason}. Refusing to {action} without --force", path.display())]
    Untrusted {
        /// The directory or file.
        path: PathBuf,
        /// Why it is not trusted, and what would make it so.
        reason: String,
        /// What was refused.
        action: &'static str,
    },
    /// A file exists and `--force` was not given.
    #[error("{}: already exists; refusing to overwrite it (use --force)", .0.display())]
    Exists(PathBuf),
    /// The validation policy could not be built from the options.
    #[error("validation policy: {0}")]
    Policy(#[from] PolicyError),
    /// A token could not be issued.
    #[error("issuing: {0}")]
    Issue(#[from] IssueError),
    /// A key could not be generated or checked.
    #[error("key: {0}")]
    KeyGen(#[from] KeyError),
    /// Standard input could not be read.
    #[error("reading standard input: {0}")]
    Input(io::Error),
    /// The revocation store could not be built (a bad URL or setting; never its password).
    #[error("{0}")]
    Redis(#[from] tokenward_redis::RedisConfigError),
    /// The startup check refused the Redis (an evicting maxmemory-policy) or could not reach
    /// it (unreachable, TLS, authentication).
    #[error("{}", chain(.0))]
    RedisCheck(#[from] tokenward_redis::ServerCheckError),
    /// The PostgreSQL store could not be set up: a bad URL or setting, an unreachable
    /// database, a failed migration (never its password).
    #[error("{}", chain(.0))]
    Postgres(#[from] tokenward_postgres::PgSetupError),
    /// The revocation store failed (unreachable, timed out, corrupt data, invalid id).
    #[error("{}", chain(.0))]
    Store(#[from] StoreError),
    /// With --postgres and --redis: PostgreSQL (the durable copy) was written, Redis failed.
    #[error(
        "PostgreSQL (the durable copy) has {what}, but Redis failed{}: {}. The applications' \
         Redis gets it when it is next reloaded from PostgreSQL; or run the same command \
         again (revocations are idempotent)",
        done.map(|(done, total)| format!(" with {done} of {total} written")).unwrap_or_default(),
        chain(source)
    )]
    RedisAfterDurable {
        /// What PostgreSQL has.
        what: &'static str,
        /// For an import: revocations Redis acknowledged, of how many.
        done: Option<(u64, u64)>,
        /// Redis's error.
        source: StoreError,
    },
    /// An import into Redis alone failed midway.
    #[error(
        "Redis failed with {done} of {total} revocations written: {}. Redis has no transaction \
         over an import: what was written stays; run the same import again to write the rest \
         (revocations are idempotent)",
        chain(source)
    )]
    RedisImport {
        /// Revocations Redis acknowledged.
        done: u64,
        /// Revocations to write.
        total: u64,
        /// Redis's error.
        source: StoreError,
    },
    /// `check` with --postgres and --redis: the stores answer differently.
    #[error(
        "the stores disagree (redis: {redis}; postgres: {postgres}). The applications answer \
         as Redis does. Run the revoke again with both --postgres and --redis to write both \
         (revocations are idempotent); a restarted Redis is reloaded from PostgreSQL"
    )]
    Disagree {
        /// Redis's answer.
        redis: String,
        /// PostgreSQL's answer.
        postgres: String,
    },
    /// `revoke --import`: rows that cannot be imported (listed on standard error first).
    #[error("{input}: {} malformed; nothing was imported", plural(*.count, "row"))]
    Malformed {
        /// The file (or standard input).
        input: String,
        /// How many rows.
        count: usize,
    },
    /// The async runtime for store calls could not start.
    #[error("starting the async runtime: {0}")]
    Runtime(io::Error),
    /// Standard output could not be written.
    #[error("writing standard output: {0}")]
    Output(io::Error),
}

impl CliError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> CliError {
        let path = path.into();
        move |source| CliError::Io { path, source }
    }

    pub(crate) fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> CliError {
        CliError::BadFile {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// `n thing` / `n things`.
pub(crate) fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// An error and its sources, `: `-separated (store errors keep the Redis client's own message,
/// e.g. the OS error, as their source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        // Wrappers often repeat their source's message; say it once.
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
