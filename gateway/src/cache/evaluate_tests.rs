#![allow(clippy::unwrap_used)]

use super::*;
use crate::cache::syntax::DELTA_SECONDS_MAX;
use crate::cache::test_support::{T0, at, headers, stored};
use http::header::SET_COOKIE;
use std::time::Duration;

/// Evaluates a response received at T0 (request sent at T0) at `T0 + age`.
fn evaluate_at(request: &[(&str, &str)], response: &[(&str, &str)], age: u64) -> Evaluation {
    let request = RequestCacheControl::from_headers(&headers(request));
    evaluate(
        &request,
        &stored(200, response, T0, T0),
        at(T0 + age),
        Defaults::default(),
    )
}

fn decision(request: &[(&str, &str)], response: &[(&str, &str)], age: u64) -> Decision {
    evaluate_at(request, response, age).decision
}

const MAX_AGE_60: (&str, &str) = ("cache-control", "max-age=60");

fn revalidate(reason: RevalidateReason, serve_stale_on_error: bool) -> Decision {
    Decision::Revalidate {
        reason,
        serve_stale_on_error,
    }
}

fn stale(serve_stale_on_error: bool) -> Decision {
    revalidate(RevalidateReason::Stale, serve_stale_on_error)
}

fn cc(value: &str) -> [(&str, &str); 1] {
    [("cache-control", value)]
}

#[test]
fn fresh_until_the_age_reaches_the_lifetime() {
    let fresh = evaluate_at(&[], &[MAX_AGE_60], 59);
    assert_eq!(fresh.decision, Decision::Serve);
    assert!(fresh.fresh);
    assert_eq!(fresh.current_age, 59);
    assert_eq!(fresh.ttl, 1);
    // §4.2: fresh means lifetime > age, so age == lifetime is stale.
    let stale_now = evaluate_at(&[], &[MAX_AGE_60], 60);
    assert!(!stale_now.fresh);
    assert_eq!(stale_now.decision, stale(false));
    assert_eq!(stale_now.ttl, 0);
    assert_eq!(evaluate_at(&[], &[MAX_AGE_60], 100).ttl, -40);
}

#[test]
fn default_ttl_feeds_the_decision() {
    let request = RequestCacheControl::default();
    let response = stored(200, &[], T0, T0);
    let ttl = Defaults {
        default_ttl: Some(Duration::from_secs(30)),
        stale_if_error: None,
    };
    assert_eq!(
        evaluate(&request, &response, at(T0 + 29), ttl).decision,
        Decision::Serve
    );
    assert_eq!(
        evaluate(&request, &response, at(T0 + 30), ttl).decision,
        stale(false)
    );
}

#[test]
fn request_no_cache_and_pragma() {
    let forced = revalidate(RevalidateReason::Request, true);
    assert_eq!(decision(&cc("no-cache"), &[MAX_AGE_60], 1), forced);
    assert_eq!(
        decision(&[("pragma", "no-cache")], &[MAX_AGE_60], 1),
        forced
    );
    assert_eq!(
        decision(
            &[("pragma", "no-cache"), ("cache-control", "max-stale")],
            &[MAX_AGE_60],
            1
        ),
        Decision::Serve
    );
}

#[test]
fn request_max_age() {
    assert_eq!(
        decision(&cc("max-age=30"), &[MAX_AGE_60], 30),
        Decision::Serve
    );
    assert_eq!(
        decision(&cc("max-age=29"), &[MAX_AGE_60], 30),
        revalidate(RevalidateReason::Request, true)
    );
    assert_eq!(
        decision(&cc("max-age=oops"), &[MAX_AGE_60], 1),
        revalidate(RevalidateReason::Request, true)
    );
}

#[test]
fn request_min_fresh() {
    assert_eq!(
        decision(&cc("min-fresh=30"), &[MAX_AGE_60], 30),
        Decision::Serve
    );
    assert_eq!(
        decision(&cc("min-fresh=31"), &[MAX_AGE_60], 30),
        revalidate(RevalidateReason::Request, true)
    );
    assert_eq!(
        decision(&cc("min-fresh=99999999999999999999"), &[MAX_AGE_60], 0),
        revalidate(RevalidateReason::Request, true)
    );
}

