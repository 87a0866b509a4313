//! The `deny` step: `cargo deny check` at a pinned version, against the offline RustSec
//! advisory-database snapshot when the machine has one.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Result;
use crate::ci::Ctx;
use crate::cmd;
use crate::tool::PinnedTool;

/// The cargo-deny release CI uses: the newest 0.20.x, which builds with Rust 1.88+
/// (the workspace MSRV) and so with the toolchain in use. Installed on demand when
/// `cargo deny --version` reports anything else.
pub(crate) const CARGO_DENY: PinnedTool = PinnedTool {
    package: "cargo-deny",
    version: "0.20.2",
};

/// Where the offline advisory-database snapshot lives, relative to the workspace root.
const SNAPSHOT_DIR: &str = "../shared/advisory-db";

/// The folder cargo-deny 0.20 opens under its `db-path` for the default database URL
/// (`https://github.com/RustSec/advisory-db`); see the snapshot's README.md.
const DEFAULT_DB_FOLDER: &str = "advisory-db-3157b0e258782691";

/// cargo-deny's own default `maximum-db-staleness`; an older snapshot earns a warning.
const MAX_SNAPSHOT_AGE_DAYS: i64 = 90;

/// Runs `cargo deny check`, installing the pinned cargo-deny first if needed.
pub(crate) fn check(ctx: &Ctx) -> Result {
    CARGO_DENY.ensure(|| ctx.cargo())?;

    let snapshot = ctx.root.join(SNAPSHOT_DIR);
    let mut deny = ctx.cargo();
    deny.arg("deny");
    if snapshot.is_dir() {
        eprintln!(
            "using the offline advisory-database snapshot in {}",
            snapshot.display()
        );
        let work = ctx.root.join("target").join("xtask");
        let db_path = build_offline_db(&snapshot, &work.join("advisory-db"))?;
        let config = work.join("deny.toml");
        let base_config = ctx.root.join("deny.toml");
        let base = fs::read_to_string(&base_config).map_err(io_context(&base_config))?;
        fs::write(&config, with_db_path(&base, &db_path)?).map_err(io_context(&config))?;
        // `--offline` also stops cargo-deny downloading crates (it reads their license
        // files), including those only other platforms use; fetch them while online.
        cmd::run(ctx.cargo().arg("fetch"))?;
        deny.arg("--offline").arg("--config").arg(&config);
    } else {
        eprintln!(
            "no advisory-database snapshot at {}; cargo-deny fetches the live database",
            snapshot.display()
        );
    }
    deny.args(["check", "advisories", "bans", "licenses", "sources"]);
    cmd::run(&mut deny)?;
    Ok(())
}

/// Turns the snapshot into the git repository cargo-deny expects under `db_path`, and
/// returns `db_path`.
///
/// It is rebuilt on every run (a copy of a few MB; well under a second), so it always
/// matches the snapshot. cargo-deny dates an offline database by
/// max(HEAD commit time, mtime of `.git/HEAD`); a copy cached across runs would therefore
/// turn "stale" locally while the same snapshot passes on a fresh CI machine. The snapshot's
/// real age is reported here instead, by dating the commit at its newest advisory.
fn build_offline_db(snapshot: &Path, db_path: &Path) -> Result<PathBuf> {
    if db_path.exists() {
        fs::remove_dir_all(db_path).map_err(io_context(db_path))?;
    }
    let repo = db_path.join(DEFAULT_DB_FOLDER);
    let mut newest = None;
    copy_tree(snapshot, &repo, &mut newest)?;
    let newest = newest.ok_or_else(|| format!("no advisories found in {}", snapshot.display()))?;
    let commit = fs::read_to_string(snapshot.join("SNAPSHOT")).unwrap_or_default();
    let commit = commit.trim();

    match age_in_days(&newest) {
        Some(age) if age > MAX_SNAPSHOT_AGE_DAYS => eprintln!(
            "warning: the advisory-database snapshot is {age} days old (newest advisory \
             {newest}); advisories published since are not checked. Refresh {SNAPSHOT_DIR}."
        ),
        Some(age) => eprintln!("snapshot {commit}: newest advisory {newest} ({age} days old)"),
        None => eprintln!("snapshot {commit}: newest advisory {newest}"),
    }

    let date = format!("{newest}T00:00:00+00:00");
    let message = format!("RustSec advisory-db snapshot {commit}");
    let git = |args: &[&str]| {
        let mut git = Command::new("git");
        git.current_dir(&repo).args(args);
        git
    };
    cmd::run(&mut git(&["init", "--quiet", "--initial-branch=main"]))?;
    cmd::run(&mut git(&["add", "--all"]))?;
    // CI machines have no git identity; the commit is dated at the snapshot.
    cmd::run(
        git(&[
            "-c",
            "user.name=tokenward xtask",
            "-c",
            "user.email=xtask@tokenward.invalid",
            "commit",
            "--quiet",
            "--no-verify",
            "--no-gpg-sign",
            "--message",
            &message,
        ])
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date),
    )?;
    Ok(db_path.to_owned())
}

