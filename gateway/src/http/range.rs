//! `Range` request header parsing (RFC 9110 §14).
//!
//! Sans-IO: takes the header value and the representation length, returns what
//! to send. The policy choices that the RFC leaves to the server:
//! - a header that does not parse, or names a unit other than `bytes`, is
//!   ignored (the full representation is sent);
//! - more than [`MAX_RANGES`] ranges are ignored as a whole, so a client cannot
//!   make us build an enormous multipart response;
//! - overlapping and adjacent ranges are coalesced, and the result is sent in
//!   ascending order, which defuses the classic "many overlapping ranges"
//!   amplification.

use std::ops::Range;

/// More ranges than this in one header and we serve the whole object instead.
pub(crate) const MAX_RANGES: usize = 64;

/// What a `Range` header asks of a representation of a given length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// Serve the whole representation with 200 (no header, or one we ignore).
    Full,
    /// Serve these byte ranges with 206: ascending, non-overlapping,
    /// non-adjacent, each non-empty and within the representation.
    Partial(Vec<Range<u64>>),
    /// None of the ranges can be satisfied: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Interprets a `Range` header value against a representation of `len` bytes.
pub(crate) fn parse_range(header: &[u8], len: u64) -> RangeRequest {
    let Some(specs) = parse_specs(header) else {
        return RangeRequest::Full;
    };
    if specs.len() > MAX_RANGES {
        return RangeRequest::Full;
    }
    let mut satisfiable: Vec<Range<u64>> = specs
        .into_iter()
        .filter_map(|spec| spec.resolve(len))
        .collect();
    if satisfiable.is_empty() {
        // A suffix range on an empty representation is satisfiable by the RFC
        // but cannot be expressed in Content-Range; the whole (empty) body is
        // the only sensible answer.
        return if len == 0 && header_has_nonzero_suffix(header) {
            RangeRequest::Full
        } else {
            RangeRequest::Unsatisfiable
        };
    }
    satisfiable.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(satisfiable.len());
    for range in satisfiable {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    RangeRequest::Partial(merged)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeSpec {
    /// `first-last`, both inclusive, or `first-` when `last` is `None`.
    FromTo { first: u64, last: Option<u64> },
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// The half-open byte range this spec selects, or `None` if unsatisfiable.
    fn resolve(self, len: u64) -> Option<Range<u64>> {
        match self {
            RangeSpec::FromTo { first, last } => {
                if first >= len {
                    return None;
                }
                let end = match last {
                    Some(last) => last.saturating_add(1).min(len),
                    None => len,
                };
                Some(first..end)
            }
            RangeSpec::Suffix(n) if n == 0 || len == 0 => None,
            RangeSpec::Suffix(n) => Some(len.saturating_sub(n)..len),
        }
    }
}

/// Parses `bytes=spec, spec, ...`; `None` if the header is not a valid byte
/// range set (which the caller treats as "ignore the header").
fn parse_specs(header: &[u8]) -> Option<Vec<RangeSpec>> {
    let header = std::str::from_utf8(header).ok()?;
    let (unit, set) = header.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    // RFC 9110 list syntax allows empty elements ("1-2, ,3-4").
    for element in set.split(',') {
        let element = element.trim_matches([' ', '\t']);
        if element.is_empty() {
            continue;
        }
        specs.push(parse_spec(element)?);
        if specs.len() > MAX_RANGES {
            // Stop parsing early; the caller ignores the header anyway.
            break;
        }
    }
    if specs.is_empty() {
        return None;
    }
    Some(specs)
}

fn parse_spec(spec: &str) -> Option<RangeSpec> {
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        return Some(RangeSpec::Suffix(parse_digits(last)?));
    }
    let first = parse_digits(first)?;
    if last.is_empty() {
        return Some(RangeSpec::FromTo { first, last: None });
    }
    let last = parse_digits(last)?;
    if last < first {
        return None;
    }
    Some(RangeSpec::FromTo {
        first,
        last: Some(last),
    })
}

/// 1*DIGIT. Values beyond u64 saturate: "bytes=0-99999999999999999999999" is a
/// valid request for everything, not a parse error.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

fn header_has_nonzero_suffix(header: &[u8]) -> bool {
    parse_specs(header).is_some_and(|specs| {
        specs
            .iter()
            .any(|s| matches!(s, RangeSpec::Suffix(n) if *n > 0))
    })
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    fn partial(ranges: &[Range<u64>]) -> RangeRequest {
        RangeRequest::Partial(ranges.to_vec())
    }

    #[test]
    fn single_ranges() {
        assert_eq!(parse_range(b"bytes=0-499", 1000), partial(&[0..500]));
        assert_eq!(parse_range(b"bytes=500-999", 1000), partial(&[500..1000]));
        assert_eq!(parse_range(b"bytes=500-", 1000), partial(&[500..1000]));
        assert_eq!(parse_range(b"bytes=-200", 1000), partial(&[800..1000]));
        assert_eq!(parse_range(b"bytes=-2000", 1000), partial(&[0..1000]));
        assert_eq!(parse_range(b"bytes=0-0", 1000), partial(&[0..1]));
        assert_eq!(parse_range(b"bytes=999-999", 1000), partial(&[999..1000]));
    }

    #[test]
    fn last_pos_past_the_end_is_clamped() {
        assert_eq!(parse_range(b"bytes=900-5000", 1000), partial(&[900..1000]));
        assert_eq!(
            parse_range(b"bytes=0-99999999999999999999999", 10),
            partial(&[0..10])
        );
    }

    #[test]
    fn unit_and_whitespace_are_lenient_where_the_rfc_allows() {
        assert_eq!(parse_range(b"BYTES=0-1", 10), partial(&[0..2]));
        assert_eq!(
            parse_range(b"bytes=0-1 , \t4-5", 10),
            partial(&[0..2, 4..6])
        );
        assert_eq!(parse_range(b"bytes=0-1,,4-5,", 10), partial(&[0..2, 4..6]));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(
            parse_range(b"bytes=1000-", 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(b"bytes=1000-2000", 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range(b"bytes=-0", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-0", 0), RangeRequest::Unsatisfiable);
        assert_eq!(
            parse_range(b"bytes=5000-,6000-7000", 1000),
            RangeRequest::Unsatisfiable
        );
    }

    #[test]
    fn unsatisfiable_parts_are_dropped_when_others_are_fine() {
        assert_eq!(parse_range(b"bytes=2000-,0-9", 1000), partial(&[0..10]));
    }

    #[test]
    fn suffix_on_empty_representation_serves_it_whole() {
        assert_eq!(parse_range(b"bytes=-5", 0), RangeRequest::Full);
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for header in [
            &b"bytes"[..],
            b"bytes=",
            b"bytes=,",
            b"bytes=abc",
            b"bytes=5-1",
            b"bytes=1-2-3",
            b"bytes=--5",
            b"bytes=+1-2",
            b"bytes= 1 - 2",
            b"bytes=0x10-20",
            b"items=0-5",
            b"=0-5",
            b"bytes=\xff-1",
            b"bytes=1-2,garbage",
        ] {
            assert_eq!(
                parse_range(header, 1000),
                RangeRequest::Full,
                "{:?}",
                String::from_utf8_lossy(header)
            );
        }
    }

    #[test]
    fn multiple_ranges_are_sorted_and_coalesced() {
        assert_eq!(
            parse_range(b"bytes=500-599,0-99", 1000),
            partial(&[0..100, 500..600])
        );
        assert_eq!(
            parse_range(b"bytes=0-99,50-149,150-199", 1000),
            partial(&[0..200])
        );
        assert_eq!(parse_range(b"bytes=0-9,0-9,0-9", 1000), partial(&[0..10]));
        assert_eq!(
            parse_range(b"bytes=-100,0-10", 1000),
            partial(&[0..11, 900..1000])
        );
    }

    #[test]
    fn too_many_ranges_serve_the_whole_object() {
        let many: String = (0..=MAX_RANGES)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect::<Vec<_>>()
            .join(",");
        let header = format!("bytes={many}");
        assert_eq!(parse_range(header.as_bytes(), 100_000), RangeRequest::Full);

        let ok: String = (0..MAX_RANGES)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect::<Vec<_>>()
            .join(",");
        let header = format!("bytes={ok}");
        match parse_range(header.as_bytes(), 100_000) {
            RangeRequest::Partial(r) => assert_eq!(r.len(), MAX_RANGES),
            other => panic!("expected partial, got {other:?}"),
        }
    }
}
