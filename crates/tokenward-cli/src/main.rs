//! `tokenward`: generate keys, issue, verify and inspect JWTs with tokenward's strict
//! validation, from a shell.
//!
//! ```text
//! tokenward keygen --alg EdDSA --kid 2026-11 --out keys/      # keys/2026-11.pem + keys/jwks.json
//! tokenward issue --keys keys/ --iss https://auth.example --aud api --sub alice
//! tokenward verify --jwks keys/jwks.json --iss https://auth.example --aud api TOKEN
//! tokenward verify --jwks keys/jwks.json --iss https://auth.example --aud api --json < tokens.txt
//! tokenward verify --jwks entra-keys.json --profile entra --iss 'https://login.microsoftonline.com/{tenantid}/v2.0' \
//!     --tenant 9188040d-6c67-4c5b-b112-36a304b66dad --aud api://orders --scope Orders.Read TOKEN
//! tokenward inspect TOKEN                                     # decode + lint, NOT verified
//! tokenward revoke --redis redis://127.0.0.1:6379 --iss https://auth.example --sub alice  # sign out everywhere
//! tokenward check --redis redis://127.0.0.1:6379 --iss https://auth.example --sub alice --iat 1800000000
//! tokenward revoke --postgres postgres://app@db/app --redis redis://127.0.0.1:6379 --iss https://auth.example --sid fam_81
//! tokenward revoke --import denylist.csv --postgres postgres://app@db/app --iss https://auth.example
//! ```
//!
//! `verify` uses exactly the validation the libraries use ([`tokenward_claims::Validator`]):
//! the key pins the algorithm, `none` never verifies, the size is capped before decoding, and
//! every rejection has a stable class (`signature`, `expired`, `audience`, ...; `scope` when a
//! valid token lacks a `--scope` or `--role`). `--profile` applies an identity provider's
//! conventions (docs/identity-providers.md). Its exit
//! status is 0 when every token is valid, 1 when any is rejected, and 2 on a usage or key
//! error. Error messages name files, never key material, and rejections never echo the token.
//!
//! `revoke` and `check` work on the Redis revocation store the applications read (same URL,
//! same `--prefix`, by default `tokenward:` like every tokenward component, and printed with
//! each answer), on the PostgreSQL one (`--postgres`, same `--pg-schema`), or on both (the
//! hybrid deployment: PostgreSQL, the durable copy, is written first; `check` compares
//! them): `revoke` adds a token (jti), session (sid) or subject cutoff (sub) revocation,
//! `check` tells whether a token with given parts would be rejected and by which rule (exit
//! 0 active, 1 revoked; 2 when the two stores disagree). `revoke --import FILE` revokes
//! every row of a `jti,exp` denylist export (a Rails devise-jwt table), checking the whole
//! file first: a malformed row, reported with its line number, means nothing is written.
//! Connection errors exit 2; messages never show a URL's password, and the URLs can come
//! from `TOKENWARD_REDIS_URL` and `TOKENWARD_POSTGRES_URL` instead of the command line.
//!
//! `keygen` adds to an existing `jwks.json` instead of replacing it, which is how an operator
//! rotates keys: generate the new key into the same directory, publish the grown `jwks.json`,
//! start signing with the new key, and remove the old one after the longest token lifetime.
//! It refuses, unless `--force`, a directory others can write to and a `jwks.json` it does
//! not recognise as its own (`jwks.json.sha256`), which could hold a planted key.
//!
//! Human output never carries a control or bidirectional-override character raw: token
//! text is shown escaped (`\u{9b}`).
#![forbid(unsafe_code)]

mod denylist;
mod error;
mod escape;
mod files;
mod inspect;
mod issue;
mod keygen;
mod keys;
mod lines;
mod revoke;
mod time;
mod verify;

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;

/// Generate keys, issue, verify and inspect JWTs with tokenward's strict validation.
#[derive(Debug, Parser)]
#[command(name = "tokenward", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; each one's help text is its `Args` doc comment.
#[derive(Debug, Subcommand)]
enum Command {
    Keygen(keygen::Args),
    Issue(issue::Args),
    Verify(verify::Args),
    Inspect(inspect::Args),
    Revoke(revoke::RevokeArgs),
    Check(revoke::CheckArgs),
}

fn main() -> ExitCode {
    // Usage errors exit with status 2 (clap's default).
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(args) => keygen::run(&args),
        Command::Issue(args) => issue::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Revoke(args) => revoke::run_revoke(&args),
        Command::Check(args) => revoke::run_check(&args),
    };
    match result {
        Ok(code) => code,
        // A closed pipe (`tokenward verify < tokens | head -1`) is not worth a message.
        Err(CliError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(2),
        Err(err) => {
            // An error may quote what it was given (a kid, a key set's content): escaped.
            let err = escape::escape_controls(&err.to_string()).into_owned();
            eprintln!("tokenward: error: {err}");
            ExitCode::from(2)
        }
    }
}
