//! Targeted cache-control fields (RFC 9213): `Fleetcache-Cache-Control` and
//! `CDN-Cache-Control`, read into the same [`ResponseCacheControl`] as
//! `Cache-Control`, since their directives mean the same (§2.2).
//!
//! Choices where the RFC leaves room:
//! - the target list (§2.2) is `Fleetcache-Cache-Control`, then
//!   `CDN-Cache-Control`: this node is a CDN-class cache, and the field named
//!   after it lets an origin that sits behind several CDNs give this one a
//!   policy of its own, exactly as §2.2's `ExampleCDN-Cache-Control` example
//!   does. Both are forwarded, not stripped (§3 allows either; downstream
//!   CDN caches may use them);
//! - each is a strict Structured Field Dictionary ([`super::sf`]); a value
//!   that fails to parse, or is empty, makes the field count as absent
//!   (§2.1). So `MaX-aGe=60` (keys are lowercase in RFC 8941) or
//!   `max-age =60` leave `Cache-Control` in charge;
//! - a directive whose value has the wrong type (`max-age="60"`,
//!   `max-age=1.5`, `public=3`) is "not consumed" (§2.1 "SHOULD NOT consume
//!   values that violate these inferred constraints"): it is the directive
//!   that is wrong, not the field, which still overrides `Cache-Control`.
//!   Not consuming is read the conservative way, as the `Cache-Control`
//!   parser reads an invalid argument: a wrongly typed `max-age` or
//!   `s-maxage` is present but invalid (the response is stale, and
//!   `s-maxage` grants nothing); a wrongly typed `stale-while-revalidate` or
//!   `stale-if-error` is ignored; a wrongly typed `public`, `immutable` or
//!   `must-understand` (which permit more) is ignored; and `no-store`,
//!   `no-cache`, `private`, `must-revalidate`, `proxy-revalidate` and
//!   `no-transform` (which restrict) apply whatever their value, even
//!   `?0` (a value they cannot have);
//! - `no-cache` and `private` take a String of field names
//!   (`private="set-cookie"`), read like `Cache-Control`'s quoted form;
//! - integers beyond delta-seconds saturate at 2^31 like `Cache-Control`
//!   (RFC 9111 §1.2.2); negative ones are invalid;
//! - parameters are ignored (§2.1), and unknown directives too (§2.2).

use http::HeaderMap;
use http::header::HeaderName;

use super::directives::{Delta, FieldDirective, ResponseCacheControl};
use super::sf::{BareItem, Dictionary, Member, parse_dictionary_field};
use super::syntax::{Argument, DELTA_SECONDS_MAX};

/// This node's own targeted field, ahead of `CDN-Cache-Control`.
pub(crate) const FLEETCACHE_CACHE_CONTROL: HeaderName =
    HeaderName::from_static("fleetcache-cache-control");

/// `CDN-Cache-Control` (RFC 9213 §3).
pub(crate) const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// The target list, most applicable first (RFC 9213 §2.2).
pub(crate) const TARGET_LIST: [HeaderName; 2] = [FLEETCACHE_CACHE_CONTROL, CDN_CACHE_CONTROL];

/// The targeted field that sets this cache's policy for one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Targeted {
    /// Which field of the target list it is.
    pub(crate) field: HeaderName,
    /// Its directives, in `Cache-Control` terms.
    pub(crate) directives: ResponseCacheControl,
}

/// The first field of the target list with a valid, non-empty value (RFC
/// 9213 §2.2), or `None` when `Cache-Control` and `Expires` apply.
pub(crate) fn select(headers: &HeaderMap) -> Option<Targeted> {
    TARGET_LIST.into_iter().find_map(|field| {
        let dictionary = parse_dictionary_field(headers, &field)?;
        if dictionary.is_empty() {
            return None;
        }
        Some(Targeted {
            field,
            directives: directives(&dictionary),
        })
    })
}

/// Reads a targeted field's dictionary as response directives. Members are
/// read in order and each overwrites, so a repeated directive takes its last
/// value, as RFC 8941 §4.2.2 says (unlike `Cache-Control`'s first).
fn directives(dictionary: &Dictionary) -> ResponseCacheControl {
    let mut parsed = ResponseCacheControl::default();
    for (key, member) in dictionary.members() {
        let item = match member {
            Member::Item(item) => Some(item),
            Member::InnerList => None,
        };
        let is_true = matches!(item, Some(BareItem::Boolean(true)));
        match key.as_str() {
            "no-store" => parsed.no_store = true,
            "must-revalidate" => parsed.must_revalidate = true,
            "proxy-revalidate" => parsed.proxy_revalidate = true,
            "no-transform" => parsed.no_transform = true,
            "no-cache" => parsed.no_cache = field_directive(item),
            "private" => parsed.private = field_directive(item),
            "public" => parsed.public = is_true,
            "immutable" => parsed.immutable = is_true,
            "must-understand" => parsed.must_understand = is_true,
            "max-age" => parsed.max_age = Some(delta(item)),
            "s-maxage" => parsed.s_maxage = Some(delta(item)),
            "stale-while-revalidate" => parsed.stale_while_revalidate = seconds(item),
            "stale-if-error" => parsed.stale_if_error = seconds(item),
            _ => {}
        }
    }
    parsed
}

/// An Integer of at least 0, capped at 2^31 (RFC 9111 §1.2.2).
fn seconds(item: Option<&BareItem>) -> Option<u64> {
    match item {
        Some(&BareItem::Integer(value)) => u64::try_from(value)
            .ok()
            .map(|value| value.min(DELTA_SECONDS_MAX)),
        _ => None,
    }
}

fn delta(item: Option<&BareItem>) -> Delta {
    seconds(item).map_or(Delta::Invalid, Delta::Seconds)
}

