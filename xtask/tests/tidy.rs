//! Tidy: checks about the codebase itself, run as ordinary tests (and so by `cargo xtask ci`).
//!
//! Each check is a small function from file contents to problems, each problem naming the
//! file and line (`path:line: what is wrong`). The `#[test]`s at the top run the checks on
//! the real tree; the `checks_can_fail` module at the bottom feeds them bad input, so a
//! check that can no longer fail is caught too.

// Clippy's test exemptions cover `#[test]` functions, not the helpers of a test crate.
#![allow(clippy::panic, reason = "tests report failure by panicking")]

use std::fs;
use std::path::{Path, PathBuf};

use xtask::Subcommand;

// -------------------------------------------------------------------------------------------
// The checks, run on the workspace.

#[test]
fn crates_have_a_crate_level_doc_comment() {
    let mut problems = Vec::new();
    for krate in crates() {
        let sources: Vec<_> = ["src/lib.rs", "src/main.rs"]
            .iter()
            .map(|file| krate.join(file))
            .filter(|path| path.is_file())
            .collect();
        if sources.is_empty() {
            problems.push(format!(
                "{}: has neither src/lib.rs nor src/main.rs",
                rel(&krate)
            ));
        }
        for source in sources {
            problems.extend(crate_doc_problem(&rel(&source), &read(&source)));
        }
    }
    assert_tidy(problems);
}

#[test]
fn no_unfinished_code_or_skipped_tests() {
    let mut files = Vec::new();
    for dir in ["crates", "xtask"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(
        !files.is_empty(),
        "no .rs files found under crates/ or xtask/"
    );
    let problems = files
        .iter()
        .flat_map(|file| forbidden_problems(&rel(file), &read(file)))
        .collect();
    assert_tidy(problems);
}

#[test]
fn no_source_file_is_over_the_line_limit() {
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "fuzz/fuzz_targets"] {
        rust_files(&root().join(dir), &mut files);
    }
    let problems = files
        .iter()
        .filter_map(|file| long_file_problem(&rel(file), &read(file)))
        .collect();
    assert_tidy(problems);
}

#[test]
fn crates_have_at_most_two_test_binaries() {
    let problems = crates()
        .iter()
        .filter_map(|krate| {
            let binaries = test_binaries(&krate.join("tests"));
            test_binaries_problem(&rel(krate), &binaries)
        })
        .collect();
    assert_tidy(problems);
}

#[test]
fn crate_directory_names_match_package_names() {
    check_manifests(package_name_problem);
}

#[test]
fn manifests_inherit_edition_and_lints_from_the_workspace() {
    check_manifests(|file, manifest, _| inheritance_problems(file, manifest));
}

#[test]
fn library_crates_forbid_unsafe_code() {
    let root_manifest = read(&root().join("Cargo.toml"));
    let workspace_forbids = workspace_forbids_unsafe(&root_manifest);
    let mut problems = Vec::new();
    for krate in crates() {
        let lib = krate.join("src/lib.rs");
        if !lib.is_file() {
            continue;
        }
        let manifest = krate.join("Cargo.toml");
        let inherits = workspace_forbids && inherits_workspace_lints(&read(&manifest));
        if !inherits && !forbids_unsafe(&read(&lib)) {
            problems.push(format!(
                "{}:1: library crate neither has `#![forbid(unsafe_code)]` nor inherits \
                 `unsafe_code = \"forbid\"` through `[lints] workspace = true` in {}",
                rel(&lib),
                rel(&manifest),
            ));
        }
    }
    assert_tidy(problems);
}

#[test]
fn readme_documents_the_xtask_commands() {
    let readme = root().join("README.md");
    assert!(
        readme.is_file(),
        "README.md: missing; it must document `cargo xtask ci` and `cargo xtask demo`"
    );
    assert_tidy(mentions_problems(
        "README.md",
        &read(&readme),
        README_MUST_MENTION,
    ));
}

#[test]
fn ci_entry_point_runs_xtask_ci() {
    let script = root().join(".ci/run");
    assert!(script.is_file(), ".ci/run: missing");
    let mut problems = ci_script_problems(".ci/run", &read(&script));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&script).map_or(0, |meta| meta.permissions().mode());
        if mode & 0o111 == 0 {
            problems.push(".ci/run:1: not executable (chmod +x .ci/run)".to_owned());
        }
    }
    assert_tidy(problems);
}

