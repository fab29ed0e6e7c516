//! Byte sizes written for people: "10GiB", "1.5GB", "512".

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// A number of bytes. Parses from and displays as a human size ("10GiB");
/// in TOML it is a string with a unit, or an integer number of bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// Units in the order [`fmt::Display`] prefers them: the largest exact one wins.
const UNITS: [(&str, u64); 9] = [
    ("TiB", 1 << 40),
    ("TB", 1_000_000_000_000),
    ("GiB", 1 << 30),
    ("GB", 1_000_000_000),
    ("MiB", 1 << 20),
    ("MB", 1_000_000),
    ("KiB", 1 << 10),
    ("KB", 1_000),
    ("B", 1),
];

/// Fraction digits beyond this cannot change the result by a whole byte even
/// for TiB (2^40 < 10^13), and keeping fewer keeps the arithmetic in u128.
const MAX_FRACTION_DIGITS: usize = 15;

/// Why a size string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseSizeError {
    /// The string is empty or only whitespace.
    #[error("empty size; write a number with a unit, like \"10GiB\"")]
    Empty,
    /// The string starts with a minus sign.
    #[error("sizes cannot be negative")]
    Negative,
    /// There is no number, or the number is malformed (e.g. "1.2.3MB", ".5GiB").
    #[error("invalid number {0:?}; write a number with a unit, like \"10GiB\" or \"1.5GB\"")]
    InvalidNumber(String),
    /// The unit after the number is not one of the known units.
    #[error("unknown size unit {0:?}; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB")]
    UnknownUnit(String),
    /// A fractional number of plain bytes ("1.5B").
    #[error("{0:?} is not a whole number of bytes")]
    FractionalBytes(String),
    /// The value does not fit in 64 bits (about 16 EiB).
    #[error("size {0:?} is too large (the limit is 16 EiB)")]
    Overflow(String),
}

impl ByteSize {
    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = ParseSizeError;

    /// Accepts `<number>[ ]<unit>`; no unit means bytes. Fractions of a unit
    /// are rounded down to whole bytes ("1.1KiB" is 1126 bytes).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let text = input.trim();
        if text.is_empty() {
            return Err(ParseSizeError::Empty);
        }
        if text.starts_with('-') {
            return Err(ParseSizeError::Negative);
        }
        let split = text
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let decimal =
            Decimal::parse(number).ok_or_else(|| ParseSizeError::InvalidNumber(text.to_owned()))?;
        let unit = unit.trim_start();
        let multiplier = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, multiplier)| *multiplier)
                .ok_or_else(|| ParseSizeError::UnknownUnit(unit.to_owned()))?
        };
        if multiplier == 1 && decimal.has_fraction() {
            return Err(ParseSizeError::FractionalBytes(text.to_owned()));
        }
        decimal
            .scale(u128::from(multiplier))
            .and_then(|bytes| u64::try_from(bytes).ok())
            .map(ByteSize)
            .ok_or_else(|| ParseSizeError::Overflow(text.to_owned()))
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that divides the value exactly, so the text parses
    /// back to the same number: 10GiB, 1500MB, 1234B.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0B");
        }
        let (name, multiplier) = UNITS
            .iter()
            .find(|(_, multiplier)| self.0.is_multiple_of(*multiplier))
            .copied()
            .unwrap_or(("B", 1));
        write!(f, "{}{}", self.0 / multiplier, name)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size like \"10GiB\" or an integer number of bytes")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<ByteSize, E> {
        value.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<ByteSize, E> {
        u64::try_from(value)
            .map(ByteSize)
            .map_err(|_| E::custom(ParseSizeError::Negative))
    }

    fn visit_f64<E: de::Error>(self, _value: f64) -> Result<ByteSize, E> {
        // A float would silently lose bytes above 2^53; make the unit explicit.
        Err(E::custom(
            "a size must be a string with a unit, like \"1.5GiB\", or an integer number of bytes",
        ))
    }
}

/// A non-negative decimal number `int[.frac]` kept exact, shared by the size
/// and duration parsers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decimal {
    int: u128,
    /// The fraction digits as an integer, and 10^(their count).
    frac: u128,
    frac_scale: u128,
}

impl Decimal {
    /// Parses ASCII digits with at most one `.` that has digits on both
    /// sides. `None` if malformed or absurdly long.
    pub(crate) fn parse(text: &str) -> Option<Decimal> {
        let (int, frac) = match text.split_once('.') {
            Some((int, frac)) => (int, Some(frac)),
            None => (text, None),
        };
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let int_digits = int.trim_start_matches('0');
        // u128 holds 38 digits; 20 already exceed any u64 result.
        let int = if int_digits.len() > 21 {
            u128::MAX
        } else if int_digits.is_empty() {
            0
        } else {
            int_digits.parse().ok()?
        };
        let (frac, frac_scale) = match frac {
            None => (0, 1),
            Some(frac) => {
                if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let kept = &frac[..frac.len().min(MAX_FRACTION_DIGITS)];
                let scale = 10u128.checked_pow(u32::try_from(kept.len()).ok()?)?;
                (kept.parse().ok()?, scale)
            }
        };
        Some(Decimal {
            int,
            frac,
            frac_scale,
        })
    }

    pub(crate) fn has_fraction(self) -> bool {
        self.frac != 0
    }

