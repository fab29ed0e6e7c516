//! Vary (RFC 9111 §4.1): the secondary key that tells stored variants of one
//! URL apart.
//!
//! Choices where the RFC leaves room:
//! - field names are lowercased, deduplicated and sorted, so `Vary: A, B` and
//!   `Vary: b, a, A` file a response under the same variant;
//! - a request's value for a field is all its lines joined with `, `, each
//!   list member trimmed of whitespace, empty members dropped (RFC 9110
//!   §5.6.1) and the members rejoined with `, ` (commas inside quoted strings
//!   do not separate members). Case is preserved and compared exactly: the
//!   cache does not know every field's own case rules, and a needless miss
//!   is safe where a wrong hit is not;
//! - an absent field differs from an empty one;
//! - `Vary: *`, and a Vary member that is not a valid field name (e.g.
//!   `Accept-Encoding Cookie`, a missing comma), never match: treating the
//!   bad member as absent could serve one user's variant to another;
//! - among several matching variants the most recent (by `Date`, then by
//!   when it was received) wins (§4.1).

use http::header::VARY;
use http::{HeaderMap, HeaderName};

use super::stored::{DecodeError, Reader, StoredResponse, put_bytes};

/// The request's normalised values of the fields a response varies on, in
/// field-name order. Empty for a response without `Vary`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VaryKey {
    fields: Vec<(HeaderName, Option<Vec<u8>>)>,
}

impl VaryKey {
    /// The key selecting this request's variant of a response with these
    /// header fields; `None` when the response's `Vary` can never match
    /// (`*`, or a member that is not a field name).
    pub(crate) fn for_request(
        response_headers: &HeaderMap,
        request_headers: &HeaderMap,
    ) -> Option<VaryKey> {
        let names = vary_names(response_headers)?;
        Some(VaryKey::from_names(names, request_headers))
    }

    fn from_names(names: Vec<HeaderName>, request_headers: &HeaderMap) -> VaryKey {
        let fields = names
            .into_iter()
            .map(|name| {
                let value = normalized_field_value(request_headers, &name);
                (name, value)
            })
            .collect();
        VaryKey { fields }
    }

    /// (field name, normalised request value or `None` if absent), sorted.
    pub(crate) fn fields(&self) -> &[(HeaderName, Option<Vec<u8>>)] {
        &self.fields
    }

    /// Whether the response varies on nothing.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether `request_headers` select this variant.
    pub(crate) fn matches(&self, request_headers: &HeaderMap) -> bool {
        self.fields
            .iter()
            .all(|(name, value)| normalized_field_value(request_headers, name) == *value)
    }

    /// The deterministic bytes of this key: empty when there is no Vary,
    /// else for each field `name-len name (0 | 1 value-len value)`.
    pub(crate) fn to_variant(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in &self.fields {
            put_bytes(&mut out, name.as_str().as_bytes());
            match value {
                None => out.push(0),
                Some(value) => {
                    out.push(1);
                    put_bytes(&mut out, value);
                }
            }
        }
        out
    }

    /// Reads [`VaryKey::to_variant`]'s bytes, accepting only the canonical
    /// form (lowercase names, strictly ascending).
    pub(crate) fn from_variant(bytes: &[u8]) -> Result<VaryKey, DecodeError> {
        let mut reader = Reader::new(bytes);
        let mut fields: Vec<(HeaderName, Option<Vec<u8>>)> = Vec::new();
        while reader.remaining() > 0 {
            let name_bytes = reader.bytes()?;
            let name = HeaderName::from_bytes(name_bytes).map_err(|_| DecodeError::InvalidVary)?;
            if name.as_str().as_bytes() != name_bytes {
                return Err(DecodeError::InvalidVary);
            }
            if let Some((previous, _)) = fields.last()
                && previous.as_str() >= name.as_str()
            {
                return Err(DecodeError::InvalidVary);
            }
            let value = match reader.u8()? {
                0 => None,
                1 => Some(reader.bytes()?.to_vec()),
                flag => return Err(DecodeError::InvalidFlag(flag)),
            };
            fields.push((name, value));
        }
        Ok(VaryKey { fields })
    }
}

