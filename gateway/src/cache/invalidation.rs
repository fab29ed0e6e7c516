//! Invalidation after unsafe requests (RFC 9111 §4.4).
//!
//! A non-error response (2xx, 3xx) to an unsafe method (anything but GET,
//! HEAD, OPTIONS and TRACE; method names are case-sensitive, so `get` is an
//! unknown and therefore unsafe method) invalidates the target URI, and the
//! URIs in `Location` and `Content-Location` when they have the same origin
//! (scheme, host, port) as the target; other origins never, which is what
//! keeps an origin from purging another's content (§4.4).
//!
//! References are resolved against the target as RFC 3986 §5.2 says,
//! including dot segments; fragments are dropped. Hosts compare
//! case-insensitively, userinfo is ignored, and a missing port is the
//! scheme's default (80 for http, 443 for https). A reference that is not
//! ASCII, contains whitespace or control characters, or has a malformed
//! scheme or port, is ignored.

use http::header::{CONTENT_LOCATION, LOCATION};
use http::{HeaderMap, Method};

/// The URI a request was made for, split the way the cache keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestTarget<'a> {
    /// `http` or `https`.
    pub(crate) scheme: &'a str,
    /// `host[:port]` (the `Host` header or `:authority`).
    pub(crate) authority: &'a str,
    /// The path and query, e.g. `/a/b?c=d`.
    pub(crate) path_and_query: &'a str,
}

/// The path-and-query of every stored URI this exchange invalidates, in the
/// order target, `Location`, `Content-Location`, without duplicates; empty
/// for safe methods and error statuses.
pub(crate) fn invalidations(
    method: &Method,
    status: u16,
    target: &RequestTarget<'_>,
    response_headers: &HeaderMap,
) -> Vec<String> {
    let safe = [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE].contains(method);
    if safe || !(200..400).contains(&status) {
        return Vec::new();
    }
    let mut uris = vec![
        target
            .path_and_query
            .split('#')
            .next()
            .unwrap_or_default()
            .to_owned(),
    ];
    for field in [LOCATION, CONTENT_LOCATION] {
        for value in response_headers.get_all(field) {
            let Ok(reference) = value.to_str() else {
                continue;
            };
            if let Some(resolved) = resolve_same_origin(target, reference.trim())
                && !uris.contains(&resolved)
            {
                uris.push(resolved);
            }
        }
    }
    uris
}

/// A URI reference split into its components (RFC 3986 §4.1), fragment
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reference<'a> {
    scheme: Option<&'a str>,
    authority: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
}

impl<'a> Reference<'a> {
    fn parse(text: &'a str) -> Option<Reference<'a>> {
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        let text = text.split('#').next().unwrap_or_default();
        let (scheme, rest) = match text.find([':', '/', '?']) {
            Some(colon) if text.as_bytes().get(colon) == Some(&b':') => {
                let scheme = &text[..colon];
                let valid = scheme
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic())
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
                if !valid {
                    return None;
                }
                (Some(scheme), &text[colon + 1..])
            }
            _ => (None, text),
        };
        let (authority, rest) = match rest.strip_prefix("//") {
            Some(after) => {
                let end = after.find(['/', '?']).unwrap_or(after.len());
                (Some(&after[..end]), &after[end..])
            }
            None => (None, rest),
        };
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        Some(Reference {
            scheme,
            authority,
            path,
            query,
        })
    }
}

/// Resolves `reference` against the target (RFC 3986 §5.2.2) and returns its
/// path-and-query if it has the target's origin.
fn resolve_same_origin(target: &RequestTarget<'_>, reference: &str) -> Option<String> {
    let reference = Reference::parse(reference)?;
    let (base_path, base_query) = match target.path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target.path_and_query, None),
    };
    let (path, query) = if reference.scheme.is_some() || reference.authority.is_some() {
        if let Some(scheme) = reference.scheme
            && !scheme.eq_ignore_ascii_case(target.scheme)
        {
            return None;
        }
        let authority = reference.authority?;
        if origin(target.scheme, authority)? != origin(target.scheme, target.authority)? {
            return None;
        }
        (remove_dot_segments(reference.path), reference.query)
    } else if reference.path.is_empty() {
        (base_path.to_owned(), reference.query.or(base_query))
    } else if reference.path.starts_with('/') {
        (remove_dot_segments(reference.path), reference.query)
    } else {
        let directory = base_path
            .rfind('/')
            .map_or("/", |slash| &base_path[..=slash]);
        let directory = if directory.is_empty() { "/" } else { directory };
        (
            remove_dot_segments(&format!("{directory}{}", reference.path)),
            reference.query,
        )
    };
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        path
    };
    Some(match query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    })
}

