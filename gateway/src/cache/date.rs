//! HTTP-date (RFC 9110 §5.6.7) parsing and formatting, and the conversion of
//! `SystemTime` to the whole Unix seconds the policy computes with.
//!
//! Written here rather than taken from a crate because the policy needs two
//! things a general parser does not give: a reference time to resolve the
//! two-digit years of `rfc850-date`, and a result in plain Unix seconds where
//! anything before 1970 becomes 0 instead of an error (an `Expires` in 1960 is
//! simply "in the past").

use std::time::{SystemTime, UNIX_EPOCH};

/// The latest instant an IMF-fixdate can express: 9999-12-31T23:59:59Z.
const MAX_FORMATTABLE: u64 = 253_402_300_799;

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Whole seconds since the Unix epoch; times before it count as 0.
pub(crate) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Parses an HTTP-date in any of the three formats RFC 9110 §5.6.7 obliges a
/// recipient to accept, returning Unix seconds (0 for instants before 1970).
///
/// `reference` (Unix seconds, normally the time the message was received)
/// resolves the two-digit year of an `rfc850-date`: a year that would be
/// more than 50 years after the reference is taken from the previous century,
/// as §5.6.7 requires. Surrounding whitespace is ignored; names (days,
/// months, `GMT`) are matched case-insensitively, which is more lenient than
/// the grammar but never changes the meaning of a valid date.
pub(crate) fn parse_http_date(value: &[u8], reference: u64) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    parse_imf_fixdate(text)
        .or_else(|| parse_rfc850(text, reference))
        .or_else(|| parse_asctime(text))
}

