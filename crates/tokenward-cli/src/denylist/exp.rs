//! The `exp` column of a denylist export: Unix seconds, or a timestamp as ISO 8601 / RFC 3339
//! writes it or as PostgreSQL and MySQL export one. A timestamp without a zone is UTC (Rails
//! stores `datetime` columns in UTC).
//!
//! The calendar work (field ranges, month lengths, leap years, offsets) is the `time` crate's
//! ISO 8601 parser; this module only brings the SQL forms to ISO 8601 first: a space instead
//! of `T`, a zone written ` UTC`, `+00` or after a space, lowercase `t`/`z`.

use std::time::Duration;

use time::format_description::well_known::Iso8601;
use time::{OffsetDateTime, PrimitiveDateTime};
use tokenward_core::UnixTime;

/// The latest `exp` accepted: 9999-12-31T23:59:59Z. A later one is almost certainly in
/// milliseconds or microseconds, not seconds.
pub(crate) const MAX_EXP_SECS: u64 = 253_402_300_799;

/// The largest UTC offset accepted, ±18:00 (as java.time and others).
const MAX_OFFSET_SECS: u32 = 18 * 3600;

/// Why an `exp` value is unusable (the message never repeats the value: the caller decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpError {
    /// Nothing there.
    Empty,
    /// Neither Unix seconds nor a timestamp this module reads.
    NotATime,
    /// Before 1970-01-01T00:00:00Z.
    BeforeEpoch,
    /// After 9999-12-31: a Unix time in milliseconds or microseconds?
    TooLate,
}

impl std::fmt::Display for ExpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExpError::Empty => "empty exp",
            ExpError::NotATime => {
                "exp is neither Unix seconds nor an ISO 8601 timestamp \
                 (2024-01-01T12:00:00Z, 2024-01-01 12:00:00[.ffffff][+00])"
            }
            ExpError::BeforeEpoch => "exp is before 1970",
            ExpError::TooLate => "exp is after 9999-12-31 (milliseconds instead of seconds?)",
        })
    }
}

/// `text` (surrounding whitespace ignored) as an instant:
///
/// - Unix seconds: `1767268800`, `1767268800.25` (digits, optionally a fraction);
/// - ISO 8601 / RFC 3339: `2026-01-01T12:00:00Z`, `2026-01-01T12:00:00.123+02:00`;
/// - SQL exports: `2026-01-01 12:00:00`, `2026-01-01 12:00:00.123456`,
///   `2026-01-01 12:00:00+00`, `2026-01-01 12:00:00 UTC`, `2026-01-01 12:00:00 +02:00`.
///
/// A timestamp without a zone is UTC.
pub(crate) fn parse_exp(text: &str) -> Result<UnixTime, ExpError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ExpError::Empty);
    }
    if text.starts_with('-')
        && text
            .bytes()
            .skip(1)
            .all(|b| b.is_ascii_digit() || b == b'.')
    {
        return Err(ExpError::BeforeEpoch);
    }
    let since_epoch = if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        unix_seconds(text)?
    } else {
        timestamp(text)?
    };
    if since_epoch.as_secs() > MAX_EXP_SECS {
        return Err(ExpError::TooLate);
    }
    Ok(UnixTime::from_duration(since_epoch))
}

/// `123` or `123.456` (at most nanoseconds are kept; further digits are dropped).
fn unix_seconds(text: &str) -> Result<Duration, ExpError> {
    let (int, frac) = match text.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (text, None),
    };
    if int.is_empty() || frac.is_some_and(|f| f.is_empty() || f.contains('.')) {
        return Err(ExpError::NotATime);
    }
    // All digits (checked by the caller): only too many of them fail.
    let secs: u64 = int.parse().map_err(|_| ExpError::TooLate)?;
    let mut nanos = 0u32;
    for (i, digit) in frac.unwrap_or("").bytes().take(9).enumerate() {
        let place = 10u32.pow(8 - u32::try_from(i).unwrap_or(8));
        nanos += u32::from(digit - b'0') * place;
    }
    Ok(Duration::new(secs, nanos))
}

