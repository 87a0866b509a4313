//! `tokenward inspect`: decode a token WITHOUT verifying it, and lint it.
//!
//! This module is the command: reading the token, and rendering the report as text or JSON.
//! What is decoded and which lints apply is [`lint`]'s.

use std::ffi::OsString;
use std::io::{self, Read as _, Write as _};
use std::process::ExitCode;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::CliError;
use crate::escape::escape_lines;
use crate::time;

mod lint;

use lint::{Lint, Report, inspect};

/// Decode a token WITHOUT verifying it and lint it for security problems.
///
/// Exit status 0 when the token decodes (whatever the lints say), 2 when it does not.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The token, or `-` to read it from stdin.
    #[arg(value_name = "TOKEN")]
    token: OsString,
    /// Judge expiry and lifetimes as of this time (seconds since the Unix epoch).
    #[arg(long, value_name = "UNIX")]
    now: Option<u64>,
    /// One JSON object: {"header":…,"claims":…,"lints":[{"level","code","message"}],"verified":false}.
    #[arg(long)]
    json: bool,
}

/// Inputs larger than this are not inspected at all.
const MAX_INPUT: usize = 16 * 1024 * 1024;

#[derive(Serialize)]
struct JsonReport<'a> {
    header: &'a Map<String, Value>,
    claims: &'a Map<String, Value>,
    lints: &'a [Lint],
    verified: bool,
}

pub(crate) fn run(args: &Args) -> Result<ExitCode, CliError> {
    let input = if args.token == "-" {
        let mut buf = Vec::new();
        io::stdin()
            .lock()
            .take(MAX_INPUT as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(CliError::Input)?;
        if buf.len() > MAX_INPUT {
            return not_decodable(&format!("input is larger than {MAX_INPUT} bytes"));
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        String::from_utf8(buf).ok()
    } else {
        args.token.to_str().map(str::to_owned)
    };
    let Some(token) = input else {
        return not_decodable("the token is not valid UTF-8");
    };
    let now = time::now_or(args.now);
    let report = match inspect(&token, now) {
        Ok(report) => report,
        Err(why) => return not_decodable(&why),
    };
    let text = if args.json {
        serde_json::to_string(&JsonReport {
            header: &report.header,
            claims: &report.claims,
            lints: &report.lints,
            verified: false,
        })
        .map_err(|e| CliError::Output(io::Error::other(e)))?
    } else {
        // The claims are the attacker's text: no control or bidi character reaches the
        // terminal (the JSON rendering escapes C0 only; line breaks are the report's own).
        escape_lines(&human(&report, now))
    };
    let mut out = io::stdout().lock();
    writeln!(out, "{text}").map_err(CliError::Output)?;
    Ok(ExitCode::SUCCESS)
}

fn not_decodable(why: &str) -> Result<ExitCode, CliError> {
    eprintln!("tokenward: not a decodable JWT: {why}");
    Ok(ExitCode::from(2))
}

fn human(report: &Report, now: u64) -> String {
    let pretty = |map: &Map<String, Value>| {
        serde_json::to_string_pretty(map).unwrap_or_else(|_| "{}".to_owned())
    };
    let mut s = String::from(
        "*** NOT VERIFIED: decoded without checking the signature, issuer, audience or \
         expiry. Do not trust these claims. ***\n\n",
    );
    s.push_str("header:\n");
    s.push_str(&pretty(&report.header));
    s.push_str("\n\nclaims:\n");
    s.push_str(&pretty(&report.claims));
    s.push('\n');
    let times: Vec<(&str, u64)> = ["iat", "nbf", "exp"]
        .into_iter()
        .filter_map(|name| Some((name, report.claims.get(name)?.as_u64()?)))
        .collect();
    if !times.is_empty() {
        s.push_str(&format!("\ntimes (now {now} = {}):\n", time::rfc3339(now)));
        for (name, t) in times {
            let rel = if t >= now {
                format!("in {}", time::human_duration(t - now))
            } else {
                format!("{} ago", time::human_duration(now - t))
            };
            s.push_str(&format!("  {name}  {t}  {}  ({rel})\n", time::rfc3339(t)));
        }
    }
    if report.lints.is_empty() {
        s.push_str("\nlints: none");
    } else {
        s.push_str(&format!("\nlints ({}):", report.lints.len()));
        for lint in &report.lints {
            s.push_str(&format!(
                "\n  {:<7}  {:<20}  {}",
                lint.level, lint.code, lint.message
            ));
        }
    }
    s
}