/// Copies the directory tree `from` to `to`, noting the newest advisory `date` seen.
fn copy_tree(from: &Path, to: &Path, newest: &mut Option<String>) -> Result {
    fs::create_dir_all(to).map_err(io_context(to))?;
    for entry in fs::read_dir(from).map_err(io_context(from))? {
        let entry = entry.map_err(io_context(from))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if entry.file_name() == ".git" {
            continue;
        }
        if entry.file_type().map_err(io_context(&source))?.is_dir() {
            copy_tree(&source, &target, newest)?;
            continue;
        }
        fs::copy(&source, &target).map_err(io_context(&source))?;
        if source.extension().is_some_and(|ext| ext == "md") {
            let text = fs::read_to_string(&source).map_err(io_context(&source))?;
            if let Some(date) = advisory_date(&text)
                && newest.as_deref().is_none_or(|seen| date.as_str() > seen)
            {
                *newest = Some(date);
            }
        }
    }
    Ok(())
}

/// Names `path` in an I/O error.
fn io_context(path: &Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |err| format!("{}: {err}", path.display())
}

/// The `date = "YYYY-MM-DD"` field of an advisory's TOML front matter.
fn advisory_date(advisory: &str) -> Option<String> {
    advisory.lines().find_map(|line| {
        let date = line.strip_prefix("date = \"")?.strip_suffix('"')?;
        civil_to_days(date).map(|_| date.to_owned())
    })
}

/// Whole days from `date` (`YYYY-MM-DD`, UTC) until now.
fn age_in_days(date: &str) -> Option<i64> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    let today = i64::try_from(now / 86_400).ok()?;
    Some(today - civil_to_days(date)?)
}

/// Days since 1970-01-01 of the proleptic Gregorian date `YYYY-MM-DD`
/// (Howard Hinnant's `days_from_civil`).
fn civil_to_days(date: &str) -> Option<i64> {
    let mut parts = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
}

/// `config` (the text of deny.toml) with `[advisories] db-path` set to `db_path`.
fn with_db_path(config: &str, db_path: &Path) -> Result<String> {
    let path = db_path.to_str().filter(|path| !path.contains('\''));
    let Some(path) = path else {
        return Err(format!(
            "cannot write {} as a TOML literal string",
            db_path.display()
        )
        .into());
    };
    let setting = format!("db-path = '{path}'");
    let mut out = String::with_capacity(config.len() + setting.len() + 16);
    let mut section = "";
    let mut inserted = false;
    for line in config.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed;
        } else if section == "[advisories]" && trimmed.starts_with("db-path") {
            return Err(
                "deny.toml must not set [advisories] db-path: `cargo xtask ci` points \
                        it at the offline snapshot"
                    .into(),
            );
        }
        out.push_str(line);
        out.push('\n');
        if trimmed == "[advisories]" {
            out.push_str(&setting);
            out.push('\n');
            inserted = true;
        }
    }
    if !inserted {
        out.push_str("\n[advisories]\n");
        out.push_str(&setting);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        for (date, days) in [
            ("1970-01-01", Some(0)),
            ("2000-03-01", Some(11_017)),
            ("2026-08-20", Some(20_685)),
            ("2026-13-01", None),
            ("2026-08", None),
            ("yesterday", None),
        ] {
            assert_eq!(civil_to_days(date), days, "{date}");
        }
    }

    #[test]
    fn advisory_dates() {
        let advisory = "```toml\n[advisory]\nid = \"RUSTSEC-2020-0105\"\ndate = \"2020-12-21\"\n";
        assert_eq!(advisory_date(advisory).as_deref(), Some("2020-12-21"));
        assert_eq!(advisory_date("# README\nno front matter\n"), None);
        assert_eq!(advisory_date("date = \"soon\"\n"), None);
    }

    #[test]
    fn db_path_goes_into_the_advisories_section() {
        let config = "[graph]\nall-features = true\n\n[advisories]\nignore = []\n";
        let out = with_db_path(config, Path::new("/t/db")).unwrap();
        assert_eq!(
            out,
            "[graph]\nall-features = true\n\n[advisories]\ndb-path = '/t/db'\nignore = []\n"
        );
    }

    #[test]
    fn db_path_adds_a_missing_advisories_section() {
        let out = with_db_path("[bans]\n", Path::new("/t/db")).unwrap();
        assert_eq!(out, "[bans]\n\n[advisories]\ndb-path = '/t/db'\n");
    }

    #[test]
    fn db_path_already_set_is_an_error() {
        let config = "[advisories]\ndb-path = \"~/.cargo/advisory-dbs\"\n";
        assert!(with_db_path(config, Path::new("/t/db")).is_err());
    }
}