/// Formats Unix seconds as an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
/// Instants after the year 9999 are clamped to its last second.
pub(crate) fn format_http_date(unix: u64) -> String {
    let unix = unix.min(MAX_FORMATTABLE);
    // Both fit easily in i64 after the clamp above.
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let second_of_day = unix % 86_400;
    let (year, month, day) = civil_from_days(days);
    let weekday = usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0);
    let month_name = usize::try_from(month - 1)
        .ok()
        .and_then(|index| MONTH_NAMES.get(index))
        .unwrap_or(&"Jan");
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAY_NAMES.get(weekday).unwrap_or(&"Thu"),
        day,
        month_name,
        year,
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
    )
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn parse_imf_fixdate(text: &str) -> Option<u64> {
    let (day_name, rest) = text.split_once(", ")?;
    name_index(&DAY_NAMES, day_name)?;
    let mut parts = rest.split(' ');
    let day = two_digits(parts.next()?)?;
    let month = month_number(parts.next()?)?;
    let year = four_digits(parts.next()?)?;
    let time = parts.next()?;
    if !parts.next()?.eq_ignore_ascii_case("GMT") || parts.next().is_some() {
        return None;
    }
    to_unix(year, month, day, time)
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`
fn parse_rfc850(text: &str, reference: u64) -> Option<u64> {
    let (day_name, rest) = text.split_once(", ")?;
    name_index(&LONG_DAY_NAMES, day_name)?;
    let mut parts = rest.split(' ');
    let mut date = parts.next()?.split('-');
    let day = two_digits(date.next()?)?;
    let month = month_number(date.next()?)?;
    let short_year = two_digits(date.next()?)?;
    if date.next().is_some() {
        return None;
    }
    let time = parts.next()?;
    if !parts.next()?.eq_ignore_ascii_case("GMT") || parts.next().is_some() {
        return None;
    }
    let reference_year = year_of(reference);
    let mut year = reference_year - reference_year.rem_euclid(100) + i64::from(short_year);
    if year > reference_year + 50 {
        year -= 100;
    }
    to_unix(year, month, day, time)
}

/// `Sun Nov  6 08:49:37 1994` (the day is space-padded to two characters)
fn parse_asctime(text: &str) -> Option<u64> {
    let day_name = text.get(..3)?;
    name_index(&DAY_NAMES, day_name)?;
    let rest = text.get(3..)?.strip_prefix(' ')?;
    let month = month_number(rest.get(..3)?)?;
    let rest = rest.get(3..)?.strip_prefix(' ')?;
    let day_field = rest.get(..2)?;
    let day = match day_field.strip_prefix(' ') {
        Some(single) => one_digit(single)?,
        None => two_digits(day_field)?,
    };
    let rest = rest.get(2..)?.strip_prefix(' ')?;
    let (time, year) = rest.split_once(' ')?;
    to_unix(four_digits(year)?, month, day, time)
}

fn name_index(names: &[&str], candidate: &str) -> Option<usize> {
    names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(candidate))
}

fn month_number(name: &str) -> Option<u32> {
    let index = name_index(&MONTH_NAMES, name)?;
    u32::try_from(index).ok().map(|index| index + 1)
}

fn digits(text: &str, count: usize) -> Option<u32> {
    if text.len() != count || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn one_digit(text: &str) -> Option<u32> {
    digits(text, 1)
}

fn two_digits(text: &str) -> Option<u32> {
    digits(text, 2)
}

fn four_digits(text: &str) -> Option<i64> {
    digits(text, 4).map(i64::from)
}

/// Combines a validated calendar date with `HH:MM:SS` into Unix seconds.
fn to_unix(year: i64, month: u32, day: u32, time: &str) -> Option<u64> {
    let mut fields = time.split(':');
    let hour = two_digits(fields.next()?)?;
    let minute = two_digits(fields.next()?)?;
    let second = two_digits(fields.next()?)?;
    // RFC 9110 §5.6.7 allows second 60 (a leap second); it counts as the
    // first second of the next minute.
    if fields.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some(u64::try_from(seconds).unwrap_or(0))
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (i64::from(month) + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// The calendar year an instant falls in.
fn year_of(unix: u64) -> i64 {
    let days = i64::try_from(unix / 86_400).unwrap_or(i64::MAX / 2);
    civil_from_days(days).0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Sun, 06 Nov 1994 08:49:37 GMT, the example of RFC 9110 §5.6.7.
    const EXAMPLE: u64 = 784_111_777;
    /// 2025-01-01T00:00:00Z, a reference for two-digit years.
    const REF_2025: u64 = 1_735_689_600;

    fn parse(text: &str) -> Option<u64> {
        parse_http_date(text.as_bytes(), REF_2025)
    }

    #[test]
    fn the_three_formats_of_rfc_9110() {
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), Some(EXAMPLE));
        assert_eq!(parse("Sunday, 06-Nov-94 08:49:37 GMT"), Some(EXAMPLE));
        assert_eq!(parse("Sun Nov  6 08:49:37 1994"), Some(EXAMPLE));
        assert_eq!(
            parse("Sun Nov 16 08:49:37 1994"),
            Some(EXAMPLE + 10 * 86_400)
        );
        assert_eq!(parse("  Sun, 06 Nov 1994 08:49:37 GMT\t"), Some(EXAMPLE));
        assert_eq!(parse("sun, 06 nov 1994 08:49:37 gmt"), Some(EXAMPLE));
    }

    #[test]
    fn rfc850_years_more_than_50_years_ahead_belong_to_the_last_century() {
        // Reference 2025: "75" would be 2075, exactly 50 years ahead: kept.
        let y2075 = parse("Tuesday, 01-Jan-75 00:00:00 GMT").unwrap();
        assert_eq!(format_http_date(y2075), "Tue, 01 Jan 2075 00:00:00 GMT");
        // "76" would be 2076, 51 years ahead: 1976.
        let y1976 = parse("Thursday, 01-Jan-76 00:00:00 GMT").unwrap();
        assert_eq!(format_http_date(y1976), "Thu, 01 Jan 1976 00:00:00 GMT");
    }

    #[test]
    fn invalid_dates_are_rejected() {
        for text in [
            "",
            "0",
            "-1",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1995 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 08:49:61 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 99999 16:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT trailing",
            "Sun Nov 6 08:49:37 1994",
            "Sun,  06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 \xff", 0), None);
    }

    #[test]
    fn leap_days_and_leap_seconds() {
        assert!(parse("Thu, 29 Feb 2024 00:00:00 GMT").is_some());
        assert!(parse("Tue, 29 Feb 2000 00:00:00 GMT").is_some());
        assert!(parse("Thu, 29 Feb 1900 00:00:00 GMT").is_none());
        assert_eq!(
            parse("Sat, 31 Dec 2016 23:59:60 GMT"),
            parse("Sun, 01 Jan 2017 00:00:00 GMT")
        );
    }

    #[test]
    fn instants_before_1970_are_zero() {
        assert_eq!(parse("Fri, 01 Jan 1960 00:00:00 GMT"), Some(0));
        assert_eq!(parse("Mon, 13 Feb 0002 12:00:00 GMT"), Some(0));
        assert_eq!(parse("Thu, 01 Jan 1970 00:00:01 GMT"), Some(1));
    }

    #[test]
    fn format_round_trips() {
        assert_eq!(format_http_date(EXAMPLE), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(format_http_date(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
        for unix in [0, 1, EXAMPLE, REF_2025, 951_782_400, MAX_FORMATTABLE] {
            let text = format_http_date(unix);
            assert_eq!(parse_http_date(text.as_bytes(), unix), Some(unix), "{text}");
        }
    }

    #[test]
    fn unix_seconds_truncates_and_clamps() {
        let time = UNIX_EPOCH + Duration::from_millis(1_999);
        assert_eq!(unix_seconds(time), 1);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