#[test]
fn documented_xtask_commands_exist() {
    let mut docs = vec![root().join("README.md")];
    if let Ok(entries) = fs::read_dir(root().join("docs")) {
        docs.extend(entries.flatten().map(|entry| entry.path()));
    }
    let problems = docs
        .iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "md") && path.is_file())
        .flat_map(|path| xtask_command_problems(&rel(path), &read(path)))
        .collect();
    assert_tidy(problems);
}

// -------------------------------------------------------------------------------------------
// The checks themselves: contents in, `path:line: problem` out.

/// What README.md must mention.
const README_MUST_MENTION: &[&str] = &["cargo xtask ci", "cargo xtask demo"];

/// Text that must not appear in Rust sources, and why. Built with `concat!` so that this
/// file does not contain what it forbids.
const FORBIDDEN: &[(&str, &str)] = &[
    (concat!("todo", "!("), "unfinished code"),
    (concat!("unimplemented", "!("), "unfinished code"),
    (concat!("dbg", "!("), "leftover debugging"),
    (
        concat!("#[", "ignore"),
        "a test that never runs cannot fail (STYLE.md)",
    ),
    (
        concat!("#[", "should_panic"),
        "assert on a returned error instead (STYLE.md)",
    ),
];

/// A missing crate-level `//!` doc (or `#![doc = ...]`) in a crate root.
fn crate_doc_problem(file: &str, source: &str) -> Option<String> {
    for line in source.lines().map(str::trim) {
        if line.starts_with("//!") || line.starts_with("#![doc") {
            return None;
        }
        // Blank lines, plain comments and other inner attributes may come first.
        if !(line.is_empty() || line.starts_with("//") || line.starts_with("#![")) {
            break;
        }
    }
    Some(format!(
        "{file}:1: no crate-level doc comment (`//! What this crate is for ...`) before the \
         first item"
    ))
}

/// Every use of a [`FORBIDDEN`] needle.
fn forbidden_problems(file: &str, source: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (index, line) in source.lines().enumerate() {
        for (needle, why) in FORBIDDEN {
            if line.contains(needle) {
                problems.push(format!("{file}:{}: `{needle}`: {why}", index + 1));
            }
        }
    }
    problems
}

/// The package name differs from the crate's directory name.
fn package_name_problem(file: &str, manifest: &str, dir_name: &str) -> Option<String> {
    match find_key(manifest, "[package]", "name") {
        Some((_, value)) if value.trim_matches('"') == dir_name => None,
        Some((line, value)) => Some(format!(
            "{file}:{line}: package name {value} differs from its directory name \"{dir_name}\""
        )),
        None => Some(format!("{file}:1: no `name` in [package]")),
    }
}

/// The manifest does not inherit the edition or the lints from the workspace.
fn inheritance_problems(file: &str, manifest: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let edition = find_key(manifest, "[package]", "edition.workspace")
        .or_else(|| find_key(manifest, "[package]", "edition"));
    match edition {
        Some((_, value)) if is_workspace_true(&value) => {}
        Some((line, value)) => problems.push(format!(
            "{file}:{line}: edition is `{value}`; use `edition.workspace = true`"
        )),
        None => problems.push(format!(
            "{file}:1: no `edition.workspace = true` in [package]"
        )),
    }
    if !inherits_workspace_lints(manifest) {
        problems.push(format!(
            "{file}:{}: no `[lints]` section with `workspace = true`",
            manifest.lines().count().max(1)
        ));
    }
    problems
}

fn inherits_workspace_lints(manifest: &str) -> bool {
    find_key(manifest, "[lints]", "workspace").is_some_and(|(_, value)| value == "true")
}

fn workspace_forbids_unsafe(root_manifest: &str) -> bool {
    find_key(root_manifest, "[workspace.lints.rust]", "unsafe_code")
        .is_some_and(|(_, value)| value == "\"forbid\"" || value.contains("level = \"forbid\""))
}

fn forbids_unsafe(source: &str) -> bool {
    source
        .lines()
        .any(|line| line.trim() == "#![forbid(unsafe_code)]")
}

/// A required phrase is missing.
fn mentions_problems(file: &str, text: &str, phrases: &[&str]) -> Vec<String> {
    phrases
        .iter()
        .filter(|phrase| !text.contains(*phrase))
        .map(|phrase| format!("{file}:1: does not mention `{phrase}`"))
        .collect()
}