/// A timestamp: `DATE[T| ]TIME[ZONE]`, the zone optional (UTC), brought to ISO 8601 and
/// parsed by `time`.
fn timestamp(text: &str) -> Result<Duration, ExpError> {
    let iso = to_iso8601(text).ok_or(ExpError::NotATime)?;
    let at = match OffsetDateTime::parse(&iso, &Iso8601::DEFAULT) {
        Ok(at) => at,
        Err(_) => PrimitiveDateTime::parse(&iso, &Iso8601::DEFAULT)
            .map_err(|_| ExpError::NotATime)?
            .assume_utc(),
    };
    // `time` reads offsets up to ±25:59:59; the world's span from -12:00 to +14:00.
    if at.offset().whole_seconds().unsigned_abs() > MAX_OFFSET_SECS {
        return Err(ExpError::NotATime);
    }
    let nanos = at.unix_timestamp_nanos();
    if nanos < 0 {
        return Err(ExpError::BeforeEpoch);
    }
    let nanos = u128::try_from(nanos).map_err(|_| ExpError::BeforeEpoch)?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| ExpError::TooLate)?;
    let subsec = u32::try_from(nanos % 1_000_000_000).map_err(|_| ExpError::NotATime)?;
    Ok(Duration::new(secs, subsec))
}