/// (lowercase host, port) of an authority, with the scheme's default port
/// when none is given; `None` if the port is malformed.
fn origin(scheme: &str, authority: &str) -> Option<(String, Option<u16>)> {
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, rest)| rest);
    let (host, port) = if host_port.starts_with('[') {
        let close = host_port.find(']')?;
        let rest = &host_port[close + 1..];
        let port = match rest {
            "" => None,
            _ => Some(rest.strip_prefix(':')?),
        };
        (&host_port[..=close], port)
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let default = if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else {
        None
    };
    let port = match port {
        None | Some("") => default,
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => Some(digits.parse().ok()?),
        Some(_) => return None,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output = String::with_capacity(path.len());
    let pop = |output: &mut String| match output.rfind('/') {
        Some(slash) => output.truncate(slash),
        None => output.clear(),
    };
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            pop(&mut output);
        } else if input == "/.." {
            input = "/";
            pop(&mut output);
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    output
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cache::test_support::headers;

    const TARGET: RequestTarget<'static> = RequestTarget {
        scheme: "https",
        authority: "Shop.Example",
        path_and_query: "/cart/items?id=7",
    };

    fn after_post(response: &[(&str, &str)]) -> Vec<String> {
        invalidations(&Method::POST, 201, &TARGET, &headers(response))
    }

    #[test]
    fn only_unsafe_methods_with_non_error_statuses() {
        let none = HeaderMap::new();
        for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(
                invalidations(&method, 200, &TARGET, &none).is_empty(),
                "{method}"
            );
        }
        for method in ["POST", "PUT", "DELETE", "PATCH", "PURGE", "get"] {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(
                invalidations(&method, 204, &TARGET, &none),
                ["/cart/items?id=7"],
                "{method}"
            );
        }
        for status in [200, 299, 303, 399] {
            assert_eq!(invalidations(&Method::PUT, status, &TARGET, &none).len(), 1);
        }
        for status in [100, 199, 400, 404, 500, 503] {
            assert!(invalidations(&Method::PUT, status, &TARGET, &none).is_empty());
        }
    }

    #[test]
    fn location_and_content_location_on_the_same_origin() {
        assert_eq!(
            after_post(&[
                ("location", "/cart/items/8"),
                ("content-location", "https://shop.example:443/cart?v=2#top"),
            ]),
            ["/cart/items?id=7", "/cart/items/8", "/cart?v=2"]
        );
    }

    #[test]
    fn relative_references_are_resolved() {
        let resolve = |reference: &str| after_post(&[("location", reference)]).pop().unwrap();
        assert_eq!(resolve("9"), "/cart/9");
        assert_eq!(resolve("./9?x"), "/cart/9?x");
        assert_eq!(resolve("../checkout"), "/checkout");
        assert_eq!(resolve("../../../../up"), "/up");
        assert_eq!(resolve("/a/./b/../c"), "/a/c");
        assert_eq!(resolve("?id=8"), "/cart/items?id=8");
        assert_eq!(resolve("#frag"), "/cart/items?id=7");
        assert_eq!(resolve("//shop.example/x"), "/x");
        assert_eq!(resolve("https://SHOP.example"), "/");
        assert_eq!(resolve("https://user:pw@shop.example/y"), "/y");
        assert_eq!(resolve(" /trimmed "), "/trimmed");
    }

    #[test]
    fn other_origins_are_never_invalidated() {
        for reference in [
            "https://evil.example/cart",
            "//evil.example/cart",
            "http://shop.example/cart",
            "https://shop.example:8443/cart",
            "https://shop.example:x/cart",
            "ftp://shop.example/cart",
            "mailto:someone@shop.example",
            "/has space",
            "1bad-scheme:/x",
        ] {
            assert_eq!(
                after_post(&[("location", reference)]),
                ["/cart/items?id=7"],
                "{reference}"
            );
        }
        let mut map = HeaderMap::new();
        map.append(
            LOCATION,
            http::HeaderValue::from_bytes(b"/caf\xe9").unwrap(),
        );
        assert_eq!(invalidations(&Method::POST, 200, &TARGET, &map).len(), 1);
    }

    #[test]
    fn ports_and_ipv6_hosts() {
        let target = RequestTarget {
            scheme: "http",
            authority: "[::1]:8080",
            path_and_query: "/",
        };
        let with = |location: &str| {
            invalidations(
                &Method::DELETE,
                200,
                &target,
                &headers(&[("location", location)]),
            )
        };
        assert_eq!(with("http://[::1]:8080/a"), ["/", "/a"]);
        assert_eq!(with("http://[::1]/a"), ["/"]);
        let default_port = RequestTarget {
            scheme: "http",
            authority: "example.org",
            path_and_query: "/",
        };
        let location = headers(&[("location", "http://example.org:80/b")]);
        assert_eq!(
            invalidations(&Method::PUT, 200, &default_port, &location),
            ["/", "/b"]
        );
    }

    #[test]
    fn duplicates_are_listed_once() {
        assert_eq!(
            after_post(&[
                ("location", "/cart/items?id=7"),
                ("content-location", "items?id=7"),
            ]),
            ["/cart/items?id=7"]
        );
    }

    #[test]
    fn dot_segments() {
        for (input, output) in [
            ("/a/b/c/./../../g", "/a/g"),
            ("mid/content=5/../6", "mid/6"),
            ("/..", "/"),
            ("/.", "/"),
            ("/a/..", "/"),
            ("..", ""),
            ("/a//b/../c", "/a//c"),
        ] {
            assert_eq!(remove_dot_segments(input), output, "{input}");
        }
    }
}