/// `no-cache` / `private`: `true` is unqualified, a String lists field
/// names; any other value restricts the whole response.
fn field_directive(item: Option<&BareItem>) -> FieldDirective {
    match item {
        Some(BareItem::String(names)) => {
            FieldDirective::from_argument(&Argument::Value(names.as_bytes().to_vec()))
        }
        _ => FieldDirective::Unqualified,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cache::PSEUDONYM;
    use crate::cache::test_support::headers;

    fn cdn(value: &str) -> Option<ResponseCacheControl> {
        select(&headers(&[("cdn-cache-control", value)])).map(|targeted| targeted.directives)
    }

    #[test]
    fn our_field_is_named_after_us() {
        assert!(FLEETCACHE_CACHE_CONTROL.as_str().starts_with(PSEUDONYM));
    }

    #[test]
    fn every_directive() {
        let cc = cdn(
            "public, private=\"X-Secret\", no-cache=\"set-cookie, x-token\", no-store, \
             must-revalidate, proxy-revalidate, must-understand, immutable, no-transform, \
             max-age=60, s-maxage=120, stale-while-revalidate=30, stale-if-error=300, \
             unknown-extension=(a b);p=1",
        )
        .unwrap();
        assert!(cc.public && cc.no_store && cc.must_revalidate && cc.proxy_revalidate);
        assert!(cc.must_understand && cc.immutable && cc.no_transform);
        assert_eq!(cc.private.fields(), [HeaderName::from_static("x-secret")]);
        assert_eq!(cc.no_cache.fields().len(), 2);
        assert_eq!(cc.max_age, Some(Delta::Seconds(60)));
        assert_eq!(cc.s_maxage, Some(Delta::Seconds(120)));
        assert_eq!(cc.stale_while_revalidate, Some(30));
        assert_eq!(cc.stale_if_error, Some(300));
        assert_eq!(
            cdn("max-age=99999999999").unwrap().max_age,
            Some(Delta::Seconds(DELTA_SECONDS_MAX))
        );
        // A repeated directive: the last value counts (RFC 8941 §4.2.2).
        let repeated = cdn("max-age=60, public, max-age=5, public=?0").unwrap();
        assert_eq!(repeated.max_age, Some(Delta::Seconds(5)));
        assert!(!repeated.public);
        // Parameters are ignored.
        assert_eq!(
            cdn("max-age=60;foo=bar").unwrap().max_age,
            Some(Delta::Seconds(60))
        );
        // An extension alone still makes the field valid and non-empty.
        assert_eq!(cdn("none"), Some(ResponseCacheControl::default()));
    }

    #[test]
    fn wrongly_typed_values_are_not_consumed() {
        for value in [
            "max-age=\"60\"",
            "max-age=60.0",
            "max-age=-1",
            "max-age=?1",
            "max-age",
            "max-age=sixty",
            "max-age=(60)",
        ] {
            let cc = cdn(value).unwrap();
            assert_eq!(cc.max_age, Some(Delta::Invalid), "{value}");
        }
        let cc = cdn("s-maxage=\"1\", stale-if-error=\"9\", stale-while-revalidate=1.5").unwrap();
        assert_eq!(cc.s_maxage, Some(Delta::Invalid));
        assert!(!cc.has_valid_s_maxage());
        assert_eq!((cc.stale_if_error, cc.stale_while_revalidate), (None, None));
        // Permissive booleans need `true`; restrictive ones apply regardless.
        let cc = cdn("public=?0, immutable=1, must-understand=\"yes\"").unwrap();
        assert!(!cc.public && !cc.immutable && !cc.must_understand);
        let cc = cdn("no-store=?0, must-revalidate=1, no-cache=3, private=(a)").unwrap();
        assert!(cc.no_store && cc.must_revalidate);
        assert!(cc.no_cache.is_unqualified() && cc.private.is_unqualified());
        // A list that names something that is not a field: whole response.
        assert!(
            cdn("private=\"not a name\"")
                .unwrap()
                .private
                .is_unqualified()
        );
    }

    #[test]
    fn invalid_or_empty_fields_are_ignored() {
        for value in [
            "",
            "max-age=10000, &&&&&",
            "MaX-aGe=3600",
            "max-age =100",
            "max-age= 100",
            "max-age=60,",
        ] {
            assert_eq!(cdn(value), None, "{value:?}");
        }
        // Any invalid line invalidates the field.
        let lines = headers(&[
            ("cdn-cache-control", "max-age=60"),
            ("cdn-cache-control", "Private"),
        ]);
        assert_eq!(select(&lines), None);
    }

    #[test]
    fn the_first_valid_field_of_the_target_list_wins() {
        let both = headers(&[
            ("cdn-cache-control", "max-age=60"),
            ("fleetcache-cache-control", "max-age=5"),
        ]);
        let chosen = select(&both).unwrap();
        assert_eq!(chosen.field, FLEETCACHE_CACHE_CONTROL);
        assert_eq!(chosen.directives.max_age, Some(Delta::Seconds(5)));
        // An invalid or empty first field passes the turn to the next.
        for ours in ["", "max-age=5,", "Max-Age=5"] {
            let fallback = headers(&[
                ("cdn-cache-control", "max-age=60"),
                ("fleetcache-cache-control", ours),
            ]);
            let chosen = select(&fallback).unwrap();
            assert_eq!(chosen.field, CDN_CACHE_CONTROL, "{ours:?}");
            assert_eq!(chosen.directives.max_age, Some(Delta::Seconds(60)));
        }
        // A targeted field of another cache changes nothing (§2.2).
        let other = headers(&[("othercdn-cache-control", "max-age=60")]);
        assert_eq!(select(&other), None);
    }
}