/// The field names a response's `Vary` lists, lowercased, sorted and unique;
/// `None` for `*` or a member that is not a field name (never matches).
pub(crate) fn vary_names(response_headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names: Vec<HeaderName> = Vec::new();
    for line in response_headers.get_all(VARY) {
        for member in split_list(line.as_bytes()) {
            if member == b"*" {
                return None;
            }
            names.push(HeaderName::from_bytes(member).ok()?);
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Some(names)
}

/// Whether a stored response may answer a request as far as Vary goes
/// (RFC 9111 §4.1). A stored `Vary` that no longer agrees with the stored
/// key (which only a corrupt record could produce) never matches.
pub(crate) fn vary_matches(stored: &StoredResponse, request_headers: &HeaderMap) -> bool {
    let Some(names) = vary_names(&stored.headers) else {
        return false;
    };
    let key_names = stored.vary.fields().iter().map(|(name, _)| name);
    names.iter().eq(key_names) && stored.vary.matches(request_headers)
}

/// Of the stored variants of one URL, the one to use for this request: the
/// most recent matching one by `Date`, then by `response_time` (§4.1).
pub(crate) fn select_variant<'a>(
    candidates: impl IntoIterator<Item = &'a StoredResponse>,
    request_headers: &HeaderMap,
) -> Option<&'a StoredResponse> {
    candidates
        .into_iter()
        .filter(|stored| vary_matches(stored, request_headers))
        .max_by_key(|stored| {
            let date = stored.date();
            (date.unwrap_or(stored.response_time), stored.response_time)
        })
}