#[test]
fn request_max_stale() {
    // Stale by 10 seconds.
    assert_eq!(
        decision(&cc("max-stale=10"), &[MAX_AGE_60], 70),
        Decision::Serve
    );
    assert_eq!(
        decision(&cc("max-stale=9"), &[MAX_AGE_60], 70),
        stale(false)
    );
    assert_eq!(
        decision(&cc("max-stale"), &[MAX_AGE_60], 1_000_000),
        Decision::Serve
    );
    // A stale response that must not be served stale.
    for response in [
        "max-age=60, must-revalidate",
        "max-age=60, proxy-revalidate",
        "s-maxage=60",
    ] {
        assert_eq!(
            decision(&cc("max-stale"), &cc(response), 70),
            stale(false),
            "{response}"
        );
    }
    // Request max-age still refuses an old response.
    assert_eq!(
        decision(&cc("max-stale, max-age=5"), &[MAX_AGE_60], 70),
        stale(true)
    );
}

#[test]
fn response_no_cache() {
    let no_cache = revalidate(RevalidateReason::NoCache, false);
    assert_eq!(decision(&[], &cc("no-cache, max-age=60"), 1), no_cache);
    assert_eq!(
        decision(&cc("max-stale"), &cc("no-cache, max-age=60"), 100),
        no_cache
    );
    assert_eq!(
        decision(&[], &cc("no-cache, max-age=60, stale-if-error=999"), 100),
        no_cache
    );
}

#[test]
fn qualified_no_cache_strips_fields_without_revalidation() {
    let response = stored(
        200,
        &[
            (
                "cache-control",
                "no-cache=\"set-cookie, x-token\", public, max-age=60",
            ),
            ("set-cookie", "a=b"),
            ("x-token", "t"),
            ("x-kept", "k"),
            ("age", "3"),
        ],
        T0,
        T0,
    );
    let evaluation = evaluate(
        &RequestCacheControl::default(),
        &response,
        at(T0 + 7),
        Defaults::default(),
    );
    assert_eq!(evaluation.decision, Decision::Serve);
    assert_eq!(
        evaluation.strip_fields,
        [SET_COOKIE, HeaderName::from_static("x-token")]
    );
    let sent = serving_headers(&response, evaluation.current_age, &evaluation.strip_fields);
    assert!(!sent.contains_key(SET_COOKIE) && !sent.contains_key("x-token"));
    assert_eq!(sent["x-kept"], "k");
    assert_eq!(sent[AGE], "10");
    assert_eq!(sent.get_all(AGE).iter().count(), 1);
}

#[test]
fn stale_while_revalidate_window() {
    let swr = cc("max-age=60, stale-while-revalidate=30");
    assert_eq!(decision(&[], &swr, 59), Decision::Serve);
    assert_eq!(decision(&[], &swr, 60), Decision::ServeStaleWhileRevalidate);
    assert_eq!(decision(&[], &swr, 90), Decision::ServeStaleWhileRevalidate);
    assert_eq!(decision(&[], &swr, 91), stale(false));
    // Never with must-revalidate, proxy-revalidate or s-maxage.
    for response in [
        "max-age=60, stale-while-revalidate=30, must-revalidate",
        "max-age=60, stale-while-revalidate=30, proxy-revalidate",
        "s-maxage=60, stale-while-revalidate=30",
    ] {
        assert_eq!(decision(&[], &cc(response), 70), stale(false), "{response}");
    }
    // The request's refusal comes first.
    assert_eq!(decision(&cc("no-cache"), &swr, 70), stale(false));
    // max-stale and SWR together: serve, and refresh in the background.
    assert_eq!(
        decision(&cc("max-stale"), &swr, 70),
        Decision::ServeStaleWhileRevalidate
    );
    assert_eq!(decision(&cc("max-stale"), &swr, 200), Decision::Serve);
}

#[test]
fn stale_if_error_windows() {
    let sie = cc("max-age=60, stale-if-error=100");
    assert_eq!(decision(&[], &sie, 160), stale(true));
    assert_eq!(decision(&[], &sie, 161), stale(false));
    // From the request, and from its max-stale; the largest window wins.
    assert_eq!(decision(&cc("stale-if-error=200"), &sie, 260), stale(true));
    assert_eq!(decision(&cc("stale-if-error=200"), &sie, 261), stale(false));
    assert_eq!(
        decision(&cc("stale-if-error=5"), &[MAX_AGE_60], 65),
        stale(true)
    );
    assert_eq!(
        decision(&cc("max-stale=5, max-age=0"), &[MAX_AGE_60], 65),
        stale(true)
    );
    // Never with must-revalidate, proxy-revalidate or s-maxage.
    for response in [
        "max-age=60, stale-if-error=100, must-revalidate",
        "max-age=60, stale-if-error=100, proxy-revalidate",
        "s-maxage=60, stale-if-error=100",
    ] {
        assert_eq!(decision(&[], &cc(response), 70), stale(false), "{response}");
    }
}