    /// `self * multiplier`, rounded down; `None` on u128 overflow.
    pub(crate) fn scale(self, multiplier: u128) -> Option<u128> {
        let whole = self.int.checked_mul(multiplier)?;
        let part = self.frac.checked_mul(multiplier)? / self.frac_scale;
        whole.checked_add(part)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<u64, ParseSizeError> {
        s.parse::<ByteSize>().map(|b| b.0)
    }

    #[test]
    fn parses_units() {
        assert_eq!(parse("512"), Ok(512));
        assert_eq!(parse("512B"), Ok(512));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("16KiB"), Ok(16 * 1024));
        assert_eq!(parse("50GiB"), Ok(50 << 30));
        assert_eq!(parse("2TiB"), Ok(2 << 40));
        assert_eq!(parse("3MiB"), Ok(3 << 20));
        assert_eq!(parse("10 MB"), Ok(10_000_000));
        assert_eq!(parse("1KB"), Ok(1000));
        assert_eq!(parse("7TB"), Ok(7_000_000_000_000));
        assert_eq!(parse("  8GB  "), Ok(8_000_000_000));
        assert_eq!(parse("007KiB"), Ok(7 * 1024));
    }

    #[test]
    fn parses_fractions_rounding_down() {
        assert_eq!(parse("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse("0.5KiB"), Ok(512));
        assert_eq!(parse("1.1KiB"), Ok(1126));
        assert_eq!(parse("2.0B"), Ok(2));
        assert_eq!(
            parse("1.5"),
            Err(ParseSizeError::FractionalBytes("1.5".into()))
        );
        assert_eq!(
            parse("1.5B"),
            Err(ParseSizeError::FractionalBytes("1.5B".into()))
        );
        // Digits past the 15th are ignored rather than overflowing.
        assert_eq!(parse("1.00000000000000000000000001TiB"), Ok(1 << 40));
    }

    #[test]
    fn refuses_malformed() {
        assert_eq!(parse(""), Err(ParseSizeError::Empty));
        assert_eq!(parse("   "), Err(ParseSizeError::Empty));
        assert_eq!(parse("-1GiB"), Err(ParseSizeError::Negative));
        for bad in ["GiB", "1.2.3MB", ".5GiB", "5.GiB", "+5", "five"] {
            assert_eq!(parse(bad), Err(ParseSizeError::InvalidNumber(bad.into())));
        }
        assert_eq!(parse("50XB"), Err(ParseSizeError::UnknownUnit("XB".into())));
        assert_eq!(
            parse("10gib"),
            Err(ParseSizeError::UnknownUnit("gib".into()))
        );
        assert_eq!(parse("10 K"), Err(ParseSizeError::UnknownUnit("K".into())));
        assert_eq!(parse("1e9"), Err(ParseSizeError::UnknownUnit("e9".into())));
    }

    #[test]
    fn refuses_overflow() {
        assert_eq!(
            parse("99999999TiB"),
            Err(ParseSizeError::Overflow("99999999TiB".into()))
        );
        assert_eq!(parse("18446744073709551615"), Ok(u64::MAX));
        assert!(matches!(
            parse("18446744073709551616"),
            Err(ParseSizeError::Overflow(_))
        ));
        assert!(matches!(
            parse(&"9".repeat(60)),
            Err(ParseSizeError::Overflow(_))
        ));
        assert_eq!(parse("16777215TiB"), Ok(16_777_215 << 40));
    }

    #[test]
    fn error_message_lists_the_units() {
        let err = parse("50XB").unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown size unit \"XB\"; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB"
        );
    }

    #[test]
    fn displays_the_largest_exact_unit() {
        let cases = [
            (0, "0B"),
            (1, "1B"),
            (512, "512B"),
            (1000, "1KB"),
            (1024, "1KiB"),
            (16 * 1024, "16KiB"),
            (10 << 30, "10GiB"),
            (64 << 30, "64GiB"),
            (1_500_000_000, "1500MB"),
            (3 << 29, "1536MiB"),
            (1 << 40, "1TiB"),
            (1234, "1234B"),
        ];
        for (bytes, text) in cases {
            assert_eq!(ByteSize(bytes).to_string(), text);
        }
    }

    #[test]
    fn display_round_trips() {
        let samples = [
            0,
            1,
            999,
            1000,
            1023,
            1024,
            1025,
            4096,
            1 << 20,
            (1 << 20) + 1,
            1_000_000_007,
            10 << 30,
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
            5_000_000_000_000,
        ];
        for bytes in samples {
            let text = ByteSize(bytes).to_string();
            assert_eq!(parse(&text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn serde_accepts_strings_and_integers() {
        #[derive(serde::Deserialize, serde::Serialize)]
        struct T {
            size: ByteSize,
        }
        let t: T = toml::from_str("size = \"2MiB\"").unwrap();
        assert_eq!(t.size, ByteSize(2 << 20));
        let t: T = toml::from_str("size = 4096").unwrap();
        assert_eq!(t.size, ByteSize(4096));
        let err = toml::from_str::<T>("size = -1").err().unwrap();
        assert!(err.message().contains("negative"), "{err}");
        let err = toml::from_str::<T>("size = 1.5").err().unwrap();
        assert!(err.message().contains("with a unit"), "{err}");
        let out = toml::to_string(&T {
            size: ByteSize(3 << 30),
        })
        .unwrap();
        assert_eq!(out.trim(), "size = \"3GiB\"");
    }
}
