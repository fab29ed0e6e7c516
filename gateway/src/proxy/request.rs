//! What a client request means to the URL route, checked before anything is
//! forwarded: where it is going (scheme, host, target), refused when ambiguous;
//! and the header set the origin gets.

use std::net::SocketAddr;

use http::header::{
    CONTENT_LENGTH, EXPECT, HOST, HeaderName, HeaderValue, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};
use http::uri::Scheme;
use http::{HeaderMap, Request, Version};

use super::key::{UrlKey, normalise_host};
use crate::error::RequestError;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Where a request is going.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) scheme: Scheme,
    /// Lower-cased, default port dropped.
    pub(crate) host: String,
    /// Path and query.
    pub(crate) target: String,
}

impl Target {
    /// The same scheme and host with another target (for invalidation).
    pub(crate) fn with_path(&self, target: &str) -> Target {
        Target {
            scheme: self.scheme.clone(),
            host: self.host.clone(),
            target: target.to_owned(),
        }
    }

    pub(crate) fn key(&self) -> UrlKey {
        UrlKey::new(self.scheme.as_str(), &self.host, &self.target)
    }
}

/// The request's scheme, host and target, or a 400 when they are missing or
/// ambiguous (RFC 9112 §3.2: no Host in HTTP/1.1, more than one Host line, an
/// invalid Host). In absolute form the target's authority wins over Host
/// (§3.2.2); either way it only selects among configured origins, it never
/// names a server to connect to.
pub(crate) fn target_of<B>(req: &Request<B>, scheme: Scheme) -> Result<Target, RequestError> {
    let bad = |msg: &str| Err(RequestError::BadRequest(msg.to_owned()));
    let mut hosts = req.headers().get_all(HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return bad("more than one Host header");
    }
    let uri = req.uri();
    let host = match (uri.authority(), host_header) {
        (Some(authority), _) => {
            if uri
                .scheme()
                .is_some_and(|s| *s != Scheme::HTTP && *s != Scheme::HTTPS)
            {
                return bad("only http and https request targets are served");
            }
            authority.as_str()
        }
        (None, Some(value)) => match value.to_str() {
            Ok(text) => text,
            Err(_) => return bad("invalid Host header"),
        },
        (None, None) => "",
    };
    // HTTP/1.0 may go without a host (it then reaches the default origin);
    // HTTP/1.1 may not (RFC 9112 §3.2).
    let host = match normalise_host(host, &scheme) {
        Some(host) => host,
        None if host.is_empty() && req.version() == Version::HTTP_10 => String::new(),
        None if host_header.is_none() && uri.authority().is_none() => {
            return bad("missing Host header");
        }
        None => return bad("invalid Host header"),
    };
    let target = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    if !target.starts_with('/') {
        return bad("the request target must be a path");
    }
    Ok(Target {
        scheme,
        host,
        target,
    })
}

/// Why headers are being forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A fill for the cache: the whole object, unconditionally (the cache answers
    /// the client's own conditionals and ranges from what it stores).
    Fill,
    /// A request passed through as it is (unsafe methods, uncacheable answers).
    Pass,
    /// A fill asked of the URL's owner: as for [`Purpose::Fill`], but `Via` and
    /// the `X-Forwarded-*` fields are left to the owner, which adds them once
    /// when it goes to the origin.
    Owner,
}

