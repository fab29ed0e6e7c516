//! The `Cache-Status` response field (RFC 9211) and `Via` (RFC 9110
//! §7.6.3).
//!
//! `Cache-Status` is a Structured Field list (RFC 8941); this node adds one
//! member, named [`PSEUDONYM`], with parameters in the order RFC 9211 lists
//! them. Parameters are written `; name=value` as in RFC 9211's examples
//! (RFC 8941 parsers skip the space). `detail` is an sf-token when it is a
//! valid one and an sf-string otherwise, with characters outside printable
//! ASCII replaced by `?`.

use bytes::Bytes;
use http::header::VIA;
use http::{HeaderMap, HeaderValue, Version};

use super::PSEUDONYM;
use super::syntax::is_tchar;

/// The largest magnitude of an sf-integer (RFC 8941 §3.3.1).
const SF_INTEGER_MAX: i64 = 999_999_999_999_999;

/// Why the request went forward (RFC 9211 §2.2 `fwd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForwardReason {
    /// Configured or decided not to use the cache for this request.
    Bypass,
    /// The method is not cacheable.
    Method,
    /// Nothing stored for the URL.
    UriMiss,
    /// Something stored for the URL, but no variant matches.
    VaryMiss,
    /// Not found, without knowing why (`uri-miss` or `vary-miss` preferred).
    Miss,
    /// A fresh stored response, but the request's directives refused it.
    Request,
    /// A stored response that was stale (or needed validation).
    Stale,
}

impl ForwardReason {
    /// The sf-token RFC 9211 defines for it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ForwardReason::Bypass => "bypass",
            ForwardReason::Method => "method",
            ForwardReason::UriMiss => "uri-miss",
            ForwardReason::VaryMiss => "vary-miss",
            ForwardReason::Miss => "miss",
            ForwardReason::Request => "request",
            ForwardReason::Stale => "stale",
        }
    }
}

/// This node's member of `Cache-Status`. Build with [`CacheStatus::hit`] or
/// [`CacheStatus::forward`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheStatus {
    /// `None` for a hit, else why the request went forward.
    forward: Option<ForwardReason>,
    fwd_status: Option<u16>,
    ttl: Option<i64>,
    stored: bool,
    collapsed: bool,
    detail: Option<String>,
}

impl CacheStatus {
    /// Answered from the cache without going forward (`hit`), including a
    /// stale response served while revalidating in the background.
    pub(crate) fn hit() -> CacheStatus {
        CacheStatus {
            forward: None,
            fwd_status: None,
            ttl: None,
            stored: false,
            collapsed: false,
            detail: None,
        }
    }

    /// The request went forward (`fwd=<reason>`).
    pub(crate) fn forward(reason: ForwardReason) -> CacheStatus {
        CacheStatus {
            forward: Some(reason),
            ..CacheStatus::hit()
        }
    }

    /// `fwd-status`: the status the next hop answered (ignored on a hit).
    pub(crate) fn with_fwd_status(mut self, status: u16) -> CacheStatus {
        self.fwd_status = Some(status);
        self
    }

    /// `ttl`: the response's remaining freshness in seconds (negative when
    /// stale).
    pub(crate) fn with_ttl(mut self, ttl: i64) -> CacheStatus {
        self.ttl = Some(ttl);
        self
    }

    /// `stored`: the forwarded response was stored.
    pub(crate) fn with_stored(mut self) -> CacheStatus {
        self.stored = true;
        self
    }

    /// `collapsed`: the request was collapsed into another one's fill.
    pub(crate) fn with_collapsed(mut self) -> CacheStatus {
        self.collapsed = true;
        self
    }

    /// `detail`: free-form extra information, e.g. a [`NotStorable`] reason.
    ///
    /// [`NotStorable`]: super::storable::NotStorable
    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> CacheStatus {
        self.detail = Some(detail.into());
        self
    }

    /// The member as text, e.g. `fleetcache; fwd=stale; fwd-status=304; ttl=60; stored`.
    pub(crate) fn to_header_string(&self) -> String {
        let mut out = String::with_capacity(64);
        out.push_str(PSEUDONYM);
        match self.forward {
            None => out.push_str("; hit"),
            Some(reason) => {
                out.push_str("; fwd=");
                out.push_str(reason.as_str());
                if let Some(status) = self.fwd_status {
                    out.push_str("; fwd-status=");
                    out.push_str(itoa::Buffer::new().format(status));
                }
            }
        }
        if let Some(ttl) = self.ttl {
            let ttl = ttl.clamp(-SF_INTEGER_MAX, SF_INTEGER_MAX);
            out.push_str("; ttl=");
            out.push_str(itoa::Buffer::new().format(ttl));
        }
        if self.stored {
            out.push_str("; stored");
        }
        if self.collapsed {
            out.push_str("; collapsed");
        }
        if let Some(detail) = &self.detail {
            out.push_str("; detail=");
            push_token_or_string(&mut out, detail);
        }
        out
    }

    /// The `Cache-Status` field value holding only this node's member.
    pub(crate) fn to_header_value(&self) -> HeaderValue {
        // Only printable ASCII is ever written, so this cannot fail.
        HeaderValue::from_maybe_shared(Bytes::from(self.to_header_string()))
            .unwrap_or(HeaderValue::from_static(PSEUDONYM))
    }
}

/// Writes `text` as an sf-token if it is one, else as an sf-string.
fn push_token_or_string(out: &mut String, text: &str) {
    let is_token = text
        .bytes()
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'*')
        && text
            .bytes()
            .all(|byte| is_tchar(byte) || byte == b':' || byte == b'/');
    if is_token {
        out.push_str(text);
        return;
    }
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            ' '..='~' => out.push(ch),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

