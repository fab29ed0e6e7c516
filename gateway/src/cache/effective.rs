//! The one place that decides which response fields set this cache's policy
//! for a response, computed once per decision and consumed by
//! [`super::storable`], [`super::freshness`], [`super::evaluate`] and
//! [`super::validation`]; plus the operator's per-origin [`Defaults`].
//!
//! Precedence, most specific first:
//! 1. a targeted field (RFC 9213; [`super::targeted`]) with a valid,
//!    non-empty value: it alone is the policy. `Cache-Control` and `Expires`
//!    are ignored (§2.2), and so is `Surrogate-Control`: RFC 9213 is the
//!    standard successor of that ad hoc targeted field, and an origin that
//!    sends both has put its current policy in the standard one;
//! 2. otherwise `Cache-Control` and `Expires` (RFC 9111), with
//!    `Surrogate-Control` addressed to us layered on top as before: its
//!    `no-store` refuses storage; its `max-age` gives the lifetime, overrides
//!    `Cache-Control: no-store`, and makes `Cache-Control`'s `no-cache`,
//!    `must-revalidate`, `proxy-revalidate` and `s-maxage` count as meant for
//!    downstream caches; its `stale-while-revalidate` / `stale-if-error` come
//!    before `Cache-Control`'s. It never overrides `private`, and never
//!    vouches for `Authorization` or `Set-Cookie`.
//!
//! Either way the directives that govern sit in
//! [`EffectiveControl::directives`], so every rule that reads a directive
//! (`private`, `public`, `s-maxage`, `must-understand`, ...) reads the
//! targeted field's when there is one, with no special case.

use std::time::Duration;

use http::HeaderMap;
use http::header::{EXPIRES, HeaderName};

use super::directives::{FieldDirective, ResponseCacheControl};
use super::surrogate::SurrogateControl;
use super::targeted;

/// An origin's operator-configured caching defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Defaults {
    /// Freshness for responses without explicit freshness, replacing the
    /// heuristic (RFC 9111 §4.2.2); `None`: the heuristic.
    pub(crate) default_ttl: Option<Duration>,
    /// How long past its freshness a stored response may still be served
    /// when the origin cannot be reached or answers 500, 502, 503 or 504
    /// (RFC 9111 §4.2.4 allows serving stale when disconnected, §4.3.3 lets a
    /// 5xx count as a failure to respond). It widens the windows the origin
    /// and client grant, but never lifts `must-revalidate`,
    /// `proxy-revalidate`, `s-maxage` or `no-cache`.
    pub(crate) stale_if_error: Option<Duration>,
}

impl Defaults {
    /// The operator's stale-if-error window in whole seconds.
    pub(crate) fn stale_if_error_seconds(&self) -> Option<u64> {
        self.stale_if_error.map(|window| window.as_secs())
    }
}

/// Which response fields set the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PolicySource {
    /// This targeted field (RFC 9213).
    Targeted(HeaderName),
    /// `Cache-Control` and `Expires`, under any `Surrogate-Control`.
    CacheControl,
}

/// The response cache control this cache obeys for one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EffectiveControl {
    /// Where it came from.
    pub(crate) source: PolicySource,
    /// The governing directives: the targeted field's, or `Cache-Control`'s.
    pub(crate) directives: ResponseCacheControl,
    /// `Surrogate-Control` addressed to us; empty under a targeted field.
    pub(crate) surrogate: SurrogateControl,
}

impl EffectiveControl {
    /// The policy of a response with these header fields and this (already
    /// parsed) `Surrogate-Control`.
    pub(crate) fn new(headers: &HeaderMap, surrogate: SurrogateControl) -> EffectiveControl {
        match targeted::select(headers) {
            Some(targeted) => EffectiveControl {
                source: PolicySource::Targeted(targeted.field),
                directives: targeted.directives,
                surrogate: SurrogateControl::default(),
            },
            None => EffectiveControl {
                source: PolicySource::CacheControl,
                directives: ResponseCacheControl::from_headers(headers),
                surrogate,
            },
        }
    }

    /// The policy of a response as received, `Surrogate-Control` included.
    pub(crate) fn from_response(headers: &HeaderMap) -> EffectiveControl {
        EffectiveControl::new(headers, SurrogateControl::from_headers(headers))
    }

    /// Whether `Expires` counts (not under a targeted field, RFC 9213 §2.2).
    pub(crate) fn uses_expires(&self) -> bool {
        self.source == PolicySource::CacheControl
    }

    /// Whether `Surrogate-Control: max-age` gives the lifetime, which puts
    /// `Cache-Control`'s revalidation directives out of play.
    pub(crate) fn surrogate_rules(&self) -> bool {
        self.surrogate.max_age.is_some()
    }

