//! Freshness lifetime (RFC 9111 §4.2.1, §4.2.2) and current age (§4.2.3)
//! of a stored response.
//!
//! Which fields count is [`EffectiveControl`]'s business: a targeted
//! field's `s-maxage` / `max-age` (RFC 9213), with `Cache-Control`,
//! `Expires` and `Surrogate-Control` ignored; else the sources below.
//!
//! Choices where the RFCs leave room:
//! - `Surrogate-Control: max-age` (addressed to us) beats every
//!   `Cache-Control` source: it is the origin speaking to its surrogates,
//!   and `Cache-Control` is then meant for browsers;
//! - an invalid `max-age` or `s-maxage`, or an invalid `Expires` (`0`, a
//!   non-date), gives a lifetime of 0: stale (§4.2.1, §5.3);
//! - with several `Expires` (or `Date`, `Last-Modified`) lines, the first
//!   counts;
//! - an operator `default_ttl` replaces the heuristic, not explicit
//!   freshness, and like the heuristic (§4.2.2) applies only to
//!   heuristically cacheable statuses or `public` responses;
//! - the heuristic is 10% of `Date − Last-Modified`, capped at one day
//!   ([`HEURISTIC_CAP`]): long enough to absorb bursts, short enough that an
//!   origin that never states freshness still sees its changes the same day;
//!   0 without `Last-Modified`;
//! - an `Age` that is invalid is ignored (§5.1); a list uses its first member;
//!   a huge one counts as 2^31 (§1.2.2).

use std::time::SystemTime;

use http::HeaderValue;
use http::header::{AGE, EXPIRES, HeaderMap, LAST_MODIFIED};

use super::date::unix_seconds;
use super::effective::{Defaults, EffectiveControl};
use super::stored::StoredResponse;
use super::syntax::{DELTA_SECONDS_MAX, parse_delta_seconds};

/// The most freshness the heuristic grants (one day).
pub(crate) const HEURISTIC_CAP: u64 = 86_400;

/// Where a freshness lifetime came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LifetimeSource {
    /// `Surrogate-Control: max-age`.
    SurrogateMaxAge,
    /// `s-maxage` (shared caches only), of a targeted field or
    /// `Cache-Control`.
    SMaxAge,
    /// `max-age`, of a targeted field or `Cache-Control`.
    MaxAge,
    /// `Expires` minus `Date`.
    Expires,
    /// The operator's default TTL, standing in for the heuristic.
    DefaultTtl,
    /// 10% of `Date − Last-Modified` (§4.2.2).
    Heuristic,
    /// No source applies: the lifetime is 0.
    None,
}

/// A freshness lifetime in seconds and its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifetime {
    /// Seconds the response is fresh for, counted from its generation.
    pub(crate) seconds: u64,
    /// Which rule produced it.
    pub(crate) source: LifetimeSource,
}

/// Statuses RFC 9110 §15.1 defines as heuristically cacheable, minus 206
/// (we never store partial responses).
pub(crate) fn is_heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The freshness lifetime of a stored response (§4.2.1).
#[cfg(test)]
pub(crate) fn freshness_lifetime(stored: &StoredResponse, defaults: Defaults) -> Lifetime {
    lifetime_from(stored, stored.control(), defaults)
}

/// The freshness lifetime of a stored response (§4.2.1), with its policy
/// already worked out.
pub(crate) fn lifetime_from(
    stored: &StoredResponse,
    control: &EffectiveControl,
    defaults: Defaults,
) -> Lifetime {
    let lifetime = |seconds, source| Lifetime { seconds, source };
    let directives = &control.directives;
    if let Some(seconds) = control.surrogate.max_age {
        return lifetime(seconds, LifetimeSource::SurrogateMaxAge);
    }
    if let Some(s_maxage) = directives.s_maxage {
        return lifetime(s_maxage.seconds_or(0), LifetimeSource::SMaxAge);
    }
    if let Some(max_age) = directives.max_age {
        return lifetime(max_age.seconds_or(0), LifetimeSource::MaxAge);
    }
    let date = stored.date().unwrap_or(stored.response_time);
    if control.uses_expires() && stored.headers.contains_key(EXPIRES) {
        // An Expires that does not parse is "in the past" (§5.3).
        let expires = stored.date_field(&EXPIRES).unwrap_or(0);
        return lifetime(expires.saturating_sub(date), LifetimeSource::Expires);
    }
    if !(is_heuristically_cacheable(stored.status) || directives.public) {
        return lifetime(0, LifetimeSource::None);
    }
    if let Some(ttl) = defaults.default_ttl {
        return lifetime(ttl.as_secs(), LifetimeSource::DefaultTtl);
    }
    match stored.date_field(&LAST_MODIFIED) {
        Some(last_modified) => lifetime(
            (date.saturating_sub(last_modified) / 10).min(HEURISTIC_CAP),
            LifetimeSource::Heuristic,
        ),
        None => lifetime(0, LifetimeSource::None),
    }
}