#[test]
fn immutable_ignores_reloads_while_fresh() {
    let immutable = cc("max-age=60, immutable");
    assert_eq!(decision(&cc("no-cache"), &immutable, 10), Decision::Serve);
    assert_eq!(decision(&cc("max-age=0"), &immutable, 10), Decision::Serve);
    assert_eq!(
        decision(&cc("min-fresh=100"), &immutable, 10),
        revalidate(RevalidateReason::Request, true)
    );
    assert_eq!(decision(&cc("no-cache"), &immutable, 60), stale(false));
}

#[test]
fn surrogate_control_overrides_cache_control_revalidation() {
    let response = [
        ("surrogate-control", "max-age=600+30"),
        ("cache-control", "no-cache, must-revalidate, s-maxage=0"),
    ];
    let fresh = evaluate_at(&[], &response, 100);
    assert_eq!(fresh.decision, Decision::Serve);
    assert_eq!(fresh.ttl, 500);
    assert_eq!(
        decision(&cc("max-stale=10"), &response, 605),
        Decision::Serve
    );
    assert_eq!(decision(&[], &response, 630), stale(true));
    assert_eq!(decision(&[], &response, 631), stale(false));
    let swr = [
        ("surrogate-control", "max-age=60, stale-while-revalidate=10"),
        ("cache-control", "max-age=0, stale-while-revalidate=1000"),
    ];
    assert_eq!(decision(&[], &swr, 70), Decision::ServeStaleWhileRevalidate);
    assert_eq!(decision(&[], &swr, 71), stale(false));
}

#[test]
fn only_if_cached_is_exposed() {
    let request = RequestCacheControl::from_headers(&headers(&cc("only-if-cached")));
    assert!(request.only_if_cached);
    // The caller answers 504 when the decision needs the origin.
    let evaluation = evaluate(
        &request,
        &stored(200, &[MAX_AGE_60], T0, T0),
        at(T0 + 100),
        Defaults::default(),
    );
    assert!(matches!(evaluation.decision, Decision::Revalidate { .. }));
}

#[test]
fn overflowing_values_never_panic() {
    let huge = evaluate_at(&[], &cc("max-age=99999999999999999999"), 1_000_000);
    assert_eq!(huge.lifetime.seconds, DELTA_SECONDS_MAX);
    assert_eq!(huge.decision, Decision::Serve);

    let old = evaluate_at(&[], &[MAX_AGE_60, ("age", "99999999999999999999")], 0);
    assert_eq!(old.current_age, DELTA_SECONDS_MAX);
    assert_eq!(old.decision, stale(false));
    assert_eq!(old.ttl, 60 - 2_147_483_648);

    let request = RequestCacheControl::from_headers(&headers(&cc(
        "max-stale=99999999999999999999, stale-if-error=99999999999999999999",
    )));
    let far_future = at(T0 + 1_000_000_000_000);
    let response = stored(200, &[MAX_AGE_60, ("age", "99999999999999999999")], T0, T0);
    let evaluation = evaluate(
        &request,
        &response,
        far_future,
        Defaults {
            default_ttl: Some(Duration::MAX),
            stale_if_error: Some(Duration::MAX),
        },
    );
    assert!(evaluation.ttl < 0);
    assert!(matches!(evaluation.decision, Decision::Revalidate { .. }));
    let header = age_header_value(evaluation.current_age);
    assert_eq!(header, "2147483648");
}

#[test]
fn reasons_map_to_cache_status() {
    assert_eq!(
        RevalidateReason::Stale.forward_reason(),
        ForwardReason::Stale
    );
    assert_eq!(
        RevalidateReason::NoCache.forward_reason(),
        ForwardReason::Stale
    );
    assert_eq!(
        RevalidateReason::Request.forward_reason(),
        ForwardReason::Request
    );
}

/// RFC 9213: the behaviours the cache-tests `cdn-cache-control` suite checks,
/// as evaluations of the stored response.
mod targeted {
    use super::*;
    use crate::cache::test_support::date;

    const CDN_LONG: (&str, &str) = ("cdn-cache-control", "max-age=10000");