    /// Whether the response states its freshness (so the heuristic and the
    /// default TTL do not apply, RFC 9111 §4.2.2).
    pub(crate) fn has_explicit_freshness(&self, headers: &HeaderMap) -> bool {
        self.surrogate.max_age.is_some()
            || self.directives.s_maxage.is_some()
            || self.directives.max_age.is_some()
            || (self.uses_expires() && headers.contains_key(EXPIRES))
    }

    /// `no-cache` as this cache obeys it.
    pub(crate) fn no_cache(&self) -> &FieldDirective {
        const ABSENT: &FieldDirective = &FieldDirective::Absent;
        if self.surrogate_rules() {
            ABSENT
        } else {
            &self.directives.no_cache
        }
    }

    /// Whether the response may never be served stale without successful
    /// validation: `must-revalidate`, `proxy-revalidate`, or `s-maxage`
    /// (which implies `proxy-revalidate` for a shared cache, RFC 9111
    /// §5.2.2.10).
    pub(crate) fn never_stale(&self) -> bool {
        !self.surrogate_rules()
            && (self.directives.must_revalidate
                || self.directives.proxy_revalidate
                || self.directives.s_maxage.is_some())
    }

    /// The response's `stale-while-revalidate` window (RFC 5861 §3).
    pub(crate) fn stale_while_revalidate(&self) -> Option<u64> {
        self.surrogate
            .stale_while_revalidate
            .or(self.directives.stale_while_revalidate)
    }

    /// The response's `stale-if-error` window (RFC 5861 §4).
    pub(crate) fn stale_if_error(&self) -> Option<u64> {
        self.surrogate
            .stale_if_error
            .or(self.directives.stale_if_error)
    }

    /// Whether a shared cache may store the response to a request with
    /// `Authorization` (RFC 9111 §3.5).
    pub(crate) fn allows_authorized(&self) -> bool {
        self.directives.public
            || self.directives.has_valid_s_maxage()
            || self.directives.must_revalidate
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cache::directives::Delta;
    use crate::cache::test_support::headers;

    fn control(pairs: &[(&str, &str)]) -> EffectiveControl {
        EffectiveControl::from_response(&headers(pairs))
    }

    #[test]
    fn a_targeted_field_replaces_cache_control_expires_and_surrogate_control() {
        let all = control(&[
            ("cache-control", "no-store, private, max-age=5"),
            ("surrogate-control", "no-store, max-age=9"),
            ("expires", "0"),
            ("cdn-cache-control", "max-age=60"),
        ]);
        assert_eq!(
            all.source,
            PolicySource::Targeted(targeted::CDN_CACHE_CONTROL)
        );
        assert!(!all.directives.no_store && !all.directives.private.is_present());
        assert_eq!(all.directives.max_age, Some(Delta::Seconds(60)));
        assert_eq!(all.surrogate, SurrogateControl::default());
        assert!(!all.uses_expires());
        let expires = [("expires", "0"), ("cdn-cache-control", "public")];
        assert!(!control(&expires).has_explicit_freshness(&headers(&expires)));
    }

    #[test]
    fn without_one_cache_control_and_surrogate_control_apply() {
        let plain = control(&[
            (
                "cache-control",
                "no-cache, must-revalidate, stale-if-error=5",
            ),
            ("cdn-cache-control", "max-age=60, &&&"),
        ]);
        assert_eq!(plain.source, PolicySource::CacheControl);
        assert!(plain.uses_expires());
        assert!(plain.no_cache().is_unqualified() && plain.never_stale());
        assert_eq!(plain.stale_if_error(), Some(5));
        assert!(plain.has_explicit_freshness(&headers(&[("expires", "0")])));

        let surrogate = control(&[
            ("cache-control", "no-cache, s-maxage=0, stale-if-error=5"),
            ("surrogate-control", "max-age=60+30"),
        ]);
        assert!(surrogate.surrogate_rules());
        assert!(!surrogate.no_cache().is_present() && !surrogate.never_stale());
        assert_eq!(surrogate.stale_if_error(), Some(30));
    }

    #[test]
    fn authorization_permissions_come_from_the_governing_field() {
        assert!(control(&[("cache-control", "public")]).allows_authorized());
        assert!(
            !control(&[
                ("cache-control", "public"),
                ("cdn-cache-control", "max-age=9")
            ])
            .allows_authorized()
        );
        assert!(control(&[("cdn-cache-control", "s-maxage=9")]).allows_authorized());
        assert!(!control(&[("cdn-cache-control", "s-maxage=\"9\"")]).allows_authorized());
    }

    #[test]
    fn operator_window_in_seconds() {
        let defaults = Defaults {
            default_ttl: None,
            stale_if_error: Some(Duration::from_millis(90_500)),
        };
        assert_eq!(defaults.stale_if_error_seconds(), Some(90));
        assert_eq!(Defaults::default().stale_if_error_seconds(), None);
    }
}
