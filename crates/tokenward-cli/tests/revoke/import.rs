//! `tokenward revoke --import FILE`: a devise-jwt denylist export (`jti,exp`) into
//! PostgreSQL (one transaction), Redis, or both. Malformed rows are all reported with their
//! line numbers and nothing is written; expired rows are skipped; duplicates keep the later
//! exp.

use std::io::Write as _;

use futures_util::TryStreamExt as _;
use sqlx::postgres::PgPoolCopyExt as _;
use tokenward_postgres::LiveRevocation;

use super::postgres::Pg;
use super::*;

/// `secs` as `2026-01-15T08:00:00Z` (Howard Hinnant's `civil_from_days`).
fn iso(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn iso_helper() {
    assert_eq!(iso(1_800_000_000), "2027-01-15T08:00:00Z");
    assert_eq!(iso(951_782_400), "2000-02-29T00:00:00Z");
}

/// `text` in a temporary file.
fn csv_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

/// `tokenward args` with `input` on standard input.
fn run_stdin(args: &[&str], input: &[u8]) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenward"))
        .args(args)
        .env_remove("TOKENWARD_REDIS_URL")
        .env_remove("TOKENWARD_POSTGRES_URL")
        .env("TOKENWARD_ISSUER", ISSUER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let out = Out {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out
}

/// `revoke --import FILE` with `stores`.
fn import(stores: &[&str], file: &tempfile::NamedTempFile) -> Out {
    let path = file.path().to_str().unwrap();
    run(&[&["revoke", "--import", path][..], stores].concat())
}

/// The counts of an import's output, and its other lines.
fn import_counts(out: &Out) -> ([u64; 4], Vec<String>) {
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let mut counts = [0; 4];
    for (i, label) in ["rows", "imported", "skipped (expired)", "duplicates"]
        .iter()
        .enumerate()
    {
        let value = lines[i]
            .strip_prefix(&format!("{label}: "))
            .unwrap_or_else(|| panic!("line {i} is not {label}: {}", out.stdout));
        counts[i] = value.parse().unwrap();
    }
    let rest = lines[4..].iter().map(|l| (*l).to_owned()).collect();
    (counts, rest)
}

/// The rows of a denylist, good and malformed: `(fixed file, file with malformed rows, the
/// malformed rows' lines and what their messages say)`.
fn denylist(now: u64) -> (String, String, Vec<(usize, &'static str)>) {
    let long = "x".repeat(tokenward_core::MAX_SCOPED_ID_LEN + 1);
    let good = [
        format!("live-iso,{}", iso(now + 3600)),
        format!("live-unix,{}", now + 7200),
        format!(
            "\"live-quoted\",\"{}\"",
            iso(now + 600).replace('T', " ").replace('Z', "")
        ),
        format!("expired-iso,{}", iso(now - 3600)),
        "expired-unix,1000".to_owned(),
        // Expired less than the verifiers' leeway ago: still accepted, so revoked.
        format!("leeway,{}", now - 60),
        format!("dup,{}", now + 100),
        format!("dup,{}", now + 5000),
        format!("dup,{}", now - 9999),
    ];
    let bad: [(String, &str); 5] = [
        (format!(",{}", now + 100), "empty jti"),
        ("bad-exp,tomorrow".to_owned(), "neither Unix seconds"),
        (
            format!("three,{},fields", now + 100),
            "3 fields, the header has 2",
        ),
        (format!("{long},{}", now + 100), "longer than"),
        ("\"multi\nline\",soon".to_owned(), "neither Unix seconds"),
    ];
    let fixed = format!("jti,exp\n{}\n", good.join("\n"));
    // Interleaved: header, good, bad, good, bad, ...
    let mut text = "jti,exp\n".to_owned();
    let mut line = 2;
    let mut lines = Vec::new();
    let mut bad = bad.into_iter();
    for row in &good {
        text.push_str(row);
        text.push('\n');
        line += 1;
        if let Some((row, says)) = bad.next() {
            lines.push((line, says));
            line += row.matches('\n').count() + 1;
            text.push_str(&row);
            text.push('\n');
        }
    }
    (fixed, text, lines)
}

/// The issue's case: a CSV with expired, live, duplicate and malformed rows. The malformed
/// rows are reported with their line numbers and nothing is written; the fixed file imports
/// with the right counts, and `check` finds a live jti revoked and an expired one not.
#[test]
fn import_into_postgres_malformed_rows_then_the_fixed_file() {
    let pg = Pg::new("cli_pg_import");
    let db = pg.args();
    // The tables exist (any command migrates), so "nothing written" is a count of 0.
    assert_eq!(
        run(&[&["check"][..], &db, &["--jti", "x"]].concat()).code,
        0
    );
    let now = now();
    let (fixed, broken, bad_lines) = denylist(now);

    let file = csv_file(&broken);
    let out = import(&db, &file);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let stderr: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(stderr.len(), bad_lines.len() + 1, "{}", out.stderr);
    let path = file.path().display().to_string();
    for (got, (line, says)) in stderr.iter().zip(&bad_lines) {
        let prefix = format!("tokenward: {path}: line {line}: ");
        assert!(got.starts_with(&prefix), "{prefix}: {}", out.stderr);
        assert!(got.contains(says), "{says}: {got}");
    }
    assert_eq!(
        stderr.last().unwrap(),
        &format!("tokenward: error: {path}: 5 rows malformed; nothing was imported")
    );
    assert_eq!(pg.rows(), 0, "nothing half-imported");

    let (counts, rest) = import_counts(&import(&db, &csv_file(&fixed)));
    // 9 rows: 5 revoked (live-iso, live-unix, live-quoted, leeway, dup), 2 expired, 2 more
    // rows of dup.
    assert_eq!(counts, [9, 5, 2, 2]);
    assert_eq!(
        rest,
        [
            format!(
                "issuer: {ISSUER} (key tag {})",
                IssuerScope::new(ISSUER).tag()
            ),
            format!("postgres schema: {}", pg.name())
        ]
    );
    assert_eq!(pg.rows(), 5);
    for (jti, code) in [
        ("live-iso", 1),
        ("live-unix", 1),
        ("live-quoted", 1),
        ("leeway", 1),
        ("dup", 1),
        ("expired-iso", 0),
        ("expired-unix", 0),
        ("bad-exp", 0),
    ] {
        let out = run(&[&["check"][..], &db, &["--jti", jti]].concat());
        assert_eq!(out.code, code, "{jti}: {}{}", out.stdout, out.stderr);
    }
    // The duplicate kept its latest exp (+ the 5-minute leeway); the unix one its own.
    let live = pg.with_store(|store| async move { store.live_revocations(None, 100).await });
    let until_of = |jti: &str| {
        let id = IssuerScope::new(ISSUER).id(jti).unwrap();
        live.as_ref()
            .unwrap()
            .iter()
            .find_map(|r| match r {
                LiveRevocation::Token { id: i, until } if *i == id => Some(until.as_secs()),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(until_of("dup"), now + 5000 + 300);
    assert_eq!(until_of("live-unix"), now + 7200 + 300);
    assert_eq!(until_of("live-iso"), now + 3600 + 300);
    // Importing again changes nothing (idempotent).
    let (counts, _) = import_counts(&import(&db, &csv_file(&fixed)));
    assert_eq!(counts, [9, 5, 2, 2]);
    assert_eq!(pg.rows(), 5);
    pg.drop();
}

/// A `jwt_denylist` table as devise-jwt's generator makes it (`exp` a `datetime`: a
/// timestamp without zone, in UTC), exported by PostgreSQL itself as the migration guide
/// says: whole table with a header (`id,jti,exp`), `jti,exp` without header and every field
/// quoted (through standard input), and `timestamptz` in another session time zone.
#[test]
fn import_a_devise_jwt_table_exported_by_postgres() {
    let pg = Pg::new("cli_pg_devise");
    pg.block_on(
        sqlx::raw_sql(
            "CREATE TABLE jwt_denylist (id bigserial PRIMARY KEY, jti varchar NOT NULL, \
               exp timestamp NOT NULL); \
             INSERT INTO jwt_denylist (jti, exp) VALUES \
               ('live-1', (now() AT TIME ZONE 'UTC') + interval '1 hour 0.123456 second'), \
               ('live-2', (now() AT TIME ZONE 'UTC') + interval '2 hours'), \
               ('old-1', (now() AT TIME ZONE 'UTC') - interval '1 day'), \
               ('old-2', (now() AT TIME ZONE 'UTC') - interval '10 minutes');",
        )
        .execute(&pg_pool(&pg)),
    )
    .unwrap();
    let export = |sql: &str| -> String {
        let pool = pg_pool(&pg);
        let bytes: Vec<u8> = pg.block_on(async {
            let stream = pool.copy_out_raw(sql).await.unwrap();
            stream
                .try_fold(Vec::new(), |mut all, chunk| async move {
                    all.extend_from_slice(&chunk);
                    Ok(all)
                })
                .await
                .unwrap()
        });
        String::from_utf8(bytes).unwrap()
    };
    let whole =
        export("COPY (SELECT * FROM jwt_denylist ORDER BY id) TO STDOUT (FORMAT csv, HEADER)");
    assert!(whole.starts_with("id,jti,exp\n1,live-1,"), "{whole}");
    let db = pg.args();
    let (counts, _) = import_counts(&import(&db, &csv_file(&whole)));
    assert_eq!(counts, [4, 2, 2, 0]);
    for (jti, code) in [("live-1", 1), ("live-2", 1), ("old-1", 0), ("old-2", 0)] {
        assert_eq!(
            run(&[&["check"][..], &db, &["--jti", jti]].concat()).code,
            code,
            "{jti}"
        );
    }

    // The guide's command: live rows only, no header; every field quoted; from stdin.
    let (url, prefix) = redis();
    let redis_args = ["--redis", url.as_str(), "--prefix", prefix.as_str()];
    let live = export(
        "COPY (SELECT jti, exp FROM jwt_denylist WHERE exp > now() AT TIME ZONE 'UTC') \
         TO STDOUT (FORMAT csv, FORCE_QUOTE *)",
    );
    assert!(live.starts_with("\"live-1\",\"20"), "{live}");
    let out = run_stdin(
        &[&["revoke", "--import", "-"][..], &redis_args].concat(),
        live.as_bytes(),
    );
    assert_eq!(import_counts(&out).0, [2, 2, 0, 0]);
    assert!(library_check(&url, &prefix, token(Some("live-2"), None, None, None)).is_revoked());

    // timestamptz, exported in a session at +05:30: the offset is honoured.
    let tz = export(
        "COPY (SELECT jti, (exp AT TIME ZONE 'UTC') AT TIME ZONE 'Asia/Kolkata' || '+05:30' \
         AS exp FROM jwt_denylist) TO STDOUT (FORMAT csv, HEADER)",
    );
    assert!(tz.lines().nth(1).unwrap().ends_with("+05:30"), "{tz}");
    let (counts, _) = import_counts(&import(&db, &csv_file(&tz)));
    assert_eq!(counts, [4, 2, 2, 0]);
    assert_eq!(pg.rows(), 2);
    pg.drop();
}

fn pg_pool(pg: &Pg) -> sqlx::PgPool {
    pg.pool().clone()
}

/// Redis alone: concurrent writes, the same counts; a headerless file of Unix times.
#[test]
fn import_into_redis_alone() {
    let (url, prefix) = redis();
    let stores = ["--redis", url.as_str(), "--prefix", prefix.as_str()];
    let now = now();
    let text = format!(
        "a,{}\nb,{}.5\nold,{}\na,{}\n",
        now + 600,
        now + 1200,
        now - 1000,
        now + 60
    );
    let out = import(&stores, &csv_file(&text));
    let (counts, rest) = import_counts(&out);
    assert_eq!(counts, [4, 2, 1, 1]);
    assert_eq!(rest.last().unwrap(), &format!("redis key prefix: {prefix}"));
    for (jti, revoked) in [("a", true), ("b", true), ("old", false)] {
        let status = library_check(&url, &prefix, token(Some(jti), None, None, None));
        assert_eq!(status.is_revoked(), revoked, "{jti}");
        assert_eq!(check(&url, &prefix, &["--jti", jti]).0, i32::from(revoked));
    }
}

/// A few thousand rows into both stores (one transaction, then 256 writes in flight); more
/// than 20 malformed rows are listed up to 20.
#[test]
fn import_thousands_of_rows_into_both_stores() {
    let pg = Pg::new("cli_pg_import_many");
    let (url, prefix) = redis();
    let both = [
        &["--redis", url.as_str(), "--prefix", prefix.as_str()][..],
        &pg.args(),
    ]
    .concat();
    let now = now();
    let mut text = String::from("jti,exp\n");
    for i in 0..3000 {
        let exp = if i % 10 == 0 {
            now - 3600
        } else {
            now + 600 + i
        };
        text.push_str(&format!("jti-{i},{exp}\n"));
    }
    let mut broken = text.clone();
    for i in 0..25 {
        broken.push_str(&format!("bad-{i},never\n"));
    }
    let out = import(&both, &csv_file(&broken));
    assert_eq!(out.code, 2, "{}", out.stdout);
    let stderr: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(stderr.len(), 22, "{}", out.stderr);
    assert!(stderr[0].contains(": line 3002: "), "{}", stderr[0]);
    assert!(stderr[19].contains(": line 3021: "), "{}", stderr[19]);
    assert!(stderr[20].ends_with(": … and 5 more"), "{}", stderr[20]);
    assert!(stderr[21].contains("25 rows malformed; nothing was imported"));
    assert_eq!(
        block_on(async {
            tokenward_testsupport::keys_under(&mut shared_redis().await, &prefix).await
        })
        .unwrap(),
        Vec::<String>::new()
    );

    let (counts, rest) = import_counts(&import(&both, &csv_file(&text)));
    assert_eq!(counts, [3000, 2700, 300, 0]);
    assert_eq!(rest.len(), 3, "{rest:?}");
    assert_eq!(pg.rows(), 2700);
    let keys = block_on(async {
        tokenward_testsupport::keys_under(&mut shared_redis().await, &prefix).await
    })
    .unwrap();
    assert_eq!(keys.len(), 2700);
    for (jti, revoked) in [("jti-1", true), ("jti-2999", true), ("jti-10", false)] {
        let t = token(Some(jti), None, None, None);
        assert_eq!(
            library_check(&url, &prefix, t.clone()).is_revoked(),
            revoked
        );
        assert_eq!(pg.library_check(t).is_revoked(), revoked, "{jti}");
    }
    pg.drop();
}

/// A Redis that refuses writes after its startup check: alone, the import fails saying
/// what was written and to run it again; with PostgreSQL, PostgreSQL has every row.
#[test]
fn import_when_redis_fails() {
    let pg = Pg::new("cli_pg_import_redis_fails");
    let server = ThrowawayRedis::builder()
        .arg("--min-replicas-to-write")
        .arg("1")
        .start();
    let url = server.url();
    let now = now();
    let file = csv_file(&format!("a,{}\nb,{}\n", now + 600, now + 600));
    let out = import(&["--redis", &url], &file);
    assert_eq!(out.code, 2, "{}", out.stdout);
    for says in [
        "Redis failed with 0 of 2 revocations written",
        "NOREPLICAS",
        "run the same import again",
    ] {
        assert!(out.stderr.contains(says), "{says}: {}", out.stderr);
    }
    let both = [&["--redis", url.as_str()][..], &pg.args()].concat();
    let out = import(&both, &file);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr.contains(
            "PostgreSQL (the durable copy) has every revocation of the import, but Redis \
             failed with 0 of 2 written"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(pg.rows(), 2);
    pg.drop();
}

/// A file that cannot be read, and a header naming only one of the columns: exit 2, nothing
/// on stdout.
#[test]
fn unreadable_files_exit_2() {
    let pg = Pg::new("cli_pg_import_files");
    let db = pg.args();
    let missing = std::env::temp_dir().join("tokenward-no-such-denylist.csv");
    let out = run(&[&["revoke", "--import", missing.to_str().unwrap()][..], &db].concat());
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("tokenward-no-such-denylist.csv"),
        "{}",
        out.stderr
    );
    let out = import(&db, &csv_file("jti,expires_at\na,1\n"));
    assert_eq!(out.code, 2);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr
            .contains("line 1: the header row names no \"exp\" column"),
        "{}",
        out.stderr
    );
    pg.drop();
}
