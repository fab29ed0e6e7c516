//! `Cache-Control` (RFC 9111 §5.2) and `Pragma` (§5.4) parsed into what the
//! policy needs (`Surrogate-Control` is in [`super::surrogate`], targeted
//! fields in [`super::targeted`], which of them governs a response in
//! [`super::effective`], the shared field syntax in [`super::syntax`]).
//!
//! Parsing rules, all chosen so that a malformed header can only make us
//! cache *less*:
//! - every field line of the header is parsed, as if the lines were joined
//!   with commas (RFC 9110 §5.3); directive names are case-insensitive;
//!   arguments may be a token or a quoted-string (§5.2: "recipients ought to
//!   accept both forms");
//! - a directive that appears twice keeps its first occurrence (§4.2.1 allows
//!   "first occurrence" or "stale"), except `no-cache` and `private`, where the
//!   most restrictive reading wins: unqualified anywhere beats any field
//!   list, and field lists are united (§4.2.1: "the most restrictive
//!   directive should be honored");
//! - a delta-seconds argument is `1*DIGIT`; larger than 2^31 counts as 2^31
//!   (§1.2.2); anything else makes the directive invalid, and each directive
//!   says below what an invalid one means (always the conservative reading);
//! - a field list that names something that is not a field name, or names
//!   nothing, counts as unqualified (the whole response is affected).

use http::HeaderMap;
use http::header::{CACHE_CONTROL, HeaderName, PRAGMA};

use super::syntax::{
    Argument, DELTA_SECONDS_MAX, cache_control_directives, parse_delta_seconds, trim_ows,
};

/// A delta-seconds argument as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delta {
    /// A valid value, capped at [`DELTA_SECONDS_MAX`].
    Seconds(u64),
    /// Missing, or not a non-negative decimal integer.
    Invalid,
}

impl Delta {
    fn from_argument(argument: &Argument) -> Delta {
        match argument {
            Argument::Value(value) => {
                parse_delta_seconds(value).map_or(Delta::Invalid, Delta::Seconds)
            }
            Argument::Absent | Argument::Malformed => Delta::Invalid,
        }
    }

    /// The value, or `invalid` for an invalid argument.
    pub(crate) fn seconds_or(self, invalid: u64) -> u64 {
        match self {
            Delta::Seconds(seconds) => seconds,
            Delta::Invalid => invalid,
        }
    }
}

/// A directive that is either unqualified or names header fields
/// (`no-cache`, `private`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum FieldDirective {
    /// Not present.
    #[default]
    Absent,
    /// Present without a field list: applies to the whole response.
    Unqualified,
    /// Present with a list of field names: applies to those fields only.
    Fields(Vec<HeaderName>),
}

impl FieldDirective {
    /// Whether the directive is present at all.
    #[cfg(test)]
    pub(crate) fn is_present(&self) -> bool {
        !matches!(self, FieldDirective::Absent)
    }

    /// Whether the directive applies to the whole response.
    pub(crate) fn is_unqualified(&self) -> bool {
        matches!(self, FieldDirective::Unqualified)
    }

    /// The named fields, empty unless qualified.
    pub(crate) fn fields(&self) -> &[HeaderName] {
        match self {
            FieldDirective::Fields(fields) => fields,
            FieldDirective::Absent | FieldDirective::Unqualified => &[],
        }
    }

    /// Reads a field-name list argument (also a targeted field's String).
    pub(crate) fn from_argument(argument: &Argument) -> FieldDirective {
        let Argument::Value(list) = argument else {
            return FieldDirective::Unqualified;
        };
        let mut fields: Vec<HeaderName> = Vec::new();
        for member in list.split(|&b| b == b',') {
            let member = trim_ows(member);
            if member.is_empty() {
                continue;
            }
            match HeaderName::from_bytes(member) {
                Ok(name) if !fields.contains(&name) => fields.push(name),
                Ok(_) => {}
                Err(_) => return FieldDirective::Unqualified,
            }
        }
        if fields.is_empty() {
            FieldDirective::Unqualified
        } else {
            FieldDirective::Fields(fields)
        }
    }

    /// The most restrictive combination of two occurrences.
    fn combine(&mut self, other: FieldDirective) {
        *self = match (std::mem::take(self), other) {
            (FieldDirective::Unqualified, _) | (_, FieldDirective::Unqualified) => {
                FieldDirective::Unqualified
            }
            (FieldDirective::Absent, other) => other,
            (mine, FieldDirective::Absent) => mine,
            (FieldDirective::Fields(mut mine), FieldDirective::Fields(theirs)) => {
                for name in theirs {
                    if !mine.contains(&name) {
                        mine.push(name);
                    }
                }
                FieldDirective::Fields(mine)
            }
        };
    }
}

