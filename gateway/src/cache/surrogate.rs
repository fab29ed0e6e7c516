//! `Surrogate-Control` (W3C Edge Architecture 1.0 §3): the origin's
//! instructions to surrogates (reverse proxies and CDNs), never forwarded to
//! clients.
//!
//! How it combines with `Cache-Control` (it takes precedence for storage and
//! freshness, the common CDN reading):
//! its `no-store` refuses storage; its `max-age` is the freshness lifetime
//! and makes `Cache-Control`'s `no-store`, `no-cache`, `must-revalidate`,
//! `proxy-revalidate`, `s-maxage`, `max-age` and `Expires` count as meant for
//! browsers and downstream caches, so they are ignored here; its
//! `stale-while-revalidate` / `stale-if-error` come before `Cache-Control`'s.
//! It never overrides `private`, the `Authorization` and `Set-Cookie` rules
//! or `Vary: *`, which keep one user's data from another.

use http::HeaderMap;
use http::header::HeaderName;

use super::PSEUDONYM;
use super::directives::first_valid;
use super::syntax::{Argument, RawDirective, parse_delta_seconds, parse_line, raw_directives};

/// The `Surrogate-Control` response header field, which this node honours and
/// never forwards.
pub(crate) const SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

/// `Surrogate-Control` (W3C Edge Architecture 1.0 §3, with the
/// `stale-while-revalidate` / `stale-if-error` extensions CDNs accept).
///
/// Only directives addressed to every surrogate, or targeted at this node's
/// pseudonym (`max-age=60;fleetcache`), count; when any directive is targeted
/// at us, the untargeted ones are ignored, as the targeted form exists to
/// override them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SurrogateControl {
    /// `no-store` or `no-store-remote` (an edge cache is a remote surrogate).
    pub(crate) no_store: bool,
    /// `max-age=N`: the freshness lifetime, overriding `Cache-Control`. An
    /// invalid one is ignored, leaving `Cache-Control` in charge.
    pub(crate) max_age: Option<u64>,
    /// `max-age=N+M`'s `M` (how long a stale response may be served when the
    /// origin cannot be reached), or `stale-if-error=M`.
    pub(crate) stale_if_error: Option<u64>,
    /// `stale-while-revalidate=M`.
    pub(crate) stale_while_revalidate: Option<u64>,
}

impl SurrogateControl {
    /// Parses every `Surrogate-Control` line of a response.
    pub(crate) fn from_headers(headers: &HeaderMap) -> SurrogateControl {
        SurrogateControl::from_directives(raw_directives(headers, &SURROGATE_CONTROL))
    }

    /// Parses a stored, already joined `Surrogate-Control` value.
    pub(crate) fn parse(value: &[u8]) -> SurrogateControl {
        let mut directives = Vec::new();
        parse_line(value, &mut directives);
        SurrogateControl::from_directives(directives)
    }

    /// Whether anything in it changes what `Cache-Control` alone would mean.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        *self == SurrogateControl::default()
    }

    fn from_directives(directives: Vec<RawDirective>) -> SurrogateControl {
        let targeted_at_us = |directive: &RawDirective| {
            directive
                .target
                .as_deref()
                .is_some_and(|target| target.eq_ignore_ascii_case(PSEUDONYM))
        };
        let any_targeted = directives.iter().any(targeted_at_us);
        let mut parsed = SurrogateControl::default();
        let mut seen_max_age = false;
        for directive in &directives {
            let applies = if any_targeted {
                targeted_at_us(directive)
            } else {
                directive.target.is_none()
            };
            if !applies {
                continue;
            }
            let argument = &directive.argument;
            match directive.name.as_str() {
                "no-store" | "no-store-remote" => parsed.no_store = true,
                "max-age" if !seen_max_age => {
                    seen_max_age = true;
                    if let Argument::Value(value) = argument {
                        let (fresh, extension) = match value.iter().position(|&b| b == b'+') {
                            Some(plus) => (&value[..plus], Some(&value[plus + 1..])),
                            None => (&value[..], None),
                        };
                        let fresh = parse_delta_seconds(fresh);
                        let extension = extension.map(parse_delta_seconds);
                        if let (Some(fresh), None | Some(Some(_))) = (fresh, extension) {
                            parsed.max_age = Some(fresh);
                            if let Some(Some(extension)) = extension
                                && parsed.stale_if_error.is_none()
                            {
                                parsed.stale_if_error = Some(extension);
                            }
                        }
                    }
                }
                "stale-while-revalidate" => {
                    first_valid(&mut parsed.stale_while_revalidate, argument);
                }
                "stale-if-error" => first_valid(&mut parsed.stale_if_error, argument),
                _ => {}
            }
        }
        parsed
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cache::test_support::headers;

    #[test]
    fn surrogate_control() {
        let parse =
            |value: &str| SurrogateControl::from_headers(&headers(&[("surrogate-control", value)]));
        assert_eq!(parse("max-age=60").max_age, Some(60));
        assert!(parse("no-store").no_store);
        assert!(parse("no-store-remote").no_store);
        let extended = parse("content=\"ESI/1.0\", max-age=60+600");
        assert_eq!(extended.max_age, Some(60));
        assert_eq!(extended.stale_if_error, Some(600));
        assert_eq!(parse("max-age=60+x").max_age, None);
        assert_eq!(parse("max-age=soon").max_age, None);
        let fastly = parse("max-age=86400, stale-while-revalidate=60, stale-if-error=600");
        assert_eq!(fastly.stale_while_revalidate, Some(60));
        assert_eq!(fastly.stale_if_error, Some(600));
        assert!(parse("").is_empty());
    }

    #[test]
    fn surrogate_control_targeting() {
        let parse = |value: &str| SurrogateControl::parse(value.as_bytes());
        // Targeted at someone else: ignored.
        assert!(parse("no-store;othercdn").is_empty());
        assert_eq!(parse("max-age=10, no-store;othercdn").max_age, Some(10));
        // Targeted at us: overrides the untargeted directives.
        let ours = parse("no-store, max-age=300;fleetcache");
        assert!(!ours.no_store);
        assert_eq!(ours.max_age, Some(300));
        assert_eq!(parse("max-age=300 ; FleetCache").max_age, Some(300));
    }
}
