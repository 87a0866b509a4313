//! Reading a denylist export for `tokenward revoke --import`: a CSV file of `jti,exp` rows, as
//! `psql \copy … CSV [HEADER]` or MySQL's `SELECT … INTO OUTFILE` writes a devise-jwt
//! `jwt_denylist` table.
//!
//! - **Header row optional.** The first row is a header when it names a `jti` or an `exp`
//!   column (case-insensitive) and is not itself a valid `jti,exp` row; the columns are then
//!   found by name, so a whole-table export (`id,jti,exp,…`) works. Without a header, every
//!   row is exactly `jti,exp`.
//! - **Quoted fields** (`"abc","2024-01-01 00:00:00"`, `""` for a quote, line breaks inside
//!   quotes) as RFC 4180 says; empty lines are ignored; a UTF-8 byte order mark is ignored.
//! - **`exp`**: Unix seconds or a timestamp ([`exp::parse_exp`]; without a zone, UTC).
//! - **Malformed rows** — a wrong number of fields, an empty `jti`, one longer than an
//!   issuer-scoped id can be, an unreadable `exp`, text that is not UTF-8 — are all collected
//!   with their line number (1-based, where the row starts, as an editor shows it), so one
//!   run lists every problem and nothing is written until the file is clean.

pub(crate) mod exp;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::Read;

use tokenward_core::{IssuerScope, StoreId, UnixTime};

use self::exp::parse_exp;
use crate::error::plural;

/// A row that cannot be imported: where, and why (never the `jti` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    /// The line the row starts on, 1-based.
    pub(crate) line: u64,
    /// What is wrong with it.
    pub(crate) reason: String,
}

/// A denylist file read to the end.
#[derive(Debug, Default)]
pub(crate) struct Denylist {
    /// Every valid row in file order: the issuer-scoped `jti` and its `exp`.
    pub(crate) rows: Vec<(StoreId<'static>, UnixTime)>,
    /// Every malformed row, in file order.
    pub(crate) malformed: Vec<Malformed>,
    /// Whether the first row was a header.
    pub(crate) header: bool,
}

/// Where `jti` and `exp` are, and how many fields a row has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Columns {
    jti: usize,
    exp: usize,
    width: usize,
}

/// The layout of a file without a header.
const HEADERLESS: Columns = Columns {
    jti: 0,
    exp: 1,
    width: 2,
};

/// Why a file could not be read at all (as opposed to rows that are malformed).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The header names one of `jti` and `exp` but not the other.
    #[error("line {line}: the header row names no {missing:?} column (it needs jti and exp)")]
    Header {
        /// The header's line.
        line: u64,
        /// The column it lacks.
        missing: &'static str,
    },
}

/// Reads the whole of `input`, each `jti` scoped to `scope` (and checked against the store's
/// id limit in that scope).
pub(crate) fn read(input: impl Read, scope: &IssuerScope) -> Result<Denylist, ReadError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut record = csv::ByteRecord::new();
    let mut out = Denylist::default();
    let mut columns = HEADERLESS;
    let mut first = true;
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        let line = record.position().map_or(0, csv::Position::line);
        if first {
            first = false;
            strip_bom(&mut record);
            if let Some(header) = header_columns(&record, line)? {
                columns = header;
                out.header = true;
                continue;
            }
        }
        match parse_row(&record, columns, out.header, scope) {
            Ok(row) => out.rows.push(row),
            Err(reason) => out.malformed.push(Malformed { line, reason }),
        }
    }
    Ok(out)
}

/// The csv crate's errors, for a reader without UTF-8 decoding and with flexible records:
/// only I/O can fail.
fn csv_error(e: csv::Error) -> ReadError {
    let message = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(io) => ReadError::Io(io),
        _ => ReadError::Io(std::io::Error::other(message)),
    }
}

/// A UTF-8 byte order mark (Excel's CSV files start with one) before the first field.
fn strip_bom(record: &mut csv::ByteRecord) {
    let Some(first) = record.get(0) else { return };
    let Some(rest) = first.strip_prefix(b"\xEF\xBB\xBF") else {
        return;
    };
    let mut fields: Vec<Vec<u8>> = record.iter().map(<[u8]>::to_vec).collect();
    if let Some(field) = fields.first_mut() {
        *field = rest.to_vec();
    }
    let position = record.position().cloned();
    *record = csv::ByteRecord::from(fields);
    record.set_position(position);
}