/// `max-stale` in a request (RFC 9111 §5.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MaxStale {
    /// Without a value: any staleness is acceptable.
    Any,
    /// Staleness up to this many seconds is acceptable.
    Seconds(u64),
}

/// The request directives (RFC 9111 §5.2.1, RFC 5861 §4), plus `Pragma:
/// no-cache` when the request has no `Cache-Control` (§5.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RequestCacheControl {
    /// `no-cache`: revalidate before using a stored response.
    pub(crate) no_cache: bool,
    /// `no-store`: store nothing of this request or its response.
    pub(crate) no_store: bool,
    /// `max-age`: no stored response older than this. Invalid counts as 0.
    pub(crate) max_age: Option<u64>,
    /// `max-stale`: stale responses acceptable. Invalid is ignored.
    pub(crate) max_stale: Option<MaxStale>,
    /// `min-fresh`: a stored response must stay fresh at least this long.
    /// Invalid counts as [`DELTA_SECONDS_MAX`] (always revalidate).
    pub(crate) min_fresh: Option<u64>,
    /// `only-if-cached`: answer from the cache or with 504, never forward.
    pub(crate) only_if_cached: bool,
    /// `no-transform`.
    pub(crate) no_transform: bool,
    /// `stale-if-error` (RFC 5861 §4): a stale response is acceptable if
    /// revalidation fails, up to this many seconds stale. Invalid is ignored.
    pub(crate) stale_if_error: Option<u64>,
}

impl RequestCacheControl {
    /// Parses every `Cache-Control` line of a request; without any, a
    /// `Pragma: no-cache` counts as `Cache-Control: no-cache` (RFC 9111 §5.4).
    pub(crate) fn from_headers(headers: &HeaderMap) -> RequestCacheControl {
        let mut parsed = RequestCacheControl::default();
        if !headers.contains_key(CACHE_CONTROL) {
            parsed.no_cache = cache_control_directives(headers, &PRAGMA)
                .iter()
                .any(|directive| directive.name == "no-cache");
            return parsed;
        }
        let mut seen_max_stale = false;
        for directive in cache_control_directives(headers, &CACHE_CONTROL) {
            let argument = &directive.argument;
            match directive.name.as_str() {
                "no-cache" => parsed.no_cache = true,
                "no-store" => parsed.no_store = true,
                "only-if-cached" => parsed.only_if_cached = true,
                "no-transform" => parsed.no_transform = true,
                "max-age" if parsed.max_age.is_none() => {
                    parsed.max_age = Some(Delta::from_argument(argument).seconds_or(0));
                }
                "min-fresh" if parsed.min_fresh.is_none() => {
                    parsed.min_fresh =
                        Some(Delta::from_argument(argument).seconds_or(DELTA_SECONDS_MAX));
                }
                "max-stale" if !seen_max_stale => {
                    seen_max_stale = true;
                    parsed.max_stale = match argument {
                        Argument::Absent => Some(MaxStale::Any),
                        _ => match Delta::from_argument(argument) {
                            Delta::Seconds(seconds) => Some(MaxStale::Seconds(seconds)),
                            Delta::Invalid => None,
                        },
                    };
                }
                "stale-if-error" => first_valid(&mut parsed.stale_if_error, argument),
                _ => {}
            }
        }
        parsed
    }
}

/// The response directives a shared cache acts on (RFC 9111 §5.2.2, RFC 5861,
/// RFC 8246).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ResponseCacheControl {
    /// `no-cache`: always revalidate (unqualified), or do not send the named
    /// fields without revalidation (qualified, §5.2.2.4).
    pub(crate) no_cache: FieldDirective,
    /// `private`: not for a shared cache (unqualified), or do not store the
    /// named fields (qualified, §5.2.2.7).
    pub(crate) private: FieldDirective,
    /// `no-store`.
    pub(crate) no_store: bool,
    /// `must-revalidate`: never serve stale without successful validation.
    pub(crate) must_revalidate: bool,
    /// `proxy-revalidate`: `must-revalidate` for shared caches.
    pub(crate) proxy_revalidate: bool,
    /// `must-understand`: store only if the status code is understood, and
    /// then ignore `no-store` (§5.2.2.3).
    pub(crate) must_understand: bool,
    /// `public`.
    pub(crate) public: bool,
    /// `immutable` (RFC 8246): the response will not change while fresh.
    pub(crate) immutable: bool,
    /// `no-transform`.
    pub(crate) no_transform: bool,
    /// `max-age`; an invalid one makes the response stale (§4.2.1).
    pub(crate) max_age: Option<Delta>,
    /// `s-maxage`; an invalid one makes the response stale and grants none of
    /// the permissions a valid one does (§3.5).
    pub(crate) s_maxage: Option<Delta>,
    /// `stale-while-revalidate` (RFC 5861 §3). Invalid is ignored.
    pub(crate) stale_while_revalidate: Option<u64>,
    /// `stale-if-error` (RFC 5861 §4). Invalid is ignored.
    pub(crate) stale_if_error: Option<u64>,
}