/// The header set sent to the origin: the client's end-to-end fields, with
/// hop-by-hop fields removed (RFC 9110 §7.6.1), `Via` added, and optionally the
/// `X-Forwarded-*` / `Forwarded` fields naming the client.
pub(crate) fn forward_headers(
    client: &HeaderMap,
    target: &Target,
    peer: SocketAddr,
    forwarded: bool,
    purpose: Purpose,
) -> HeaderMap {
    let mut headers = client.clone();
    crate::cache::storable::strip_hop_by_hop(&mut headers);
    headers.remove(HOST);
    // hyper answers 100-continue itself on the client side; never relay it.
    headers.remove(EXPECT);
    if purpose != Purpose::Pass {
        for name in [
            IF_MATCH,
            IF_NONE_MATCH,
            IF_MODIFIED_SINCE,
            IF_UNMODIFIED_SINCE,
            IF_RANGE,
            RANGE,
            CONTENT_LENGTH,
        ] {
            headers.remove(name);
        }
    }
    if purpose == Purpose::Owner {
        return headers;
    }
    crate::cache::status::append_via(&mut headers, Version::HTTP_11);
    if forwarded {
        let ip = peer.ip().to_canonical();
        append(&mut headers, X_FORWARDED_FOR, &ip.to_string());
        if !target.host.is_empty() {
            set(&mut headers, X_FORWARDED_HOST, &target.host);
        }
        set(&mut headers, X_FORWARDED_PROTO, target.scheme.as_str());
        let node = match ip {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        let mut element = format!("for={node};proto={}", target.scheme.as_str());
        if !target.host.is_empty() {
            element.push_str(&format!(";host=\"{}\"", target.host));
        }
        append(&mut headers, FORWARDED, &element);
    } else {
        for name in [
            X_FORWARDED_FOR,
            X_FORWARDED_HOST,
            X_FORWARDED_PROTO,
            FORWARDED,
        ] {
            headers.remove(name);
        }
    }
    headers
}

/// Appends to a list field, as one combined line.
fn append(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    let combined = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.trim().is_empty() => format!("{existing}, {value}"),
        _ => value.to_owned(),
    };
    set(headers, name, &combined);
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(target: &str, hosts: &[&str], version: Version) -> Request<()> {
        let mut builder = Request::builder().uri(target).version(version);
        for host in hosts {
            builder = builder.header(HOST, *host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn the_target_comes_from_host_or_the_absolute_form() {
        let t = target_of(
            &request("/a?b", &["Example.com:80"], Version::HTTP_11),
            Scheme::HTTP,
        )
        .unwrap();
        assert_eq!(
            (t.host.as_str(), t.target.as_str()),
            ("example.com", "/a?b")
        );
        let t = target_of(
            &request("http://other.example/x", &["example.com"], Version::HTTP_11),
            Scheme::HTTP,
        )
        .unwrap();
        assert_eq!(t.host, "other.example");
        assert_eq!(t.target, "/x");
    }

    #[test]
    fn ambiguous_or_missing_hosts_are_400() {
        for req in [
            request("/", &[], Version::HTTP_11),
            request("/", &["a.example", "b.example"], Version::HTTP_11),
            request("/", &["a.example", "a.example"], Version::HTTP_10),
            request("/", &["bad host"], Version::HTTP_11),
            request("/", &["user@host"], Version::HTTP_11),
        ] {
            assert!(
                matches!(
                    target_of(&req, Scheme::HTTP),
                    Err(RequestError::BadRequest(_))
                ),
                "{req:?}"
            );
        }
        let old = target_of(&request("/", &[], Version::HTTP_10), Scheme::HTTP).unwrap();
        assert_eq!(old.host, "");
    }

    #[test]
    fn forwarded_headers_drop_hop_by_hop_and_name_the_client() {
        let mut client = HeaderMap::new();
        client.insert("connection", "x-secret, keep-alive".parse().unwrap());
        client.insert("x-secret", "1".parse().unwrap());
        client.insert("keep-alive", "timeout=5".parse().unwrap());
        client.insert("te", "trailers".parse().unwrap());
        client.insert("if-none-match", "\"x\"".parse().unwrap());
        client.insert("range", "bytes=0-1".parse().unwrap());
        client.insert("accept", "text/html".parse().unwrap());
        client.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
        let target = Target {
            scheme: Scheme::HTTP,
            host: "example.com".into(),
            target: "/".into(),
        };
        let peer: SocketAddr = "192.0.2.7:5555".parse().unwrap();
        let fill = forward_headers(&client, &target, peer, true, Purpose::Fill);
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "te",
            "if-none-match",
            "range",
        ] {
            assert!(!fill.contains_key(gone), "{gone}");
        }
        assert_eq!(fill["accept"], "text/html");
        assert_eq!(fill["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        assert_eq!(
            fill["forwarded"],
            "for=192.0.2.7;proto=http;host=\"example.com\""
        );
        assert!(fill["via"].to_str().unwrap().contains("fleetcache"));
        let pass = forward_headers(&client, &target, peer, false, Purpose::Pass);
        assert!(pass.contains_key("if-none-match"));
        assert!(!pass.contains_key("x-forwarded-for"));
    }
}
