//! The record kept for one stored URL response (one variant), and its byte
//! encoding for the store.
//!
//! The body is not in it: it is a blob addressed by its BLAKE3 hash, which
//! the store keeps next to the record. Everything else the policy needs later
//! is: status, stored header fields (value order within a field preserved),
//! the request and response times of the exchange that produced or last
//! validated it, the Vary secondary key, and the `Surrogate-Control` value
//! (honoured for freshness but never sent to clients, so not among the
//! headers).
//!
//! Encoding, version 1 (integers big-endian, lengths and counts LEB128):
//! `01 | status u16 | request_time u64 | response_time u64 |
//! field-count { name-len name value-len value } |
//! surrogate-flag (0 | 1 len bytes) | variant-len variant`, where `variant`
//! is [`VaryKey::to_variant`]. Decoding checks every length against the bytes
//! that remain before using it, so a corrupt record can neither panic nor
//! make us allocate more than its own size.

use http::header::DATE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::date::parse_http_date;
use super::effective::EffectiveControl;
use super::surrogate::SurrogateControl;
use super::vary::VaryKey;

/// The current encoding version.
const VERSION: u8 = 1;

/// A stored response, without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredResponse {
    /// The status code (never 1xx, 206 or 304).
    pub(crate) status: u16,
    /// The stored header fields: hop-by-hop, `Surrogate-Control` and
    /// qualified-`private` fields removed, `Date` added if it was missing.
    pub(crate) headers: HeaderMap,
    /// When the request that produced (or last validated) it was sent, in
    /// Unix seconds (`request_time` of RFC 9111 §4.2.3).
    pub(crate) request_time: u64,
    /// When that response was received (`response_time` of §4.2.3).
    pub(crate) response_time: u64,
    /// The request's normalised values of the fields the response varies on.
    pub(crate) vary: VaryKey,
    /// The response's `Surrogate-Control` lines joined with `, `, if any.
    pub(crate) surrogate_control: Option<Vec<u8>>,
    /// `Date`, parsed once: every hit reads it (freshness, age, the newest
    /// variant, conditionals), and parsing it each time was 3 % of a hit.
    date: Option<u64>,
    /// The cache control it is served under, likewise parsed once (1.8 % of
    /// a hit when parsed per hit).
    control: EffectiveControl,
}

/// Why a stored record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The record is empty or ends in the middle of a field.
    #[error("record truncated")]
    Truncated,
    /// The version byte names a format this build does not know.
    #[error("unsupported record version {0}")]
    UnsupportedVersion(u8),
    /// A length or count is larger than the bytes that remain could hold,
    /// or a LEB128 integer is overlong.
    #[error("length out of range")]
    BadLength,
    /// The status is not a valid HTTP status code.
    #[error("invalid status {0}")]
    InvalidStatus(u16),
    /// A field name is not a valid, lowercase HTTP field name.
    #[error("invalid header name")]
    InvalidHeaderName,
    /// A field value contains bytes HTTP forbids.
    #[error("invalid header value")]
    InvalidHeaderValue,
    /// More distinct field names than an `http::HeaderMap` can hold.
    #[error("too many header fields")]
    TooManyFields,
    /// A flag byte is neither 0 nor 1.
    #[error("invalid flag byte {0}")]
    InvalidFlag(u8),
    /// The Vary key is not in its canonical form (sorted, unique, lowercase).
    #[error("invalid vary key")]
    InvalidVary,
    /// Bytes remain after the last field.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
}

impl StoredResponse {
    /// A stored response of these parts; its `Date` is parsed here, once.
    pub(crate) fn new(
        status: u16,
        headers: HeaderMap,
        request_time: u64,
        response_time: u64,
        vary: VaryKey,
        surrogate_control: Option<Vec<u8>>,
    ) -> Self {
        let date = header_date(&headers, &DATE, response_time);
        let surrogate = surrogate_control
            .as_deref()
            .map(SurrogateControl::parse)
            .unwrap_or_default();
        let control = EffectiveControl::new(&headers, surrogate);
        StoredResponse {
            status,
            headers,
            request_time,
            response_time,
            vary,
            surrogate_control,
            date,
            control,
        }
    }