    #[test]
    fn cdn_max_age_overrides_cache_control_and_expires() {
        // Fresh despite `Cache-Control: no-store` (which storable also ignores).
        let nostore = [("cache-control", "no-store"), CDN_LONG];
        assert_eq!(decision(&[], &nostore, 5000), Decision::Serve);
        // Long CDN beats short CC, short CDN beats long CC.
        let long = [
            ("cache-control", "max-age=1"),
            ("cdn-cache-control", "max-age=3600"),
        ];
        assert_eq!(decision(&[], &long, 10), Decision::Serve);
        let short = [
            ("cache-control", "max-age=3600"),
            ("cdn-cache-control", "max-age=1"),
        ];
        assert_eq!(decision(&[], &short, 1), stale(false));
        // `max-age=0` is stale even with a future Expires; a past or invalid
        // Expires does not shorten a positive one.
        let future = date(T0 + 10_000);
        let zero = [("cdn-cache-control", "max-age=0"), ("expires", &future)];
        assert_eq!(decision(&[], &zero, 0), stale(false));
        let past = date(T0 - 10_000);
        for expires in [past.as_str(), "0"] {
            let response = [("cdn-cache-control", "max-age=3600"), ("expires", expires)];
            assert_eq!(decision(&[], &response, 10), Decision::Serve, "{expires}");
        }
        // Huge values saturate instead of failing.
        let huge = [("cdn-cache-control", "max-age=99999999999")];
        assert_eq!(decision(&[], &huge, 1_000_000), Decision::Serve);
    }

    #[test]
    fn an_age_beyond_the_cdn_max_age_is_stale() {
        let response = [("cdn-cache-control", "max-age=3600"), ("age", "7200")];
        let evaluation = evaluate_at(&[], &response, 0);
        assert!(!evaluation.fresh);
        assert_eq!(evaluation.decision, stale(false));
    }

    #[test]
    fn cdn_no_cache_and_must_revalidate_apply_over_cache_control() {
        let future = date(T0 + 10_000);
        let no_cache = [
            ("cdn-cache-control", "no-cache"),
            ("cache-control", "max-age=10000"),
            ("expires", &future),
        ];
        assert_eq!(
            decision(&[], &no_cache, 1),
            revalidate(RevalidateReason::NoCache, false)
        );
        let strict = [
            ("cdn-cache-control", "max-age=60, must-revalidate"),
            (
                "cache-control",
                "max-age=60, stale-while-revalidate=100, stale-if-error=100",
            ),
        ];
        assert_eq!(decision(&cc("max-stale"), &strict, 70), stale(false));
        // Windows come from the targeted field, not Cache-Control.
        let windows = [
            (
                "cdn-cache-control",
                "max-age=60, stale-while-revalidate=10, stale-if-error=20",
            ),
            (
                "cache-control",
                "max-age=60, stale-while-revalidate=1000, stale-if-error=1000",
            ),
        ];
        assert_eq!(
            decision(&[], &windows, 70),
            Decision::ServeStaleWhileRevalidate
        );
        assert_eq!(decision(&[], &windows, 80), stale(true));
        assert_eq!(decision(&[], &windows, 81), stale(false));
    }

    #[test]
    fn invalid_fields_leave_cache_control_in_charge() {
        for value in [
            "max-age=10000, &&&&&",
            "max-age =100",
            "max-age= 100",
            "MaX-aGe=3600",
            "",
        ] {
            let response = [("cache-control", "max-age=1"), ("cdn-cache-control", value)];
            assert_eq!(decision(&[], &response, 0), Decision::Serve, "{value:?}");
            assert_eq!(decision(&[], &response, 1), stale(false), "{value:?}");
        }
    }

    #[test]
    fn wrongly_typed_max_age_is_not_used() {
        // The field is valid, so Cache-Control is still ignored; its
        // max-age is present but unusable: stale.
        let response = [
            ("cdn-cache-control", "max-age=\"10000\""),
            ("cache-control", "max-age=10000"),
        ];
        let evaluation = evaluate_at(&[], &response, 0);
        assert_eq!(evaluation.lifetime.seconds, 0);
        assert_eq!(evaluation.decision, stale(false));
        // Nor does the heuristic or the default TTL step in.
        let stored = stored(200, &[("cdn-cache-control", "max-age=1.5")], T0, T0);
        let defaults = Defaults {
            default_ttl: Some(Duration::from_secs(600)),
            stale_if_error: None,
        };
        let evaluation = evaluate(&RequestCacheControl::default(), &stored, at(T0), defaults);
        assert_eq!(evaluation.decision, stale(false));
    }

    #[test]
    fn extension_directives_are_ignored() {
        let response = [("cdn-cache-control", "foobar, max-age=3600, ext=(1 2);p")];
        assert_eq!(decision(&[], &response, 3599), Decision::Serve);
    }