/// `.ci/run` must be a strict bash script that runs `cargo xtask ci`.
fn ci_script_problems(file: &str, script: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !script.starts_with("#!") || !script.lines().next().unwrap_or("").contains("bash") {
        problems.push(format!("{file}:1: does not start with a bash shebang"));
    }
    let code = || {
        script
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with('#'))
    };
    if !code().any(|line| line == "set -euo pipefail") {
        problems.push(format!("{file}:1: no `set -euo pipefail`"));
    }
    if !code().any(|line| line.contains("cargo xtask ci")) {
        problems.push(format!("{file}:1: never runs `cargo xtask ci`"));
    }
    problems
}

/// `cargo xtask <name>` in code (fenced blocks or inline spans) naming no subcommand.
fn xtask_command_problems(file: &str, markdown: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut in_fence = false;
    for (index, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        let code: Vec<&str> = if in_fence {
            vec![line]
        } else {
            // The odd pieces between backticks are inline code spans.
            line.split('`').skip(1).step_by(2).collect()
        };
        for span in code {
            for (at, _) in span.match_indices("cargo xtask") {
                let rest = span.get(at + "cargo xtask".len()..).unwrap_or("");
                let name = rest
                    .split_whitespace()
                    .next()
                    .filter(|_| rest.starts_with(char::is_whitespace));
                match name {
                    Some(name) if Subcommand::from_name(name).is_some() => {}
                    Some(name) => problems.push(format!(
                        "{file}:{}: `cargo xtask {name}` is not an xtask command (known: {})",
                        index + 1,
                        known_subcommands()
                    )),
                    // `cargo xtask` on its own, e.g. in prose about the alias.
                    None => {}
                }
            }
        }
    }
    problems
}

fn known_subcommands() -> String {
    Subcommand::ALL
        .iter()
        .map(|cmd| cmd.name())
        .collect::<Vec<_>>()
        .join(", ")
}

// -------------------------------------------------------------------------------------------
// Helpers.

fn root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

/// `path` relative to the workspace root, for messages.
fn rel(path: &Path) -> String {
    let root = root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: cannot read: {err}", rel(path)))
}

/// Runs `check(file, manifest, directory name)` on every crate's Cargo.toml.
#[track_caller]
fn check_manifests<P: IntoIterator<Item = String>>(check: impl Fn(&str, &str, &str) -> P) {
    let mut problems = Vec::new();
    for krate in crates() {
        let manifest = krate.join("Cargo.toml");
        let dir_name = krate.file_name().unwrap_or_default().to_string_lossy();
        problems.extend(check(&rel(&manifest), &read(&manifest), &dir_name));
    }
    assert_tidy(problems);
}

/// Every crate directory: each folder under crates/, and xtask/.
fn crates() -> Vec<PathBuf> {
    let dir = root().join("crates");
    let mut crates: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("crates/: cannot read: {err}"))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    crates.sort();
    assert!(!crates.is_empty(), "crates/: no crates found");
    let missing: Vec<_> = crates
        .iter()
        .filter(|krate| !krate.join("Cargo.toml").is_file())
        .map(|krate| {
            format!(
                "{}: a folder under crates/ without a Cargo.toml",
                rel(krate)
            )
        })
        .collect();
    assert_tidy(missing);
    crates.push(root().join("xtask"));
    crates
}

/// Every `.rs` file under `dir`, skipping build output.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|entry| entry.path()) {
        if path.is_dir() && path.file_name().is_none_or(|name| name != "target") {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// Longer files hide more than one concern: split them where a real seam runs.
const MAX_LINES: usize = 800;

fn long_file_problem(file: &str, source: &str) -> Option<String> {
    let lines = source.lines().count();
    (lines > MAX_LINES).then(|| {
        format!("{file}: {lines} lines, over the limit of {MAX_LINES}: split it along a seam")
    })
}

/// Every integration-test binary links the whole dependency graph again: one per crate
/// (`tests/it/main.rs`), a second only where process-wide state needs its own process.
const MAX_TEST_BINARIES: usize = 2;

/// The integration-test binaries Cargo finds in `tests/`: each `tests/*.rs` and each
/// `tests/*/main.rs`.
fn test_binaries(tests: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(tests) else {
        return Vec::new();
    };
    let mut binaries: Vec<String> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "rs") || path.join("main.rs").is_file()
        })
        .filter_map(|path| {
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .collect();
    binaries.sort();
    binaries
}

fn test_binaries_problem(krate: &str, binaries: &[String]) -> Option<String> {
    (binaries.len() > MAX_TEST_BINARIES).then(|| {
        format!(
            "{krate}: {} integration-test binaries ({}), over {MAX_TEST_BINARIES}: \
             make them modules of tests/it/main.rs",
            binaries.len(),
            binaries.join(", ")
        )
    })
}

/// `(line number, value)` of `key = value` in `[section]` of a TOML file, with the value's
/// whitespace and trailing comment removed. Enough TOML for Cargo manifests' simple keys.
fn find_key(toml: &str, section: &str, key: &str) -> Option<(usize, String)> {
    let mut current = "";
    for (index, line) in toml.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            current = line.split('#').next().unwrap_or("").trim();
            continue;
        }
        if current != section {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if name.trim() == key {
            let value = value.split(" #").next().unwrap_or("").trim().to_owned();
            return Some((index + 1, value));
        }
    }
    None
}