/// The columns named by `record` if it is a header: it names `jti` or `exp` and is not a
/// valid headerless row (a token whose jti is literally `exp` stays a row).
fn header_columns(record: &csv::ByteRecord, line: u64) -> Result<Option<Columns>, ReadError> {
    let find = |name: &str| {
        record
            .iter()
            .position(|f| f.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
    };
    let (jti, exp) = (find("jti"), find("exp"));
    if jti.is_none() && exp.is_none() {
        return Ok(None);
    }
    let is_row = record.len() == 2
        && record
            .get(1)
            .and_then(|f| std::str::from_utf8(f).ok())
            .is_some_and(|f| parse_exp(f).is_ok());
    if is_row {
        return Ok(None);
    }
    match (jti, exp) {
        (Some(jti), Some(exp)) => Ok(Some(Columns {
            jti,
            exp,
            width: record.len(),
        })),
        (None, _) => Err(ReadError::Header {
            line,
            missing: "jti",
        }),
        (_, None) => Err(ReadError::Header {
            line,
            missing: "exp",
        }),
    }
}

/// One data row, or why it is malformed.
fn parse_row(
    record: &csv::ByteRecord,
    columns: Columns,
    header: bool,
    scope: &IssuerScope,
) -> Result<(StoreId<'static>, UnixTime), String> {
    if record.len() != columns.width {
        let fields = plural(record.len(), "field");
        return Err(if header {
            format!("{fields}, the header has {}", columns.width)
        } else {
            format!(
                "{fields}, expected 2 (jti,exp; a file with other columns needs a header row \
                 naming them)"
            )
        });
    }
    let field = |i: usize, name: &str| -> Result<&str, String> {
        let bytes = record.get(i).unwrap_or_default();
        std::str::from_utf8(bytes).map_err(|_| format!("{name} is not UTF-8"))
    };
    let jti = field(columns.jti, "jti")?;
    if jti.is_empty() {
        return Err("empty jti".to_owned());
    }
    let id = scope.id(jti).map_err(|e| format!("jti: {e}"))?;
    let exp_text = field(columns.exp, "exp")?;
    let exp = parse_exp(exp_text).map_err(|e| match e {
        exp::ExpError::Empty => e.to_string(),
        _ => format!("{e}: {:?}", shorten(exp_text.trim())),
    })?;
    Ok((id, exp))
}

/// At most 40 characters of `text`, for a message.
fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", text.get(..end).unwrap_or(text)),
        None => text.to_owned(),
    }
}

/// What an import writes: each `jti` once, with its latest `exp`, split by whether its
/// revocation would still be in force at `now`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Revocations to write: `(id, until)`, `until` = [`revoke_until`] of the `exp`.
    ///
    /// [`revoke_until`]: tokenward_revocation::revoke_until
    pub(crate) live: Vec<(StoreId<'static>, UnixTime)>,
    /// `jti`s whose revocation would already have ended: the token expired more than the
    /// verifiers' leeway ago, so nothing can accept it.
    pub(crate) expired: u64,
    /// Rows naming a `jti` an earlier row named (the later `exp` is kept).
    pub(crate) duplicates: u64,
}

