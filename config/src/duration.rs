//! Durations written for people: "30s", "500ms", "1h30m".
//!
//! The config types keep `std::time::Duration`; this module parses, formats
//! and deserializes it. TOML integers are refused: "30" could mean seconds or
//! milliseconds depending on who wrote it.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

use crate::size::Decimal;

/// Units from largest to smallest, in nanoseconds; formatting walks them in
/// this order.
const UNITS: [(&str, u128); 6] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

const HINT: &str = "write durations like \"30s\", \"500ms\", \"5m\" or \"1h30m\"";

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParseDurationError {
    /// Nothing but whitespace.
    #[error("empty duration; {HINT}")]
    Empty,
    /// A leading minus sign.
    #[error("durations cannot be negative")]
    Negative,
    /// Something that is not `<number><unit>` at this point of the string.
    #[error("invalid duration {0:?}; {HINT}")]
    Malformed(String),
    /// A number with no unit after it.
    #[error("duration {0:?} has no unit; {HINT}")]
    MissingUnit(String),
    /// A unit we do not know ("d", "sec", "S").
    #[error("unknown duration unit {0:?}; use h, m, s, ms, us or ns")]
    UnknownUnit(String),
    /// More than `Duration` can hold.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses one or more `<number><unit>` parts, optionally separated by
/// spaces; the parts add up ("1h30m"). Fractions round down to nanoseconds.
pub(crate) fn parse(input: &str) -> Result<Duration, ParseDurationError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(ParseDurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(ParseDurationError::Negative);
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        let number =
            Decimal::parse(number).ok_or_else(|| ParseDurationError::Malformed(text.to_owned()))?;
        let after = after.trim_start();
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if unit.is_empty() {
            return Err(if after.is_empty() {
                ParseDurationError::MissingUnit(text.to_owned())
            } else {
                ParseDurationError::Malformed(text.to_owned())
            });
        }
        let nanos_per_unit = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, nanos)| *nanos)
            .ok_or_else(|| ParseDurationError::UnknownUnit(unit.to_owned()))?;
        total = number
            .scale(nanos_per_unit)
            .and_then(|nanos| total.checked_add(nanos))
            .ok_or_else(|| ParseDurationError::Overflow(text.to_owned()))?;
        rest = after.trim_start();
    }
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| ParseDurationError::Overflow(text.to_owned()))?;
    // The remainder is below 10^9, so it fits.
    let nanos = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

/// Formats so that [`parse`] gives the same value back: "1h30m", "500ms",
/// "0s".
pub(crate) fn format(duration: Duration) -> String {
    let mut left = duration.as_nanos();
    if left == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (name, nanos) in UNITS {
        let count = left / nanos;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(name);
            left %= nanos;
        }
    }
    out
}

/// `#[serde(deserialize_with)]` for `Duration` fields.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl DurationVisitor {
    fn bare_number<E: de::Error>(shown: impl fmt::Display) -> E {
        E::custom(format_args!(
            "a bare number ({shown}) is ambiguous for a duration; write it as a string with a unit, like \"{shown}s\" or \"{shown}ms\""
        ))
    }
}

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string like \"30s\", \"500ms\" or \"1h30m\"")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Duration, E> {
        parse(value).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Duration, E> {
        Err(Self::bare_number(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Duration, E> {
        Err(Self::bare_number(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Duration, E> {
        Err(Self::bare_number(value))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_single_and_compound() {
        assert_eq!(parse("30s"), Ok(ms(30_000)));
        assert_eq!(parse("500ms"), Ok(ms(500)));
        assert_eq!(parse("5m"), Ok(ms(300_000)));
        assert_eq!(parse("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse("1h30m"), Ok(ms(5_400_000)));
        assert_eq!(parse("1h 30m 5s"), Ok(ms(5_405_000)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse(" 10 s "), Ok(ms(10_000)));
        assert_eq!(parse("1.5s"), Ok(ms(1_500)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
    }

    #[test]
    fn refuses_malformed() {
        assert_eq!(parse(""), Err(ParseDurationError::Empty));
        assert_eq!(parse("-5s"), Err(ParseDurationError::Negative));
        assert_eq!(
            parse("30"),
            Err(ParseDurationError::MissingUnit("30".into()))
        );
        assert_eq!(
            parse("1h30"),
            Err(ParseDurationError::MissingUnit("1h30".into()))
        );
        assert_eq!(
            parse("soon"),
            Err(ParseDurationError::Malformed("soon".into()))
        );
        assert_eq!(
            parse("5s!"),
            Err(ParseDurationError::Malformed("5s!".into()))
        );
        assert_eq!(
            parse("2d"),
            Err(ParseDurationError::UnknownUnit("d".into()))
        );
        assert_eq!(
            parse("2S"),
            Err(ParseDurationError::UnknownUnit("S".into()))
        );
        assert_eq!(
            parse("2sec"),
            Err(ParseDurationError::UnknownUnit("sec".into()))
        );
        assert!(matches!(
            parse("99999999999999999999h"),
            Err(ParseDurationError::Overflow(_))
        ));
        assert!(matches!(
            parse("5124095576030432h"),
            Err(ParseDurationError::Overflow(_))
        ));
    }

    #[test]
    fn format_round_trips() {
        let cases = [
            (Duration::ZERO, "0s"),
            (ms(500), "500ms"),
            (ms(30_000), "30s"),
            (ms(5_400_000), "1h30m"),
            (ms(1_500), "1s500ms"),
            (Duration::new(3_661, 1_001), "1h1m1s1us1ns"),
        ];
        for (duration, text) in cases {
            assert_eq!(format(duration), text);
            assert_eq!(parse(text), Ok(duration));
        }
        let max = Duration::MAX;
        assert_eq!(parse(&format(max)), Ok(max));
    }

    #[test]
    fn serde_refuses_integers_with_a_hint() {
        #[derive(Debug, serde::Deserialize)]
        struct T {
            #[serde(deserialize_with = "deserialize")]
            timeout: Duration,
        }
        let t: T = toml::from_str("timeout = \"2m\"").unwrap();
        assert_eq!(t.timeout, ms(120_000));
        let err = toml::from_str::<T>("timeout = 30").unwrap_err();
        assert!(err.message().contains("ambiguous"), "{err}");
        assert!(err.message().contains("\"30s\""), "{err}");
        let err = toml::from_str::<T>("timeout = \"30\"").unwrap_err();
        assert!(err.message().contains("has no unit"), "{err}");
    }
}