/// Every intermediate of the age calculation of §4.2.3, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AgeCalculation {
    /// `max(0, response_time − date_value)`.
    pub(crate) apparent_age: u64,
    /// `response_time − request_time`.
    pub(crate) response_delay: u64,
    /// `age_value + response_delay`.
    pub(crate) corrected_age_value: u64,
    /// `max(apparent_age, corrected_age_value)`.
    pub(crate) corrected_initial_age: u64,
    /// `now − response_time`.
    pub(crate) resident_time: u64,
    /// `corrected_initial_age + resident_time`.
    pub(crate) current_age: u64,
}

/// The age of a stored response at `now` (§4.2.3). Clocks that run
/// backwards (a `request_time` after `response_time`, a `now` before it)
/// count as zero time passed; every sum saturates.
pub(crate) fn age_at(stored: &StoredResponse, now: SystemTime) -> AgeCalculation {
    let now = unix_seconds(now);
    // A missing or invalid Date: the response time stands in (RFC 9110 §6.6.1).
    let date_value = stored.date().unwrap_or(stored.response_time);
    let apparent_age = stored.response_time.saturating_sub(date_value);
    let response_delay = stored.response_time.saturating_sub(stored.request_time);
    let corrected_age_value = age_value(&stored.headers).saturating_add(response_delay);
    let corrected_initial_age = apparent_age.max(corrected_age_value);
    let resident_time = now.saturating_sub(stored.response_time);
    AgeCalculation {
        apparent_age,
        response_delay,
        corrected_age_value,
        corrected_initial_age,
        resident_time,
        current_age: corrected_initial_age.saturating_add(resident_time),
    }
}

/// The `Age` field's value (§5.1): the first member of the first line; 0
/// when absent or invalid; at most 2^31.
pub(crate) fn age_value(headers: &HeaderMap) -> u64 {
    let Some(line) = headers.get(AGE) else {
        return 0;
    };
    let first = line
        .as_bytes()
        .split(|&b| b == b',')
        .next()
        .unwrap_or_default();
    parse_delta_seconds(first.trim_ascii()).unwrap_or(0)
}

