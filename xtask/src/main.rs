//! `cargo xtask`: tokenward's project automation, run through the `.cargo/config.toml` alias.
//!
//! `cargo xtask ci` runs every check CI runs; `cargo xtask help` lists the commands.

mod bench;
mod ci;
mod cmd;
mod demo;
mod deny;
mod fuzz;
mod postgres;
mod redis;
mod tool;
mod workdir;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use xtask::Subcommand;

/// The result of an xtask command; errors are printed for a person, never matched on.
type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args = match std::env::args_os()
        .skip(1)
        .map(|arg| arg.into_string())
        .collect::<std::result::Result<Vec<_>, _>>()
    {
        Ok(args) => args,
        Err(arg) => return usage_error(&format!("argument {arg:?} is not valid UTF-8")),
    };
    let Some((name, rest)) = args.split_first() else {
        return usage_error("no command given");
    };
    let subcommand = match name.as_str() {
        "-h" | "--help" => Subcommand::Help,
        name => match Subcommand::from_name(name) {
            Some(subcommand) => subcommand,
            None => return usage_error(&format!("unknown command `{name}`")),
        },
    };

    let result = match subcommand {
        Subcommand::Ci => ci::run(rest),
        Subcommand::Demo => demo::run(rest),
        Subcommand::Bench => bench::run(rest),
        Subcommand::Fuzz => fuzz::run(rest),
        Subcommand::Help => {
            print!("{}", xtask::usage());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}\n\n{}", xtask::usage());
    ExitCode::from(2)
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