    /// The record's bytes for the store.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(VERSION);
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&self.request_time.to_be_bytes());
        out.extend_from_slice(&self.response_time.to_be_bytes());
        put_varint(&mut out, self.headers.len() as u64);
        for (name, value) in &self.headers {
            put_bytes(&mut out, name.as_str().as_bytes());
            put_bytes(&mut out, value.as_bytes());
        }
        match &self.surrogate_control {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                put_bytes(&mut out, value);
            }
        }
        put_bytes(&mut out, &self.vary.to_variant());
        out
    }

    /// Reads a record written by [`StoredResponse::encode`].
    pub(crate) fn decode(bytes: &[u8]) -> Result<StoredResponse, DecodeError> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let status = u16::from_be_bytes(reader.array()?);
        if StatusCode::from_u16(status).is_err() {
            return Err(DecodeError::InvalidStatus(status));
        }
        let request_time = u64::from_be_bytes(reader.array()?);
        let response_time = u64::from_be_bytes(reader.array()?);
        // Each field takes at least three bytes (two lengths and a name).
        let field_count = reader.count(3)?;
        let mut headers = HeaderMap::new();
        for _ in 0..field_count {
            let name_bytes = reader.bytes()?;
            let name =
                HeaderName::from_bytes(name_bytes).map_err(|_| DecodeError::InvalidHeaderName)?;
            if name.as_str().as_bytes() != name_bytes {
                return Err(DecodeError::InvalidHeaderName);
            }
            let value = HeaderValue::from_bytes(reader.bytes()?)
                .map_err(|_| DecodeError::InvalidHeaderValue)?;
            headers
                .try_append(name, value)
                .map_err(|_| DecodeError::TooManyFields)?;
        }
        let surrogate_control = match reader.u8()? {
            0 => None,
            1 => Some(reader.bytes()?.to_vec()),
            flag => return Err(DecodeError::InvalidFlag(flag)),
        };
        let vary = VaryKey::from_variant(reader.bytes()?)?;
        if reader.remaining() != 0 {
            return Err(DecodeError::TrailingBytes(reader.remaining()));
        }
        Ok(StoredResponse::new(
            status,
            headers,
            request_time,
            response_time,
            vary,
            surrogate_control,
        ))
    }

    /// The opaque variant key the store files this response under, next to
    /// the URL key: equal for two responses that answer the same Vary
    /// selection, so storing a new one replaces the old.
    pub(crate) fn variant(&self) -> Vec<u8> {
        self.vary.to_variant()
    }

    /// The policy this cache obeys for it: its targeted field, or its
    /// `Cache-Control` and `Expires` under its `Surrogate-Control`.
    pub(crate) fn control(&self) -> &EffectiveControl {
        &self.control
    }

    /// The first line of a date-valued field, parsed; `None` if absent or
    /// invalid.
    pub(crate) fn date_field(&self, name: &HeaderName) -> Option<u64> {
        header_date(&self.headers, name, self.response_time)
    }

    /// Its `Date`, parsed when it was made; `None` if absent or invalid.
    pub(crate) fn date(&self) -> Option<u64> {
        self.date
    }
}

/// The first line of a date-valued field of `headers`, parsed with
/// `reference` for two-digit years.
pub(crate) fn header_date(headers: &HeaderMap, name: &HeaderName, reference: u64) -> Option<u64> {
    parse_http_date(headers.get(name)?.as_bytes(), reference)
}

