#![allow(clippy::unwrap_used)]

use super::*;
use crate::cache::syntax::DELTA_SECONDS_MAX;
use crate::cache::test_support::{T0, at, headers, stored};
use http::header::SET_COOKIE;

/// Evaluates a response received at T0 (request sent at T0) at `T0 + age`.
fn evaluate_at(request: &[(&str, &str)], response: &[(&str, &str)], age: u64) -> Evaluation {
    let request = RequestCacheControl::from_headers(&headers(request));
    evaluate(&request, &stored(200, response, T0, T0), at(T0 + age), None)
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
    let ttl = Some(Duration::from_secs(30));
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
    let evaluation = evaluate(&RequestCacheControl::default(), &response, at(T0 + 7), None);
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
        None,
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
    let evaluation = evaluate(&request, &response, far_future, Some(Duration::MAX));
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