/// The `Age` header to send with a stored response of this current age,
/// capped at 2^31 as §5.1 requires on overflow.
pub(crate) fn age_header_value(current_age: u64) -> HeaderValue {
    HeaderValue::from(current_age.min(DELTA_SECONDS_MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cache::test_support::{T0, at, date, stored};
    use std::time::Duration;

    const DAY: u64 = 86_400;

    fn lifetime(status: u16, pairs: &[(&str, &str)], default_ttl: Option<u64>) -> Lifetime {
        let defaults = Defaults {
            default_ttl: default_ttl.map(Duration::from_secs),
            stale_if_error: None,
        };
        freshness_lifetime(&stored(status, pairs, T0, T0), defaults)
    }

    fn seconds(status: u16, pairs: &[(&str, &str)]) -> u64 {
        lifetime(status, pairs, None).seconds
    }

    #[test]
    fn each_source_and_their_precedence() {
        let now = date(T0);
        let in_hour = date(T0 + 3600);
        let week_ago = date(T0 - 7 * DAY);
        let all = [
            ("surrogate-control", "max-age=5"),
            ("cache-control", "max-age=20, s-maxage=10"),
            ("date", now.as_str()),
            ("expires", in_hour.as_str()),
            ("last-modified", week_ago.as_str()),
        ];
        let check = |skip: usize, seconds: u64, source: LifetimeSource| {
            let pairs = &all[skip..];
            assert_eq!(
                lifetime(200, pairs, None),
                Lifetime { seconds, source },
                "{pairs:?}"
            );
        };
        check(0, 5, LifetimeSource::SurrogateMaxAge);
        check(1, 10, LifetimeSource::SMaxAge);
        assert_eq!(
            lifetime(200, &[("cache-control", "max-age=20")], None),
            Lifetime {
                seconds: 20,
                source: LifetimeSource::MaxAge
            }
        );
        check(2, 3600, LifetimeSource::Expires);
        check(4, 7 * DAY / 10, LifetimeSource::Heuristic);
    }

    #[test]
    fn invalid_explicit_freshness_is_stale() {
        let future = date(T0 + 3600);
        for pairs in [
            &[("cache-control", "max-age=soon"), ("expires", &future[..])][..],
            &[("cache-control", "s-maxage=x, max-age=60")],
            &[("expires", "0")],
            &[("expires", "-1")],
            &[("expires", "tomorrow")],
        ] {
            assert_eq!(seconds(200, pairs), 0, "{pairs:?}");
        }
        // An invalid max-age still beats a valid Expires and the heuristic.
        assert_eq!(
            lifetime(200, &[("cache-control", "max-age=x")], Some(60)).source,
            LifetimeSource::MaxAge
        );
    }

    #[test]
    fn expires_counts_from_date_or_the_response_time() {
        let expires = date(T0 + 100);
        // Date 40 s before we received it: lifetime is Expires − Date.
        let sent = date(T0 - 40);
        assert_eq!(seconds(200, &[("expires", &expires), ("date", &sent)]), 140);
        // No Date, or an invalid one: the response time stands in.
        assert_eq!(seconds(200, &[("expires", &expires)]), 100);
        assert_eq!(
            seconds(200, &[("expires", &expires), ("date", "garbage")]),
            100
        );
        // Expires before Date: stale, not negative.
        assert_eq!(seconds(200, &[("expires", &sent), ("date", &expires)]), 0);
        // The first of several Expires lines counts.
        let later = date(T0 + 500);
        assert_eq!(
            seconds(200, &[("expires", &expires), ("expires", &later)]),
            100
        );
    }

    #[test]
    fn huge_values_saturate() {
        assert_eq!(
            seconds(200, &[("cache-control", "max-age=99999999999999999999")]),
            DELTA_SECONDS_MAX
        );
        let far = "Fri, 31 Dec 9999 23:59:59 GMT";
        assert_eq!(seconds(200, &[("expires", far)]), 253_402_300_799 - T0);
    }

    #[test]
    fn heuristic_only_without_explicit_freshness_and_for_the_right_statuses() {
        let last_modified = date(T0 - 100 * DAY);
        let pairs = [("last-modified", last_modified.as_str())];
        for status in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
            assert_eq!(seconds(status, &pairs), HEURISTIC_CAP, "{status}");
        }
        for status in [302, 303, 307, 400, 403, 500, 502, 503] {
            assert_eq!(lifetime(status, &pairs, None).source, LifetimeSource::None);
        }
        // `public` opens the heuristic to any status.
        let public = [
            ("last-modified", last_modified.as_str()),
            ("cache-control", "public"),
        ];
        assert_eq!(seconds(500, &public), HEURISTIC_CAP);
        // Explicit freshness, even zero, turns it off.
        let explicit = [
            ("last-modified", last_modified.as_str()),
            ("cache-control", "max-age=0"),
        ];
        assert_eq!(seconds(200, &explicit), 0);
    }

    #[test]
    fn heuristic_is_ten_percent_capped_and_zero_without_last_modified() {
        let ten_hours_ago = date(T0 - 36_000);
        assert_eq!(seconds(200, &[("last-modified", &ten_hours_ago)]), 3600);
        assert_eq!(lifetime(200, &[], None).source, LifetimeSource::None);
        assert_eq!(seconds(200, &[]), 0);
        // Last-Modified after Date: no heuristic freshness.
        let future = date(T0 + 1000);
        assert_eq!(seconds(200, &[("last-modified", &future)]), 0);
        assert_eq!(seconds(200, &[("last-modified", "yesterday")]), 0);
    }

    #[test]
    fn default_ttl_replaces_the_heuristic_only() {
        let ten_hours_ago = date(T0 - 36_000);
        let heuristic = [("last-modified", ten_hours_ago.as_str())];
        assert_eq!(
            lifetime(200, &heuristic, Some(60)),
            Lifetime {
                seconds: 60,
                source: LifetimeSource::DefaultTtl
            }
        );
        assert_eq!(lifetime(200, &[], Some(60)).seconds, 60);
        assert_eq!(
            lifetime(200, &[("cache-control", "max-age=5")], Some(60)).seconds,
            5
        );
        assert_eq!(lifetime(500, &[], Some(60)).source, LifetimeSource::None);
        assert_eq!(
            lifetime(500, &[("cache-control", "public")], Some(60)).seconds,
            60
        );
    }

    #[test]
    fn surrogate_max_age_beats_everything() {
        let pairs = [
            ("surrogate-control", "max-age=600"),
            ("cache-control", "no-cache, max-age=0, s-maxage=0"),
            ("expires", "0"),
        ];
        assert_eq!(seconds(200, &pairs), 600);
        // An invalid surrogate max-age leaves Cache-Control in charge.
        let invalid = [
            ("surrogate-control", "max-age=later"),
            ("cache-control", "max-age=7"),
        ];
        assert_eq!(seconds(200, &invalid), 7);
    }

    #[test]
    fn a_targeted_field_is_the_only_explicit_source() {
        let in_hour = date(T0 + 3600);
        let week_ago = date(T0 - 7 * DAY);
        let others = [
            ("surrogate-control", "max-age=5"),
            ("cache-control", "max-age=20, s-maxage=10"),
            ("expires", in_hour.as_str()),
            ("last-modified", week_ago.as_str()),
        ];
        let with = |cdn: &'static str| {
            let mut pairs = others.to_vec();
            pairs.push(("cdn-cache-control", cdn));
            lifetime(200, &pairs, None)
        };
        let expect = |seconds, source| Lifetime { seconds, source };
        assert_eq!(
            with("max-age=30, s-maxage=40"),
            expect(40, LifetimeSource::SMaxAge)
        );
        assert_eq!(with("max-age=30"), expect(30, LifetimeSource::MaxAge));
        assert_eq!(with("max-age=\"30\""), expect(0, LifetimeSource::MaxAge));
        // No explicit freshness in it: Expires is ignored (RFC 9213 §2.2),
        // and the heuristic applies as it would without Cache-Control.
        assert_eq!(
            with("public"),
            expect(7 * DAY / 10, LifetimeSource::Heuristic)
        );
        assert_eq!(
            lifetime(200, &[("cdn-cache-control", "none")], Some(60)),
            expect(60, LifetimeSource::DefaultTtl)
        );
        // `public` opens the heuristic to other statuses, as in Cache-Control.
        let public = [
            ("cdn-cache-control", "public"),
            ("cache-control", "max-age=5"),
        ];
        assert_eq!(lifetime(500, &public, Some(60)).seconds, 60);
    }

    #[test]
    fn age_with_response_delay_and_resident_time() {
        // Sent at T0, received 3 s later with Age 10 and a Date 5 s before
        // receipt; looked at 100 s after receipt.
        let sent = date(T0 - 2);
        let response = stored(200, &[("date", &sent), ("age", "10")], T0, T0 + 3);
        let age = age_at(&response, at(T0 + 103));
        assert_eq!(
            age,
            AgeCalculation {
                apparent_age: 5,
                response_delay: 3,
                corrected_age_value: 13,
                corrected_initial_age: 13,
                resident_time: 100,
                current_age: 113,
            }
        );
        // A Date far in the past (a slow clock or an old cache) dominates.
        let old = date(T0 - 1000);
        let aged = stored(200, &[("date", &old), ("age", "1")], T0, T0);
        assert_eq!(age_at(&aged, at(T0)).current_age, 1000);
    }

    #[test]
    fn clocks_going_backwards_count_as_no_time() {
        let future_date = date(T0 + 50);
        let response = stored(200, &[("date", &future_date)], T0 + 10, T0);
        let age = age_at(&response, at(T0 - 100));
        assert_eq!(age.apparent_age, 0);
        assert_eq!(age.response_delay, 0);
        assert_eq!(age.resident_time, 0);
        assert_eq!(age.current_age, 0);
    }

    #[test]
    fn garbage_and_huge_age_values() {
        let value = |age: &[u8]| {
            let mut map = HeaderMap::new();
            map.append(AGE, HeaderValue::from_bytes(age).unwrap());
            age_value(&map)
        };
        assert_eq!(value(b"42"), 42);
        assert_eq!(value(b" 42 "), 42);
        assert_eq!(value(b"42, 7"), 42);
        assert_eq!(value(b"99999999999999999999"), DELTA_SECONDS_MAX);
        for garbage in [&b""[..], b"-5", b"4.2", b"abc", b"\xff\xfe", b", 7"] {
            assert_eq!(value(garbage), 0, "{garbage:?}");
        }
        assert_eq!(age_value(&HeaderMap::new()), 0);

        let huge = stored(200, &[("age", "99999999999999999999")], T0, T0);
        let age = age_at(&huge, at(T0 + 1_000_000_000_000));
        assert!(age.current_age >= DELTA_SECONDS_MAX);
        assert_eq!(age_header_value(age.current_age), "2147483648");
        assert_eq!(age_header_value(u64::MAX), "2147483648");
        assert_eq!(age_header_value(17), "17");
    }
}
