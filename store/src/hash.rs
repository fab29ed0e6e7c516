//! The content address of a blob: a BLAKE3 hash, shown as 64 lowercase hex digits.

use std::fmt;
use std::str::FromStr;

/// A BLAKE3 hash identifying a blob by its content.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hash([u8; 32]);

impl Hash {
    /// Wraps raw hash bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Hash(bytes)
    }

    /// The raw hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.hex().as_str().to_owned()
    }

    /// The 64 lowercase hex digits without allocating: headers naming a hash
    /// are built on every hit.
    pub fn hex(&self) -> HexDigits {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0; 64];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0xf)];
        }
        HexDigits(out)
    }
}

/// A hash as 64 lowercase hex digits, held inline.
#[derive(Clone, Copy)]
pub struct HexDigits([u8; 64]);

impl fmt::Debug for HexDigits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HexDigits {
    /// The digits as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl From<blake3::Hash> for Hash {
    fn from(hash: blake3::Hash) -> Self {
        Hash(*hash.as_bytes())
    }
}

impl From<Hash> for blake3::Hash {
    fn from(hash: Hash) -> Self {
        blake3::Hash::from_bytes(hash.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.hex().as_str())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex().as_str())
    }
}

/// Why a string is not a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseHashError {
    /// wrong number of characters
    #[error("a blake3 hash has 64 hex characters, not {0}")]
    WrongLength(usize),
    /// a character that is not a hex digit
    #[error("a blake3 hash contains only hex digits (0-9, a-f)")]
    InvalidHex,
}

impl FromStr for Hash {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Every hash-route request parses one: the digits first, the error's
        // details (which need a pass over the characters) only on failure.
        let digits = (s.len() == 64).then(|| decode_hex(s.as_bytes())).flatten();
        digits.map(Hash).ok_or_else(|| match s.chars().count() {
            64 => ParseHashError::InvalidHex,
            chars => ParseHashError::WrongLength(chars),
        })
    }
}

/// 64 hex digits as 32 bytes; `None` if any is not a hex digit.
fn decode_hex(digits: &[u8]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
    }
    Some(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_hex() {
        let hash = Hash::from(blake3::hash(b"hello"));
        let hex = hash.to_string();
        assert_eq!(hex, blake3::hash(b"hello").to_hex().as_str());
        assert_eq!(hash.hex().as_str(), hex);
        assert_eq!(hash.to_hex(), hex);
        assert_eq!(hex.parse::<Hash>().unwrap(), hash);
        assert_eq!(hex.to_uppercase().parse::<Hash>().unwrap(), hash);
        assert_eq!(format!("{hash:?}"), format!("Hash({hex})"));
        assert_eq!(Hash::from_bytes(*hash.as_bytes()), hash);
        assert_eq!(blake3::Hash::from(hash), blake3::hash(b"hello"));
    }

    #[test]
    fn rejects_malformed_strings() {
        assert_eq!("".parse::<Hash>(), Err(ParseHashError::WrongLength(0)));
        assert_eq!(
            "ab".repeat(31).parse::<Hash>(),
            Err(ParseHashError::WrongLength(62))
        );
        assert_eq!(
            "ab".repeat(33).parse::<Hash>(),
            Err(ParseHashError::WrongLength(66))
        );
        let mut bad = "ab".repeat(32);
        bad.replace_range(10..11, "g");
        assert_eq!(bad.parse::<Hash>(), Err(ParseHashError::InvalidHex));
        // Multi-byte characters count as one character each.
        let unicode = format!("{}é", "a".repeat(63));
        assert_eq!(unicode.parse::<Hash>(), Err(ParseHashError::InvalidHex));
        let short_unicode = format!("{}é", "a".repeat(62));
        assert_eq!(short_unicode.len(), 64);
        assert_eq!(
            short_unicode.parse::<Hash>(),
            Err(ParseHashError::WrongLength(63))
        );
        let long_unicode = format!("{}é", "a".repeat(64));
        assert_eq!(
            long_unicode.parse::<Hash>(),
            Err(ParseHashError::WrongLength(65))
        );
        assert_eq!(
            format!(" {}", "a".repeat(63)).parse::<Hash>(),
            Err(ParseHashError::InvalidHex)
        );
        assert_eq!(
            "+".repeat(64).parse::<Hash>(),
            Err(ParseHashError::InvalidHex)
        );
    }

    #[test]
    fn orders_by_bytes() {
        let a = Hash::from_bytes([0; 32]);
        let mut b = [0; 32];
        b[0] = 1;
        assert!(a < Hash::from_bytes(b));
    }
}