/// `true` (from `x.workspace = true`) or `{ workspace = true }` (from `x = { ... }`).
fn is_workspace_true(value: &str) -> bool {
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    compact == "true" || compact == "{workspace=true}"
}

#[track_caller]
fn assert_tidy(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} tidy problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

// -------------------------------------------------------------------------------------------

/// Each check, given input it must reject.
mod checks_can_fail {
    use super::*;

    #[test]
    fn long_file() {
        let short = "fn main() {}\n".repeat(MAX_LINES);
        assert_eq!(long_file_problem("a.rs", &short), None);
        let long = format!("{short}// one more\n");
        let problem = long_file_problem("a.rs", &long).unwrap_or_default();
        assert!(problem.contains("a.rs: 801 lines"), "{problem}");
    }

    #[test]
    fn test_binaries() {
        let dir = std::env::temp_dir().join(format!("tidy-tests-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("it")).unwrap();
        fs::create_dir_all(dir.join("fixtures")).unwrap();
        fs::write(dir.join("it/main.rs"), "").unwrap();
        fs::write(dir.join("it/cases.rs"), "").unwrap();
        fs::write(dir.join("fixtures/token.txt"), "").unwrap();
        fs::write(dir.join("audit.rs"), "").unwrap();
        let found = super::test_binaries(&dir);
        assert_eq!(found, ["audit.rs", "it"]);
        assert_eq!(test_binaries_problem("crates/x", &found), None);
        fs::write(dir.join("extra.rs"), "").unwrap();
        let found = super::test_binaries(&dir);
        let problem = test_binaries_problem("crates/x", &found).unwrap_or_default();
        assert!(
            problem.contains("crates/x: 3 integration-test binaries (audit.rs, extra.rs, it)"),
            "{problem}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn crate_doc() {
        for (source, ok) in [
            ("//! Clocks.\n\npub mod clock;\n", true),
            ("#![forbid(unsafe_code)]\n//! Clocks.\n", true),
            (
                "// SPDX header\n\n#![doc = include_str!(\"../README.md\")]\n",
                true,
            ),
            ("pub mod clock;\n//! Too late.\n", false),
            ("/// Item doc, not a crate doc.\npub struct Clock;\n", false),
            ("", false),
        ] {
            let problem = crate_doc_problem("crates/x/src/lib.rs", source);
            assert_eq!(problem.is_none(), ok, "{source:?}: {problem:?}");
        }
        assert_eq!(
            crate_doc_problem("crates/x/src/lib.rs", "fn main() {}\n").as_deref(),
            Some(
                "crates/x/src/lib.rs:1: no crate-level doc comment (`//! What this crate is \
                 for ...`) before the first item"
            )
        );
    }

    #[test]
    fn forbidden() {
        let source = format!(
            "fn ok() {{}}\nfn later() {{ {}) }}\n#[test]\n{}]\nfn skipped() {{}}\n",
            concat!("todo", "!("),
            concat!("#[", "ignore"),
        );
        assert_eq!(
            forbidden_problems("crates/x/src/lib.rs", &source),
            [
                format!(
                    "crates/x/src/lib.rs:2: `{}`: unfinished code",
                    concat!("todo", "!(")
                ),
                format!(
                    "crates/x/src/lib.rs:4: `{}`: a test that never runs cannot fail (STYLE.md)",
                    concat!("#[", "ignore")
                ),
            ]
        );
        for (needle, _) in FORBIDDEN {
            assert_eq!(forbidden_problems("f.rs", needle).len(), 1, "{needle}");
        }
    }

    #[test]
    fn package_name() {
        let manifest = "[package]\nname = \"tokenward-cor\"\nversion.workspace = true\n";
        assert_eq!(
            package_name_problem(
                "crates/tokenward-core/Cargo.toml",
                manifest,
                "tokenward-core"
            )
            .as_deref(),
            Some(
                "crates/tokenward-core/Cargo.toml:2: package name \"tokenward-cor\" differs from \
                 its directory name \"tokenward-core\""
            )
        );
        assert_eq!(
            package_name_problem("Cargo.toml", manifest, "tokenward-cor"),
            None
        );
        // A `name` outside [package] does not count.
        let bin_only = "[package]\nversion = \"1\"\n\n[[bin]]\nname = \"x\"\n";
        assert!(package_name_problem("Cargo.toml", bin_only, "x").is_some());
    }

    #[test]
    fn inheritance() {
        let good =
            "[package]\nname = \"x\"\nedition.workspace = true\n\n[lints]\nworkspace = true\n";
        assert_eq!(
            inheritance_problems("x/Cargo.toml", good),
            Vec::<String>::new()
        );
        let inline = "[package]\nedition = { workspace = true }\n[lints]\nworkspace = true\n";
        assert_eq!(
            inheritance_problems("x/Cargo.toml", inline),
            Vec::<String>::new()
        );

        let bad = "[package]\nname = \"x\"\nedition = \"2021\"\n\n[lints.rust]\nworkspace = true\n";
        assert_eq!(
            inheritance_problems("x/Cargo.toml", bad),
            [
                "x/Cargo.toml:3: edition is `\"2021\"`; use `edition.workspace = true`",
                "x/Cargo.toml:6: no `[lints]` section with `workspace = true`",
            ]
        );
    }

    #[test]
    fn unsafe_code() {
        assert!(workspace_forbids_unsafe(
            "[workspace.lints.rust]\nunsafe_code = \"forbid\"\n"
        ));
        assert!(!workspace_forbids_unsafe(
            "[workspace.lints.rust]\nunsafe_code = \"deny\"\n"
        ));
        assert!(!workspace_forbids_unsafe(
            "[workspace.lints.clippy]\nunsafe_code = \"forbid\"\n"
        ));
        assert!(forbids_unsafe("//! Doc.\n#![forbid(unsafe_code)]\n"));
        assert!(!forbids_unsafe("//! Doc.\n#![deny(unsafe_code)]\n"));
    }

    #[test]
    fn readme_mentions() {
        assert_eq!(
            mentions_problems("README.md", "Run `cargo xtask ci`.\n", README_MUST_MENTION),
            ["README.md:1: does not mention `cargo xtask demo`"]
        );
    }

    #[test]
    fn ci_script() {
        let good = "#!/usr/bin/env bash\nset -euo pipefail\nexec cargo xtask ci\n";
        assert_eq!(ci_script_problems(".ci/run", good), Vec::<String>::new());
        let commented = "#!/bin/sh\n# exec cargo xtask ci\ncargo test\n";
        assert_eq!(
            ci_script_problems(".ci/run", commented),
            [
                ".ci/run:1: does not start with a bash shebang",
                ".ci/run:1: no `set -euo pipefail`",
                ".ci/run:1: never runs `cargo xtask ci`",
            ]
        );
    }

    #[test]
    fn xtask_commands() {
        let markdown = "\
Run `cargo xtask ci`, or `cargo xtask deploy` (line 1).
The `cargo xtask` alias is in .cargo/config.toml; cargo xtask nonsense in prose is fine.
```sh
$ cargo xtask demo --port 8080
cargo xtask release
```
```
cargo xtask ci && cargo xtask lint
```
";
        let known = Subcommand::ALL
            .iter()
            .map(|cmd| cmd.name())
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(
            xtask_command_problems("README.md", markdown),
            [
                format!(
                    "README.md:1: `cargo xtask deploy` is not an xtask command (known: {known})"
                ),
                format!(
                    "README.md:5: `cargo xtask release` is not an xtask command (known: {known})"
                ),
                format!("README.md:8: `cargo xtask lint` is not an xtask command (known: {known})"),
            ]
        );
    }
}