/// `2026-01-01 12:00:00.5 UTC` → `2026-01-01T12:00:00.5Z`; `None` when the text does not
/// have the shape `DATE SEP TIME [ZONE]` (the date and time themselves are `time`'s to check).
fn to_iso8601(text: &str) -> Option<String> {
    let date = text.get(..10)?;
    let rest = text.get(10..)?;
    let rest = rest
        .strip_prefix(['T', 't'])
        .or_else(|| rest.strip_prefix(' '))?;
    // The time is digits, `:` and a fraction; whatever follows is the zone.
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.' || c == ','))
        .unwrap_or(rest.len());
    let (time, zone) = rest.split_at(end);
    let zone = zone.trim_start();
    let zone = if zone.is_empty() {
        ""
    } else if zone.eq_ignore_ascii_case("z") || zone.eq_ignore_ascii_case("utc") {
        "Z"
    } else if zone.starts_with(['+', '-']) {
        zone
    } else {
        return None;
    };
    Some(format!("{date}T{time}{zone}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-01-01T12:00:00Z.
    const NOON: u64 = 1_704_110_400;

    fn secs(text: &str) -> Result<u64, ExpError> {
        parse_exp(text).map(UnixTime::as_secs)
    }

    fn millis(text: &str) -> Result<u64, ExpError> {
        parse_exp(text).map(UnixTime::as_millis)
    }

    #[test]
    fn unix_seconds() {
        for (text, expected) in [
            ("0", Ok(0)),
            ("1704110400", Ok(NOON)),
            ("  1704110400\t", Ok(NOON)),
            ("1704110400.999", Ok(NOON)),
            ("253402300799", Ok(MAX_EXP_SECS)),
            ("253402300800", Err(ExpError::TooLate)),
            ("1704110400000", Err(ExpError::TooLate)),
            ("99999999999999999999999", Err(ExpError::TooLate)),
            ("-1", Err(ExpError::BeforeEpoch)),
            ("-1704110400.5", Err(ExpError::BeforeEpoch)),
            ("", Err(ExpError::Empty)),
            ("   ", Err(ExpError::Empty)),
            (".5", Err(ExpError::NotATime)),
            ("1704110400.", Err(ExpError::NotATime)),
            ("1.2.3", Err(ExpError::NotATime)),
            ("1e9", Err(ExpError::NotATime)),
            ("+1704110400", Err(ExpError::NotATime)),
            ("0x10", Err(ExpError::NotATime)),
        ] {
            assert_eq!(secs(text), expected, "{text:?}");
        }
        assert_eq!(millis("1704110400.25"), Ok(NOON * 1000 + 250));
        assert_eq!(millis("1704110400.0019999999999"), Ok(NOON * 1000 + 1));
        assert_eq!(
            parse_exp("1704110400.123456789").map(|t| t.as_duration()),
            Ok(Duration::new(NOON, 123_456_789))
        );
    }

    #[test]
    fn iso8601_and_rfc3339() {
        for (text, expected) in [
            ("2024-01-01T12:00:00Z", NOON),
            ("2024-01-01t12:00:00z", NOON),
            ("2024-01-01T12:00:00.999999Z", NOON),
            ("2024-01-01T14:00:00+02:00", NOON),
            ("2024-01-01T07:30:00-04:30", NOON),
            ("2024-01-02T06:00:00+18:00", NOON),
            ("2024-01-01T12:00:00+00:00", NOON),
            ("2024-01-01T12:00:00", NOON),
            ("2024-01-01T12:00Z", NOON),
            // Across a day, a year, and a leap day.
            ("2023-12-31T23:00:00-13:00", NOON),
            ("2024-02-29T00:00:00Z", 1_709_164_800),
            ("1970-01-01T00:00:00Z", 0),
            ("9999-12-31T23:59:59Z", MAX_EXP_SECS),
        ] {
            assert_eq!(secs(text), Ok(expected), "{text:?}");
        }
        assert_eq!(millis("2024-01-01T12:00:00.25Z"), Ok(NOON * 1000 + 250));
        assert_eq!(millis("2024-01-01T14:00:00.5+02:00"), Ok(NOON * 1000 + 500));
    }

    #[test]
    fn sql_export_forms_without_a_zone_are_utc() {
        for (text, expected) in [
            // MySQL DATETIME, PostgreSQL timestamp (without time zone), Rails' datetime.
            ("2024-01-01 12:00:00", NOON),
            ("2024-01-01 12:00:00.123456", NOON),
            // PostgreSQL timestamptz in psql's output.
            ("2024-01-01 12:00:00+00", NOON),
            ("2024-01-01 14:00:00+02", NOON),
            ("2024-01-01 17:30:00+05:30", NOON),
            ("2024-01-01 12:00:00.5-00", NOON),
            // Rails' `to_s` of a UTC time, and a zone after a space.
            ("2024-01-01 12:00:00 UTC", NOON),
            ("2024-01-01 12:00:00 utc", NOON),
            ("2024-01-01 12:00:00 +00:00", NOON),
            ("2024-01-01 12:00:00Z", NOON),
            (" 2024-01-01 12:00:00 ", NOON),
        ] {
            assert_eq!(secs(text), Ok(expected), "{text:?}");
        }
        assert_eq!(
            parse_exp("2024-01-01 12:00:00.123456").map(|t| t.as_duration()),
            Ok(Duration::new(NOON, 123_456_000))
        );
    }

    #[test]
    fn what_is_not_a_time() {
        for (text, expected) in [
            ("2024-02-30 12:00:00", ExpError::NotATime),
            ("2023-02-29T00:00:00Z", ExpError::NotATime),
            ("2024-13-01 12:00:00", ExpError::NotATime),
            ("2024-01-01 24:00:01", ExpError::NotATime),
            ("2024-01-01 12:60:00", ExpError::NotATime),
            ("2024-01-01", ExpError::NotATime),
            ("2024-01-01 ", ExpError::NotATime),
            ("2024-01-01  12:00:00", ExpError::NotATime),
            ("2024-01-01_12:00:00", ExpError::NotATime),
            ("2024-01-01 12:00:00 CET", ExpError::NotATime),
            ("2024-01-01 12:00:00 Europe/Paris", ExpError::NotATime),
            ("2024-01-01 12:00:00+25:00", ExpError::NotATime),
            ("2024-01-01 12:00:00-18:01", ExpError::NotATime),
            ("2024-01-01 12:00:00 BC", ExpError::NotATime),
            ("infinity", ExpError::NotATime),
            ("exp", ExpError::NotATime),
            ("Mon, 01 Jan 2024 12:00:00 GMT", ExpError::NotATime),
            ("2024-01-01T12:00:00Zjunk", ExpError::NotATime),
            ("２０２４-01-01 12:00:00", ExpError::NotATime),
            ("2024-01-01é12:00:00", ExpError::NotATime),
            ("1969-12-31T23:59:59Z", ExpError::BeforeEpoch),
            ("1970-01-01T00:00:00+00:01", ExpError::BeforeEpoch),
        ] {
            assert_eq!(secs(text), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn messages_name_the_accepted_forms() {
        assert!(ExpError::NotATime.to_string().contains("Unix seconds"));
        assert!(ExpError::TooLate.to_string().contains("milliseconds"));
    }
}