    #[test]
    fn our_field_beats_cdn_cache_control() {
        let response = [
            ("cdn-cache-control", "max-age=3600"),
            ("fleetcache-cache-control", "max-age=10"),
        ];
        assert_eq!(decision(&[], &response, 9), Decision::Serve);
        assert_eq!(decision(&[], &response, 10), stale(false));
        let invalid_ours = [
            ("cdn-cache-control", "max-age=3600"),
            ("fleetcache-cache-control", "max-age=10,"),
        ];
        assert_eq!(decision(&[], &invalid_ours, 100), Decision::Serve);
    }

    #[test]
    fn surrogate_control_is_ignored_under_a_targeted_field() {
        let response = [
            ("surrogate-control", "max-age=3600"),
            ("cdn-cache-control", "max-age=10"),
        ];
        assert_eq!(decision(&[], &response, 10), stale(false));
    }
}

/// The operator's stale-if-error window (RFC 9111 §4.2.4, §4.3.3).
mod operator_stale_if_error {
    use super::*;

    fn with_default(
        request: &[(&str, &str)],
        response: &[(&str, &str)],
        age: u64,
        window: u64,
    ) -> Decision {
        let request = RequestCacheControl::from_headers(&headers(request));
        let defaults = Defaults {
            default_ttl: None,
            stale_if_error: Some(Duration::from_secs(window)),
        };
        evaluate(
            &request,
            &stored(200, response, T0, T0),
            at(T0 + age),
            defaults,
        )
        .decision
    }

    #[test]
    fn boundaries() {
        // Stale by exactly the window: still allowed; one second more: not.
        assert_eq!(with_default(&[], &[MAX_AGE_60], 160, 100), stale(true));
        assert_eq!(with_default(&[], &[MAX_AGE_60], 161, 100), stale(false));
        // A zero window allows only the instant of expiry.
        assert_eq!(with_default(&[], &[MAX_AGE_60], 60, 0), stale(true));
        assert_eq!(with_default(&[], &[MAX_AGE_60], 61, 0), stale(false));
        // It only widens the error path: without an error, revalidate.
        assert!(matches!(
            with_default(&[], &[MAX_AGE_60], 61, 1000),
            Decision::Revalidate {
                reason: RevalidateReason::Stale,
                ..
            }
        ));
        // A fresh response is servable on error anyway.
        assert_eq!(
            with_default(&cc("no-cache"), &[MAX_AGE_60], 1, 0),
            revalidate(RevalidateReason::Request, true)
        );
    }

    #[test]
    fn the_largest_window_wins() {
        let response = cc("max-age=60, stale-if-error=200");
        assert_eq!(with_default(&[], &response, 260, 100), stale(true));
        assert_eq!(with_default(&[], &response, 261, 100), stale(false));
        assert_eq!(with_default(&[], &response, 360, 300), stale(true));
        assert_eq!(with_default(&[], &response, 361, 300), stale(false));
        assert_eq!(
            with_default(&cc("stale-if-error=500"), &response, 560, 300),
            stale(true)
        );
        assert_eq!(
            with_default(&cc("max-stale=5, max-age=0"), &[MAX_AGE_60], 65, 1),
            stale(true)
        );
        // The targeted field's window counts like Cache-Control's.
        let cdn = [("cdn-cache-control", "max-age=60, stale-if-error=400")];
        assert_eq!(with_default(&[], &cdn, 460, 100), stale(true));
    }

    #[test]
    fn never_lifts_revalidation_requirements() {
        for response in [
            "max-age=60, must-revalidate",
            "max-age=60, proxy-revalidate",
            "s-maxage=60",
            "s-maxage=invalid",
        ] {
            assert_eq!(
                with_default(&[], &cc(response), 70, 1000),
                stale(false),
                "{response}"
            );
        }
        assert_eq!(
            with_default(&[], &cc("no-cache, max-age=60"), 70, 1000),
            revalidate(RevalidateReason::NoCache, false)
        );
        assert_eq!(
            with_default(&[], &cc("no-cache, max-age=60"), 1, 1000),
            revalidate(RevalidateReason::NoCache, false)
        );
        let cdn = [("cdn-cache-control", "max-age=60, must-revalidate")];
        assert_eq!(with_default(&[], &cdn, 70, 1000), stale(false));
        let cdn = [("cdn-cache-control", "no-cache"), MAX_AGE_60];
        assert_eq!(
            with_default(&[], &cdn, 70, 1000),
            revalidate(RevalidateReason::NoCache, false)
        );
    }
}