/// Appends this node to `Via` (RFC 9110 §7.6.3): the protocol version the
/// message was received with (protocol name omitted, as it is HTTP) and our
/// pseudonym, after any existing members, in one field line.
pub(crate) fn append_via(headers: &mut HeaderMap, received: Version) {
    let own = own_via_member(received);
    if !headers.contains_key(VIA) {
        headers.insert(VIA, HeaderValue::from_static(own));
        return;
    }
    let mut line = Vec::new();
    for existing in headers.get_all(VIA) {
        line.extend_from_slice(existing.as_bytes());
        line.extend_from_slice(b", ");
    }
    line.extend_from_slice(own.as_bytes());
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(line)) {
        // Only fails past 2^15 distinct fields; Via is informative.
        let _ = headers.try_insert(VIA, value);
    }
}

/// This node's `Via` member for a message received as `received`: the
/// version and [`PSEUDONYM`], written out so the usual case allocates nothing.
fn own_via_member(received: Version) -> &'static str {
    if received == Version::HTTP_09 {
        concat!("0.9 ", pseudonym!())
    } else if received == Version::HTTP_10 {
        concat!("1.0 ", pseudonym!())
    } else if received == Version::HTTP_2 {
        concat!("2 ", pseudonym!())
    } else if received == Version::HTTP_3 {
        concat!("3 ", pseudonym!())
    } else {
        concat!("1.1 ", pseudonym!())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cache::test_support::headers;

    #[test]
    fn hit_and_forward_members() {
        assert_eq!(CacheStatus::hit().to_header_value(), "fleetcache; hit");
        assert_eq!(
            CacheStatus::hit().with_ttl(-412).to_header_value(),
            "fleetcache; hit; ttl=-412"
        );
        assert_eq!(
            CacheStatus::forward(ForwardReason::UriMiss)
                .with_fwd_status(200)
                .with_ttl(123)
                .with_stored()
                .with_collapsed()
                .to_header_value(),
            "fleetcache; fwd=uri-miss; fwd-status=200; ttl=123; stored; collapsed"
        );
        // fwd-status belongs to a forward only.
        assert_eq!(
            CacheStatus::hit().with_fwd_status(200).to_header_value(),
            "fleetcache; hit"
        );
        for (reason, text) in [
            (ForwardReason::Bypass, "bypass"),
            (ForwardReason::Method, "method"),
            (ForwardReason::VaryMiss, "vary-miss"),
            (ForwardReason::Miss, "miss"),
            (ForwardReason::Request, "request"),
            (ForwardReason::Stale, "stale"),
        ] {
            assert_eq!(
                CacheStatus::forward(reason).to_header_string(),
                format!("fleetcache; fwd={text}")
            );
        }
    }

    #[test]
    fn detail_is_a_token_or_a_string() {
        let detail = |text: &str| {
            CacheStatus::forward(ForwardReason::Miss)
                .with_detail(text)
                .to_header_string()
        };
        assert_eq!(detail("no-store"), "fleetcache; fwd=miss; detail=no-store");
        assert_eq!(detail("a:b/c"), "fleetcache; fwd=miss; detail=a:b/c");
        assert_eq!(
            detail("set cookie"),
            "fleetcache; fwd=miss; detail=\"set cookie\""
        );
        assert_eq!(detail("1abc"), "fleetcache; fwd=miss; detail=\"1abc\"");
        assert_eq!(detail(""), "fleetcache; fwd=miss; detail=\"\"");
        assert_eq!(
            detail("say \"hi\" \\ café\n"),
            "fleetcache; fwd=miss; detail=\"say \\\"hi\\\" \\\\ caf??\""
        );
        // Always a valid header value.
        CacheStatus::hit()
            .with_detail("\u{0}\r\n\u{7f}")
            .to_header_value();
    }

    #[test]
    fn ttl_is_clamped_to_an_sf_integer() {
        assert_eq!(
            CacheStatus::hit().with_ttl(i64::MIN).to_header_string(),
            "fleetcache; hit; ttl=-999999999999999"
        );
        assert_eq!(
            CacheStatus::hit().with_ttl(i64::MAX).to_header_string(),
            "fleetcache; hit; ttl=999999999999999"
        );
    }

    #[test]
    fn via_is_appended_with_the_received_version() {
        let mut map = HeaderMap::new();
        append_via(&mut map, Version::HTTP_11);
        assert_eq!(map[VIA], "1.1 fleetcache");

        let mut map = headers(&[("via", "1.0 fred, 1.1 p.example.net"), ("via", "2 edge")]);
        append_via(&mut map, Version::HTTP_2);
        assert_eq!(map.get_all(VIA).iter().count(), 1);
        assert_eq!(
            map[VIA],
            "1.0 fred, 1.1 p.example.net, 2 edge, 2 fleetcache"
        );

        for (version, text) in [
            (Version::HTTP_09, "0.9 fleetcache"),
            (Version::HTTP_10, "1.0 fleetcache"),
            (Version::HTTP_3, "3 fleetcache"),
        ] {
            let mut map = HeaderMap::new();
            append_via(&mut map, version);
            assert_eq!(map[VIA], text);
        }

        let mut binary = HeaderMap::new();
        binary.append(VIA, HeaderValue::from_bytes(b"1.1 caf\xe9").unwrap());
        append_via(&mut binary, Version::HTTP_11);
        assert_eq!(binary[VIA].as_bytes(), b"1.1 caf\xe9, 1.1 fleetcache");
    }
}