/// Appends `value` as LEB128.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// Appends a LEB128 length and the bytes.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A bounds-checked cursor over a record.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&first, rest) = self.bytes.split_first().ok_or(DecodeError::Truncated)?;
        self.bytes = rest;
        Ok(first)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated)?;
        self.bytes = rest;
        Ok(*head)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(DecodeError::BadLength);
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::BadLength)
    }

    /// A count of items that each take at least `min_item_len` bytes,
    /// rejected if the remaining bytes could not hold that many.
    pub(crate) fn count(&mut self, min_item_len: usize) -> Result<usize, DecodeError> {
        let count = usize::try_from(self.varint()?).map_err(|_| DecodeError::BadLength)?;
        if count > self.remaining() / min_item_len.max(1) {
            return Err(DecodeError::BadLength);
        }
        Ok(count)
    }

    /// A LEB128 length and that many bytes.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.varint()?).map_err(|_| DecodeError::BadLength)?;
        if len > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cache::test_support::{T0, headers};
    use rand::{Rng, SeedableRng};

    fn sample() -> StoredResponse {
        let request = headers(&[("accept-encoding", "gzip"), ("accept-language", "de,  en")]);
        let response = headers(&[
            ("vary", "Accept-Language, Accept-Encoding, X-Absent"),
            ("content-type", "text/html"),
        ]);
        let mut stored_headers = headers(&[
            ("date", "Wed, 01 Jan 2025 00:00:00 GMT"),
            ("cache-control", "max-age=60"),
            ("x-multi", "first"),
            ("x-multi", "second"),
            ("x-multi", "third"),
            ("content-type", "text/html"),
        ]);
        stored_headers.append(
            "x-binary",
            HeaderValue::from_bytes(b"caf\xe9 \x80\xff").unwrap(),
        );
        StoredResponse::new(
            200,
            stored_headers,
            T0 - 1,
            T0,
            VaryKey::for_request(&response, &request).unwrap(),
            Some(b"max-age=600".to_vec()),
        )
    }

    #[test]
    fn round_trip() {
        let stored = sample();
        let bytes = stored.encode();
        let decoded = StoredResponse::decode(&bytes).unwrap();
        assert_eq!(decoded, stored);
        let multi: Vec<_> = decoded.headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["first", "second", "third"]);
        assert_eq!(decoded.variant(), stored.variant());
        assert_eq!(decoded.control().surrogate.max_age, Some(600));

        let minimal =
            StoredResponse::new(404, HeaderMap::new(), 0, u64::MAX, VaryKey::default(), None);
        assert_eq!(StoredResponse::decode(&minimal.encode()).unwrap(), minimal);
    }

    #[test]
    fn varints() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut reader = Reader::new(&out);
            assert_eq!(reader.varint().unwrap(), value);
            assert_eq!(reader.remaining(), 0);
        }
        // Eleven continuation bytes, or a tenth byte carrying more than one bit.
        assert_eq!(
            Reader::new(&[0xff; 11]).varint(),
            Err(DecodeError::BadLength)
        );
        let mut overlong = vec![0xff; 9];
        overlong.push(0x02);
        assert_eq!(Reader::new(&overlong).varint(), Err(DecodeError::BadLength));
    }

    #[test]
    fn specific_corruptions() {
        let good = sample().encode();
        assert_eq!(StoredResponse::decode(&[]), Err(DecodeError::Truncated));
        let mut wrong_version = good.clone();
        wrong_version[0] = 2;
        assert_eq!(
            StoredResponse::decode(&wrong_version),
            Err(DecodeError::UnsupportedVersion(2))
        );
        let mut bad_status = good.clone();
        bad_status[1..3].copy_from_slice(&42u16.to_be_bytes());
        assert_eq!(
            StoredResponse::decode(&bad_status),
            Err(DecodeError::InvalidStatus(42))
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            StoredResponse::decode(&trailing),
            Err(DecodeError::TrailingBytes(1))
        );
        // A field count of 2^60 in a 20-byte record.
        let mut huge_count = good[..19].to_vec();
        put_varint(&mut huge_count, 1 << 60);
        assert_eq!(
            StoredResponse::decode(&huge_count),
            Err(DecodeError::BadLength)
        );
        // An uppercase field name is not what `encode` writes.
        let mut upper = good[..19].to_vec();
        put_varint(&mut upper, 1);
        put_bytes(&mut upper, b"Date");
        put_bytes(&mut upper, b"x");
        upper.push(0);
        upper.push(0);
        assert_eq!(
            StoredResponse::decode(&upper),
            Err(DecodeError::InvalidHeaderName)
        );
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let good = sample().encode();
        for len in 0..good.len() {
            assert!(StoredResponse::decode(&good[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn random_bytes_and_mutations_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9111);
        let good = sample().encode();
        for _ in 0..20_000 {
            let len = rng.random_range(0..200);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if rng.random_bool(0.5) && !bytes.is_empty() {
                bytes[0] = VERSION;
            }
            let _ = StoredResponse::decode(&bytes);

            let mut mutated = good.clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..mutated.len());
                mutated[at] = rng.random();
            }
            if let Ok(decoded) = StoredResponse::decode(&mutated) {
                // Whatever decodes must survive another round trip.
                assert_eq!(StoredResponse::decode(&decoded.encode()).unwrap(), decoded);
            }
        }
    }
}
