//! `tokenward revoke --import FILE`: a denylist export revoked in one command. The whole file
//! is read and checked before any store is touched.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use tokenward_core::{Clock as _, SystemClock};

use super::stores::StoreArgs;
use super::{IssuerArgs, runtime};
use crate::denylist::{self, ReadError};
use crate::error::CliError;
use crate::escape::escape_lines;

/// Malformed rows listed on standard error; the rest are counted.
const MALFORMED_SHOWN: usize = 20;

pub(super) fn run(
    stores: &StoreArgs,
    issuer: &IssuerArgs,
    path: &Path,
) -> Result<ExitCode, CliError> {
    let scope = issuer.scope();
    let stdin = path.as_os_str() == "-";
    let input = if stdin {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    };
    let read = if stdin {
        denylist::read(std::io::stdin().lock(), &scope)
    } else {
        let file = std::fs::File::open(path).map_err(CliError::io(path))?;
        denylist::read(std::io::BufReader::with_capacity(1 << 16, file), &scope)
    };
    let list = read.map_err(|e| match e {
        ReadError::Io(e) if stdin => CliError::Input(e),
        ReadError::Io(e) => CliError::io(path)(e),
        header @ ReadError::Header { .. } => CliError::bad_file(path, header.to_string()),
    })?;
    if !list.malformed.is_empty() {
        let mut text = String::new();
        for row in list.malformed.iter().take(MALFORMED_SHOWN) {
            let _ = writeln!(
                text,
                "tokenward: {input}: line {}: {}",
                row.line, row.reason
            );
        }
        if let Some(more) = list.malformed.len().checked_sub(MALFORMED_SHOWN)
            && more > 0
        {
            let _ = writeln!(text, "tokenward: {input}: … and {more} more");
        }
        let _ = write!(std::io::stderr().lock(), "{}", escape_lines(&text));
        return Err(CliError::Malformed {
            input,
            count: list.malformed.len(),
        });
    }
    let rows = list.rows.len() as u64;
    let plan = denylist::plan(list.rows, SystemClock.now());
    let runtime = runtime()?;
    let connected = stores.connect(&runtime)?;
    let written = runtime.block_on(connected.import(&plan.live))?;
    let text = format!(
        "rows: {rows}\nimported: {}\nskipped (expired): {}\nduplicates: {}\n{}{}",
        written.imported,
        plan.expired + written.expired_by_database,
        plan.duplicates,
        issuer.issuer_line(),
        stores.where_lines()
    );
    writeln!(std::io::stdout().lock(), "{}", escape_lines(&text)).map_err(CliError::Output)?;
    Ok(ExitCode::SUCCESS)
}