/// A request field's value for Vary comparison: every line joined, list
/// members trimmed, empty members dropped; `None` when the field is absent.
pub(crate) fn normalized_field_value(headers: &HeaderMap, name: &HeaderName) -> Option<Vec<u8>> {
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    let mut out = Vec::new();
    for line in lines {
        for member in split_list(line.as_bytes()) {
            if !out.is_empty() {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(member);
        }
    }
    Some(out)
}

/// The non-empty, OWS-trimmed members of a comma-separated list, with commas
/// inside quoted strings kept.
fn split_list(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut members = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (pos, &byte) in line.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match byte {
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => {
                members.push(&line[start..pos]);
                start = pos + 1;
            }
            _ => {}
        }
    }
    members.push(&line[start..]);
    members
        .into_iter()
        .map(|member| member.trim_ascii())
        .filter(|member| !member.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cache::test_support::{T0, date, headers};

    fn stored_with(vary: &str, request: &HeaderMap, response_time: u64) -> StoredResponse {
        let response = headers(&[("vary", vary), ("date", &date(response_time))]);
        let key = VaryKey::for_request(&response, request).unwrap();
        StoredResponse::new(200, response, response_time, response_time, key, None)
    }

    #[test]
    fn names_are_lowercased_sorted_and_unique() {
        let names = vary_names(&headers(&[
            ("vary", "Accept-Language, accept-encoding"),
            ("vary", " ACCEPT-LANGUAGE ,, Origin"),
        ]))
        .unwrap();
        let names: Vec<&str> = names.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, ["accept-encoding", "accept-language", "origin"]);
        assert_eq!(vary_names(&headers(&[])).unwrap(), Vec::<HeaderName>::new());
    }

    #[test]
    fn star_and_bad_members_never_match() {
        assert!(vary_names(&headers(&[("vary", "*")])).is_none());
        assert!(vary_names(&headers(&[("vary", "accept, *")])).is_none());
        assert!(vary_names(&headers(&[("vary", "Accept-Encoding Cookie")])).is_none());
        let mut map = HeaderMap::new();
        map.append(VARY, http::HeaderValue::from_bytes(b"x-\xff").unwrap());
        assert!(vary_names(&map).is_none());
        assert!(VaryKey::for_request(&headers(&[("vary", "*")]), &HeaderMap::new()).is_none());
    }

    #[test]
    fn values_are_normalised_but_keep_their_case() {
        let request = headers(&[
            ("accept", " text/html ,application/xml;q=0.9"),
            ("accept", "*/*;q=0.8 , "),
            ("x-quoted", "a; p=\"x , y\",b"),
            ("x-case", "GZIP"),
        ]);
        let value = |name: &str| {
            normalized_field_value(&request, &HeaderName::from_bytes(name.as_bytes()).unwrap())
        };
        assert_eq!(
            value("accept").unwrap(),
            b"text/html, application/xml;q=0.9, */*;q=0.8"
        );
        assert_eq!(value("x-quoted").unwrap(), b"a; p=\"x , y\", b");
        assert_eq!(value("x-case").unwrap(), b"GZIP");
        assert_eq!(value("x-absent"), None);
    }

    #[test]
    fn two_variants() {
        let gzip = headers(&[("accept-encoding", "gzip")]);
        let brotli = headers(&[("accept-encoding", "br")]);
        let gzip_variant = stored_with("Accept-Encoding", &gzip, T0);
        let brotli_variant = stored_with("Accept-Encoding", &brotli, T0);
        assert_ne!(gzip_variant.variant(), brotli_variant.variant());
        assert!(vary_matches(&gzip_variant, &gzip));
        assert!(vary_matches(
            &gzip_variant,
            &headers(&[("accept-encoding", "  gzip ")])
        ));
        assert!(!vary_matches(&gzip_variant, &brotli));
        assert!(!vary_matches(
            &gzip_variant,
            &headers(&[("accept-encoding", "GZIP")])
        ));
        let both = [gzip_variant, brotli_variant];
        assert_eq!(
            select_variant(&both, &brotli).unwrap().variant(),
            both[1].variant()
        );
        assert!(select_variant(&both, &headers(&[("accept-encoding", "zstd")])).is_none());
    }

    #[test]
    fn absent_differs_from_empty() {
        let absent = stored_with("X-Flag", &HeaderMap::new(), T0);
        let empty = stored_with("X-Flag", &headers(&[("x-flag", "")]), T0);
        assert_ne!(absent.variant(), empty.variant());
        assert!(vary_matches(&absent, &HeaderMap::new()));
        assert!(!vary_matches(&absent, &headers(&[("x-flag", "")])));
        assert!(vary_matches(&empty, &headers(&[("x-flag", "")])));
        assert!(!vary_matches(&empty, &HeaderMap::new()));
    }

    #[test]
    fn variant_bytes_are_deterministic() {
        let request = headers(&[("a", "1"), ("b", "2")]);
        let one = stored_with("A, B", &request, T0);
        let other = stored_with("b, a, A", &request, T0 + 10);
        assert_eq!(one.variant(), other.variant());
        assert!(stored_with("", &request, T0).variant().is_empty());
        assert_eq!(VaryKey::from_variant(&one.variant()).unwrap(), one.vary);
    }

    #[test]
    fn non_canonical_variant_bytes_are_rejected() {
        let mut unsorted = Vec::new();
        for name in [&b"b"[..], b"a"] {
            put_bytes(&mut unsorted, name);
            unsorted.push(0);
        }
        assert_eq!(
            VaryKey::from_variant(&unsorted),
            Err(DecodeError::InvalidVary)
        );
        let mut upper = Vec::new();
        put_bytes(&mut upper, b"Accept");
        upper.push(0);
        assert_eq!(VaryKey::from_variant(&upper), Err(DecodeError::InvalidVary));
        assert_eq!(
            VaryKey::from_variant(&[1, b'a', 7]),
            Err(DecodeError::InvalidFlag(7))
        );
    }

    #[test]
    fn the_most_recent_matching_variant_wins() {
        let request = headers(&[("accept", "text/html")]);
        let older = stored_with("Accept", &request, T0);
        let newer = stored_with("Accept", &request, T0 + 100);
        let no_vary = stored_with("", &request, T0 + 50);
        let all = [older, newer.clone(), no_vary];
        assert_eq!(select_variant(&all, &request), Some(&newer));
    }

    #[test]
    fn a_stored_vary_that_disagrees_with_the_key_never_matches() {
        let request = headers(&[("accept", "text/html")]);
        let mut stored = stored_with("Accept", &request, T0);
        stored
            .headers
            .insert(VARY, http::HeaderValue::from_static("Accept, Cookie"));
        assert!(!vary_matches(&stored, &request));
        stored
            .headers
            .insert(VARY, http::HeaderValue::from_static("*"));
        assert!(!vary_matches(&stored, &request));
    }
}