/// The [`Plan`] for `rows` at `now`.
pub(crate) fn plan(rows: Vec<(StoreId<'static>, UnixTime)>, now: UnixTime) -> Plan {
    let mut latest: HashMap<StoreId<'static>, UnixTime> = HashMap::with_capacity(rows.len());
    let mut plan = Plan::default();
    for (id, exp) in rows {
        match latest.entry(id) {
            Entry::Occupied(mut kept) => {
                plan.duplicates += 1;
                if exp > *kept.get() {
                    kept.insert(exp);
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(exp);
            }
        }
    }
    for (id, exp) in latest {
        let until = tokenward_revocation::revoke_until(exp);
        if until > now {
            plan.live.push((id, until));
        } else {
            plan.expired += 1;
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://auth.example";
    /// 2024-01-01T12:00:00Z.
    const NOON: u64 = 1_704_110_400;

    fn scope() -> IssuerScope {
        IssuerScope::new(ISS)
    }

    fn id(jti: &str) -> StoreId<'static> {
        scope().id(jti).unwrap()
    }

    fn read_str(text: &str) -> Denylist {
        read(text.as_bytes(), &scope()).unwrap()
    }

    /// `(jti, exp seconds)` of the valid rows, and `(line, reason)` of the malformed ones.
    fn check(text: &str, rows: &[(&str, u64)], malformed: &[(u64, &str)]) {
        let list = read_str(text);
        let got: Vec<(StoreId<'static>, u64)> = list
            .rows
            .iter()
            .map(|(id, exp)| (id.clone(), exp.as_secs()))
            .collect();
        let expected: Vec<(StoreId<'static>, u64)> =
            rows.iter().map(|(jti, exp)| (id(jti), *exp)).collect();
        assert_eq!(got, expected, "{text:?}");
        assert_eq!(list.malformed.len(), malformed.len(), "{text:?}: {list:?}");
        for (got, (line, says)) in list.malformed.iter().zip(malformed) {
            assert_eq!(got.line, *line, "{text:?}: {got:?}");
            assert!(
                got.reason.contains(says),
                "{text:?}: {got:?} lacks {says:?}"
            );
        }
    }

    #[test]
    fn headerless_rows() {
        check(
            "a,1704110400\nb,2024-01-01 12:00:00\r\nc,2024-01-01T12:00:00Z",
            &[("a", NOON), ("b", NOON), ("c", NOON)],
            &[],
        );
        assert!(!read_str("a,1704110400\n").header);
        // Quoted fields as psql and MySQL write them; `""` is a quote; a jti is kept as is.
        check(
            "\"a\",\"2024-01-01 12:00:00\"\n\"b\"\"q\",\"1704110400\"\n\" c \",1704110400\n",
            &[("a", NOON), ("b\"q", NOON), (" c ", NOON)],
            &[],
        );
        // Empty lines are not rows; whitespace around exp is ignored.
        check("\n\na, 1704110400 \n\n", &[("a", NOON)], &[]);
        check("", &[], &[]);
    }

    #[test]
    fn header_rows_locate_the_columns() {
        for text in [
            "jti,exp\na,1704110400\n",
            "JTI , Exp\r\na,1704110400\r\n",
            "\"jti\",\"exp\"\n\"a\",\"2024-01-01 12:00:00\"\n",
            "\u{feff}jti,exp\na,1704110400\n",
        ] {
            let list = read_str(text);
            assert!(list.header, "{text:?}");
            check(text, &[("a", NOON)], &[]);
        }
        // devise-jwt's whole table, columns in any order.
        check(
            "id,jti,exp\n1,a,2024-01-01 12:00:00\n2,b,1704110400\n",
            &[("a", NOON), ("b", NOON)],
            &[],
        );
        check(
            "exp,id,jti,created_at\n1704110400,7,a,x\n",
            &[("a", NOON)],
            &[],
        );
        // A header with extra columns: every row has as many fields.
        check(
            "id,jti,exp\n1,a,1704110400\n2,b\n3,c,1704110400,extra\n",
            &[("a", NOON)],
            &[(3, "2 fields, the header has 3"), (4, "4 fields")],
        );
        // A first row that is a valid row stays a row, whatever its jti.
        check("exp,1704110400\njti,1\n", &[("exp", NOON), ("jti", 1)], &[]);
        check("jti,1704110400\n", &[("jti", NOON)], &[]);
    }

    #[test]
    fn a_header_must_name_both_columns() {
        for (text, missing) in [("jti,expires_at\na,1\n", "exp"), ("id,exp\n1,1\n", "jti")] {
            let err = read(text.as_bytes(), &scope()).unwrap_err();
            assert!(
                matches!(err, ReadError::Header { line: 1, missing: m } if m == missing),
                "{text:?}: {err}"
            );
            assert!(err.to_string().contains("needs jti and exp"), "{err}");
        }
        // A header naming neither is not recognised: its row is malformed.
        check(
            "token,expires_at\na,1704110400\n",
            &[("a", NOON)],
            &[(1, "neither Unix seconds")],
        );
    }

    #[test]
    fn malformed_rows_are_all_reported_with_their_lines() {
        let long = "x".repeat(tokenward_core::MAX_SCOPED_ID_LEN + 1);
        let longest = "y".repeat(tokenward_core::MAX_SCOPED_ID_LEN);
        let text = format!(
            "a,1704110400\n\
             ,1704110400\n\
             b,tomorrow\n\
             c\n\
             d,1,2\n\
             {long},1704110400\n\
             {longest},1704110400\n\
             e,\n\
             \"multi\nline\",1704110400\n\
             f,-5\n\
             g,1704110400000\n\
             h,\"2024-01-01\n12:00:00\"\n\
             i,2024-01-01 12:00:00\n\
             j\0k,1704110400\n"
        );
        check(
            &text,
            &[
                ("a", NOON),
                (&longest, NOON),
                ("multi\nline", NOON),
                ("i", NOON),
            ],
            &[
                (2, "empty jti"),
                (3, "neither Unix seconds nor an ISO 8601 timestamp"),
                (4, "1 field, expected 2"),
                (5, "3 fields, expected 2"),
                (6, "longer than"),
                (8, "empty exp"),
                (11, "before 1970"),
                (12, "milliseconds"),
                // A quoted line break inside exp: the row starts on line 13.
                (13, "neither Unix seconds"),
                (16, "NUL"),
            ],
        );
        // The exp is quoted in the message (shortened), the jti never is.
        let list = read_str("secret-jti,not-a-time\n");
        let reason = &list.malformed.first().unwrap().reason;
        assert!(reason.ends_with("\"not-a-time\""), "{reason}");
        assert!(!reason.contains("secret-jti"), "{reason}");
        let list = read_str(&format!("a,{}\n", "9".repeat(50) + "x"));
        assert!(
            list.malformed.first().unwrap().reason.contains('…'),
            "{list:?}"
        );
    }

    #[test]
    fn text_that_is_not_utf8_is_malformed() {
        let list = read(&b"a,1704110400\n\xff,1704110400\nb,\xfe\n"[..], &scope()).unwrap();
        assert_eq!(list.rows.len(), 1);
        let lines: Vec<(u64, &str)> = list
            .malformed
            .iter()
            .map(|m| (m.line, m.reason.as_str()))
            .collect();
        assert_eq!(lines, [(2, "jti is not UTF-8"), (3, "exp is not UTF-8")]);
    }

    #[test]
    fn ids_are_scoped_by_the_issuer() {
        let list = read_str("a,1704110400\n");
        let (got, _) = list.rows.first().unwrap();
        assert_eq!(got, &IssuerScope::new(ISS).id("a").unwrap());
        assert_ne!(
            got,
            &IssuerScope::new("https://other.example").id("a").unwrap()
        );
    }

    #[test]
    fn plans_keep_the_latest_exp_and_skip_what_has_ended() {
        let now = UnixTime::from_secs(NOON);
        let margin = tokenward_revocation::LEEWAY_MARGIN.as_secs();
        let rows = vec![
            (id("live"), UnixTime::from_secs(NOON + 60)),
            // Expired, but within the verifiers' leeway: still revoked.
            (id("leeway"), UnixTime::from_secs(NOON - margin + 1)),
            (id("gone"), UnixTime::from_secs(NOON - margin)),
            (id("old"), UnixTime::from_secs(1)),
            // A duplicate extends; an earlier duplicate does not shorten.
            (id("dup"), UnixTime::from_secs(NOON - 10_000)),
            (id("dup"), UnixTime::from_secs(NOON + 100)),
            (id("live"), UnixTime::from_secs(NOON + 30)),
            // A duplicate of an expired row keeps it expired.
            (id("old"), UnixTime::from_secs(2)),
        ];
        let mut plan = plan(rows, now);
        plan.live.sort();
        let mut expected = vec![
            (id("live"), UnixTime::from_secs(NOON + 60 + margin)),
            (id("leeway"), UnixTime::from_secs(NOON + 1)),
            (id("dup"), UnixTime::from_secs(NOON + 100 + margin)),
        ];
        expected.sort();
        assert_eq!(
            plan,
            Plan {
                live: expected,
                expired: 2,
                duplicates: 3
            }
        );
        assert_eq!(super::plan(Vec::new(), now), Plan::default());
    }
}