impl ResponseCacheControl {
    /// Parses every `Cache-Control` line of a response.
    pub(crate) fn from_headers(headers: &HeaderMap) -> ResponseCacheControl {
        let mut parsed = ResponseCacheControl::default();
        for directive in cache_control_directives(headers, &CACHE_CONTROL) {
            let argument = &directive.argument;
            match directive.name.as_str() {
                "no-cache" => parsed.no_cache.combine(match argument {
                    Argument::Absent => FieldDirective::Unqualified,
                    _ => FieldDirective::from_argument(argument),
                }),
                "private" => parsed.private.combine(match argument {
                    Argument::Absent => FieldDirective::Unqualified,
                    _ => FieldDirective::from_argument(argument),
                }),
                "no-store" => parsed.no_store = true,
                "must-revalidate" => parsed.must_revalidate = true,
                "proxy-revalidate" => parsed.proxy_revalidate = true,
                "must-understand" => parsed.must_understand = true,
                "public" => parsed.public = true,
                "immutable" => parsed.immutable = true,
                "no-transform" => parsed.no_transform = true,
                "max-age" if parsed.max_age.is_none() => {
                    parsed.max_age = Some(Delta::from_argument(argument));
                }
                "s-maxage" if parsed.s_maxage.is_none() => {
                    parsed.s_maxage = Some(Delta::from_argument(argument));
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

    /// A valid `s-maxage`: what grants storage to authenticated and
    /// cookie-setting responses.
    pub(crate) fn has_valid_s_maxage(&self) -> bool {
        matches!(self.s_maxage, Some(Delta::Seconds(_)))
    }
}

/// Sets `slot` from the first occurrence with a valid delta-seconds argument.
pub(crate) fn first_valid(slot: &mut Option<u64>, argument: &Argument) {
    if slot.is_none()
        && let Delta::Seconds(seconds) = Delta::from_argument(argument)
    {
        *slot = Some(seconds);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cache::test_support::headers;

    fn response(value: &str) -> ResponseCacheControl {
        ResponseCacheControl::from_headers(&headers(&[("cache-control", value)]))
    }

    fn request(pairs: &[(&str, &str)]) -> RequestCacheControl {
        RequestCacheControl::from_headers(&headers(pairs))
    }

    fn names(list: &[&str]) -> FieldDirective {
        FieldDirective::Fields(
            list.iter()
                .map(|name| HeaderName::from_bytes(name.as_bytes()).unwrap())
                .collect(),
        )
    }

    #[test]
    fn every_response_directive() {
        let cc = response(
            "Public, PRIVATE=\"X-Secret\", No-Cache=\"set-cookie, x-token\", no-store, \
             must-revalidate, proxy-revalidate, must-understand, immutable, no-transform, \
             max-age=60, s-maxage=120, stale-while-revalidate=30, stale-if-error=300, \
             unknown-extension=\"whatever, really\"",
        );
        assert!(cc.public);
        assert_eq!(cc.private, names(&["x-secret"]));
        assert_eq!(cc.no_cache, names(&["set-cookie", "x-token"]));
        assert!(cc.no_store && cc.must_revalidate && cc.proxy_revalidate);
        assert!(cc.must_understand && cc.immutable && cc.no_transform);
        assert_eq!(cc.max_age, Some(Delta::Seconds(60)));
        assert_eq!(cc.s_maxage, Some(Delta::Seconds(120)));
        assert_eq!(cc.stale_while_revalidate, Some(30));
        assert_eq!(cc.stale_if_error, Some(300));
        assert_eq!(response(""), ResponseCacheControl::default());
    }

    #[test]
    fn every_request_directive() {
        let cc = request(&[(
            "cache-control",
            "no-cache, no-store, max-age=5, max-stale=10, min-fresh=20, only-if-cached, \
             no-transform, stale-if-error=30",
        )]);
        assert_eq!(
            cc,
            RequestCacheControl {
                no_cache: true,
                no_store: true,
                max_age: Some(5),
                max_stale: Some(MaxStale::Seconds(10)),
                min_fresh: Some(20),
                only_if_cached: true,
                no_transform: true,
                stale_if_error: Some(30),
            }
        );
        assert_eq!(
            request(&[("cache-control", "max-stale")]).max_stale,
            Some(MaxStale::Any)
        );
    }

    #[test]
    fn invalid_request_arguments_read_conservatively() {
        let cc = request(&[(
            "cache-control",
            "max-age=soon, max-stale=lots, min-fresh=-1, stale-if-error=x",
        )]);
        assert_eq!(cc.max_age, Some(0));
        assert_eq!(cc.max_stale, None);
        assert_eq!(cc.min_fresh, Some(DELTA_SECONDS_MAX));
        assert_eq!(cc.stale_if_error, None);
    }

    #[test]
    fn lines_are_combined_and_first_occurrence_wins() {
        let cc = ResponseCacheControl::from_headers(&headers(&[
            ("cache-control", "max-age=10"),
            ("cache-control", "max-age=20, public"),
        ]));
        assert_eq!(cc.max_age, Some(Delta::Seconds(10)));
        assert!(cc.public);
        // A first, invalid occurrence still wins: the response is stale.
        assert_eq!(
            response("max-age=x, max-age=20").max_age,
            Some(Delta::Invalid)
        );
    }

    #[test]
    fn quoted_arguments_and_odd_spacing() {
        assert_eq!(response("max-age=\"60\"").max_age, Some(Delta::Seconds(60)));
        assert_eq!(response("max-age = 60").max_age, Some(Delta::Seconds(60)));
        assert_eq!(response("MAX-AGE=60").max_age, Some(Delta::Seconds(60)));
        assert_eq!(
            response(" ,, max-age=60 ,").max_age,
            Some(Delta::Seconds(60))
        );
        assert_eq!(
            response("private=set-cookie").private,
            names(&["set-cookie"])
        );
        assert_eq!(
            response("no-cache=\"a\\\"b\", public").no_cache,
            FieldDirective::Unqualified,
            "an escaped quote is not a field name"
        );
    }

    #[test]
    fn invalid_freshness_arguments() {
        for value in [
            "max-age",
            "max-age=",
            "max-age=-1",
            "max-age=1.5",
            "max-age=60 extra",
            "max-age=\"60",
            "max-age=60;target",
        ] {
            assert_eq!(response(value).max_age, Some(Delta::Invalid), "{value}");
        }
        assert_eq!(
            response("max-age=99999999999999999999").max_age,
            Some(Delta::Seconds(DELTA_SECONDS_MAX))
        );
        let cc = response("s-maxage=abc, stale-while-revalidate=, stale-if-error=1e3");
        assert_eq!(cc.s_maxage, Some(Delta::Invalid));
        assert!(!cc.has_valid_s_maxage());
        assert_eq!(cc.stale_while_revalidate, None);
        assert_eq!(cc.stale_if_error, None);
    }

    #[test]
    fn garbage_never_hides_later_directives() {
        let cc = response("\"junk, with comma\", =x, ;;, no-store, @@@, max-age=5");
        assert!(cc.no_store);
        assert_eq!(cc.max_age, Some(Delta::Seconds(5)));
    }

    #[test]
    fn non_utf8_values_are_parsed_as_bytes() {
        let mut map = HeaderMap::new();
        map.append(
            CACHE_CONTROL,
            http::HeaderValue::from_bytes(b"no-cache=\"x-\xe9\", max-age=\xff9, public").unwrap(),
        );
        let cc = ResponseCacheControl::from_headers(&map);
        assert!(cc.public);
        assert_eq!(cc.max_age, Some(Delta::Invalid));
        assert_eq!(cc.no_cache, FieldDirective::Unqualified);
    }

    #[test]
    fn no_cache_and_private_take_the_most_restrictive_reading() {
        assert_eq!(response("no-cache").no_cache, FieldDirective::Unqualified);
        assert_eq!(
            response("no-cache=\"a\", no-cache").no_cache,
            FieldDirective::Unqualified
        );
        assert_eq!(
            response("private=\"a, b\", private=\"b, c\"").private,
            names(&["a", "b", "c"])
        );
        assert_eq!(
            response("private=\"\"").private,
            FieldDirective::Unqualified
        );
        assert_eq!(
            response("private=\"ok, not a name\"").private,
            FieldDirective::Unqualified
        );
        assert_eq!(response("private=\"A , B\"").private, names(&["a", "b"]));
        assert!(!response("public").private.is_present());
    }

    #[test]
    fn pragma_no_cache_only_without_cache_control() {
        assert!(request(&[("pragma", "no-cache")]).no_cache);
        assert!(request(&[("pragma", "foo, No-Cache")]).no_cache);
        assert!(!request(&[("pragma", "nope")]).no_cache);
        assert!(!request(&[("pragma", "no-cache"), ("cache-control", "max-age=5")]).no_cache);
    }
}
