//! `tokenward-demo-lifecycle`: drives one or two running `tokenward-demo` instances through
//! the whole token lifecycle over real HTTP, prints the transcript, and exits non-zero if
//! any step misbehaves (see `tokenward_demo::lifecycle`).
//!
//! ```text
//! tokenward-demo-lifecycle --url http://127.0.0.1:8080 [--url http://127.0.0.1:8081]
//!     [--refresh-grace SECS] [--subject-limit N] [--ban-maxretry N]
//! ```
//!
//! The settings must match the servers' flags of the same names. The last step bans the
//! client's address for the servers' `--ban-bantime`.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokenward_demo::lifecycle::{self, Options};

/// Drives running tokenward-demo instances through the token lifecycle.
#[derive(Debug, Parser)]
#[command(name = "tokenward-demo-lifecycle", version)]
struct Args {
    /// A demo instance's base URL; give two for two instances of one service (same --keys,
    /// --redis and --redis-prefix).
    #[arg(long = "url", value_name = "URL", required = true, num_args = 1)]
    urls: Vec<String>,
    /// The servers' --refresh-grace.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    refresh_grace: u64,
    /// The servers' --subject-limit.
    #[arg(long, value_name = "N", default_value_t = 300)]
    subject_limit: u32,
    /// The servers' --ban-maxretry.
    #[arg(long, value_name = "N", default_value_t = 5)]
    ban_maxretry: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.urls.len() > 2 {
        eprintln!("tokenward-demo-lifecycle: give one or two --url");
        return ExitCode::from(2);
    }
    let options = Options::new(args.urls)
        .refresh_grace(Duration::from_secs(args.refresh_grace))
        .subject_limit(args.subject_limit)
        .ban_maxretry(args.ban_maxretry);
    if lifecycle::run(&options).await.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
