#![allow(clippy::unwrap_used)]

use super::*;
use crate::cache::directives::RequestCacheControl;
use crate::cache::effective::Defaults;
use crate::cache::evaluate::{Decision, evaluate};
use crate::cache::test_support::{T0, at, date, headers, stored};
use http::HeaderValue;

const LAST_MODIFIED_AT: u64 = T0 - 86_400;

fn updated(freshened: Freshened) -> (StoredResponse, Result<(), NotStorable>) {
    match freshened {
        Freshened::Updated { response, keep } => (*response, keep),
        Freshened::Refetch => panic!("expected the 304 to apply"),
    }
}

fn with_etag(etag: &str) -> StoredResponse {
    stored(
        200,
        &[("etag", etag), ("cache-control", "max-age=60")],
        T0 - 1,
        T0,
    )
}

fn applies(stored: &StoredResponse, not_modified: &[(&str, &str)]) -> bool {
    match freshen(stored, &headers(not_modified), at(T0 + 99), at(T0 + 100)) {
        Freshened::Updated { .. } => true,
        Freshened::Refetch => false,
    }
}

#[test]
fn conditional_request_headers() {
    let lm = date(LAST_MODIFIED_AT);
    let both = stored(200, &[("etag", "W/\"v1\""), ("last-modified", &lm)], T0, T0);
    let conditions = revalidation_headers(&both);
    assert_eq!(conditions[IF_NONE_MATCH], "W/\"v1\"");
    assert_eq!(conditions[IF_MODIFIED_SINCE], lm.as_str());
    assert_eq!(conditions.len(), 2);

    let strong = revalidation_headers(&with_etag("\"v1\""));
    assert_eq!(strong[IF_NONE_MATCH], "\"v1\"");
    assert!(!strong.contains_key(IF_MODIFIED_SINCE));

    let dated = revalidation_headers(&stored(200, &[("last-modified", &lm)], T0, T0));
    assert_eq!(dated[IF_MODIFIED_SINCE], lm.as_str());
    assert!(!dated.contains_key(IF_NONE_MATCH));

    assert!(revalidation_headers(&stored(200, &[], T0, T0)).is_empty());
    // Validators that are not valid syntax are not sent.
    let garbage = stored(
        200,
        &[("etag", "v1"), ("last-modified", "last tuesday")],
        T0,
        T0,
    );
    assert!(revalidation_headers(&garbage).is_empty());
}

#[test]
fn strong_etags_need_a_strong_match() {
    let strong = with_etag("\"v1\"");
    assert!(applies(&strong, &[("etag", "\"v1\"")]));
    assert!(!applies(&strong, &[("etag", "\"v2\"")]));
    let weak = with_etag("W/\"v1\"");
    assert!(!applies(&weak, &[("etag", "\"v1\"")]));
}

#[test]
fn weak_etags_use_weak_comparison() {
    assert!(applies(&with_etag("W/\"v1\""), &[("etag", "W/\"v1\"")]));
    assert!(applies(&with_etag("\"v1\""), &[("etag", "W/\"v1\"")]));
    assert!(!applies(&with_etag("W/\"v1\""), &[("etag", "W/\"v2\"")]));
}

#[test]
fn an_etag_the_stored_response_lacks_or_cannot_be_parsed_means_refetch() {
    let no_etag = stored(200, &[("cache-control", "max-age=60")], T0, T0);
    assert!(!applies(&no_etag, &[("etag", "\"v1\"")]));
    assert!(!applies(&with_etag("\"v1\""), &[("etag", "v1")]));
    assert!(!applies(&with_etag("\"v1\""), &[("etag", "\"v1")]));
}

#[test]
fn last_modified_rules_without_an_etag() {
    let lm = date(LAST_MODIFIED_AT);
    let dated = stored(200, &[("last-modified", &lm)], T0, T0);
    assert!(applies(&dated, &[("last-modified", &lm)]));
    assert!(!applies(
        &dated,
        &[("last-modified", &date(LAST_MODIFIED_AT + 1))]
    ));
    assert!(!applies(&dated, &[("last-modified", "garbage")]));
    // The same instant in another format still matches.
    let mut rfc850 = HeaderMap::new();
    rfc850.insert(
        LAST_MODIFIED,
        HeaderValue::from_static("Tuesday, 31-Dec-24 00:00:00 GMT"),
    );
    assert!(matches!(
        freshen(&dated, &rfc850, at(T0), at(T0)),
        Freshened::Updated { .. }
    ));
    // An ETag in the 304 takes precedence over Last-Modified.
    let both = stored(200, &[("etag", "\"a\""), ("last-modified", &lm)], T0, T0);
    assert!(!applies(
        &both,
        &[("etag", "\"b\""), ("last-modified", &lm)]
    ));
}

#[test]
fn a_304_without_validators_applies_to_the_response_we_revalidated() {
    assert!(applies(&with_etag("\"v1\""), &[]));
    assert!(applies(
        &stored(200, &[], T0, T0),
        &[("cache-control", "max-age=5")]
    ));
}

#[test]
fn the_304_fields_replace_the_stored_ones_with_the_rfc_exceptions() {
    let old = stored(
        200,
        &[
            ("etag", "\"v1\""),
            ("cache-control", "max-age=60"),
            ("content-type", "text/html"),
            ("content-length", "1234"),
            ("content-encoding", "gzip"),
            ("vary", "accept-encoding"),
            ("x-multi", "old-1"),
            ("x-multi", "old-2"),
            ("x-untouched", "kept"),
            ("age", "30"),
            ("date", &date(T0 - 30)),
        ],
        T0 - 31,
        T0,
    );
    let not_modified = headers(&[
        ("etag", "\"v1\""),
        ("cache-control", "max-age=600, public"),
        ("content-length", "0"),
        ("content-encoding", "br"),
        ("vary", "accept-language"),
        ("x-multi", "new-1"),
        ("x-multi", "new-2"),
        ("x-new", "added"),
        ("connection", "x-hop"),
        ("x-hop", "dropped"),
        ("keep-alive", "timeout=5"),
        ("date", &date(T0 + 995)),
    ]);
    let (response, keep) = updated(freshen(&old, &not_modified, at(T0 + 990), at(T0 + 1000)));
    assert_eq!(keep, Ok(()));
    let h = &response.headers;
    assert_eq!(h["cache-control"], "max-age=600, public");
    assert_eq!(h["content-type"], "text/html");
    assert_eq!(h["content-length"], "1234");
    assert_eq!(h["content-encoding"], "gzip");
    assert_eq!(h["vary"], "accept-encoding");
    let multi: Vec<_> = h.get_all("x-multi").iter().collect();
    assert_eq!(multi, ["new-1", "new-2"]);
    assert_eq!(h["x-untouched"], "kept");
    assert_eq!(h["x-new"], "added");
    assert!(!h.contains_key("x-hop") && !h.contains_key("connection"));
    assert!(!h.contains_key("keep-alive"));
    assert!(
        !h.contains_key(AGE),
        "the old Age described the old message"
    );
    assert_eq!(h[DATE], date(T0 + 995).as_str());
    assert_eq!(response.request_time, T0 + 990);
    assert_eq!(response.response_time, T0 + 1000);
    assert_eq!(response.vary, old.vary);
    assert_eq!(response.status, 200);
}

#[test]
fn freshening_makes_a_stale_response_fresh_again() {
    let old = stored(
        200,
        &[
            ("etag", "\"v1\""),
            ("cache-control", "max-age=60"),
            ("age", "50"),
        ],
        T0,
        T0,
    );
    let request = RequestCacheControl::default();
    let later = at(T0 + 3600);
    assert!(!evaluate(&request, &old, later, Defaults::default()).fresh);
    // A 304 without Date and Age: both describe the new message now.
    let (response, _) = updated(freshen(&old, &headers(&[("etag", "\"v1\"")]), later, later));
    assert_eq!(response.headers[DATE], date(T0 + 3600).as_str());
    assert!(!response.headers.contains_key(AGE));
    let evaluation = evaluate(&request, &response, later, Defaults::default());
    assert_eq!(evaluation.decision, Decision::Serve);
    assert_eq!(evaluation.current_age, 0);
    assert_eq!(evaluation.ttl, 60);
    // An Age in the 304 is taken.
    let (aged, _) = updated(freshen(&old, &headers(&[("age", "10")]), later, later));
    assert_eq!(aged.headers[AGE], "10");
    assert_eq!(
        evaluate(&request, &aged, later, Defaults::default()).current_age,
        10
    );
}

#[test]
fn surrogate_control_in_a_304_replaces_the_stored_one() {
    let old = stored(
        200,
        &[("etag", "\"v1\""), ("surrogate-control", "max-age=60")],
        T0,
        T0,
    );
    let (kept, _) = updated(freshen(&old, &headers(&[]), at(T0), at(T0)));
    assert_eq!(kept.control().surrogate.max_age, Some(60));
    let (replaced, _) = updated(freshen(
        &old,
        &headers(&[("surrogate-control", "max-age=900")]),
        at(T0),
        at(T0),
    ));
    assert_eq!(replaced.control().surrogate.max_age, Some(900));
    assert!(!replaced.headers.contains_key(SURROGATE_CONTROL));
}

#[test]
fn a_304_can_withdraw_permission_to_store() {
    let old = with_etag("\"v1\"");
    let keep = |pairs: &[(&str, &str)]| updated(freshen(&old, &headers(pairs), at(T0), at(T0))).1;
    assert_eq!(
        keep(&[("cache-control", "no-store")]),
        Err(NotStorable::NoStore)
    );
    assert_eq!(
        keep(&[("cache-control", "private")]),
        Err(NotStorable::Private)
    );
    assert_eq!(
        keep(&[("set-cookie", "session=bob")]),
        Err(NotStorable::SetCookie)
    );
    assert_eq!(
        keep(&[
            ("set-cookie", "a=b"),
            ("cache-control", "public, max-age=5")
        ]),
        Ok(())
    );
    let (response, keep) = updated(freshen(
        &old,
        &headers(&[
            ("cache-control", "private=x-user, max-age=60"),
            ("x-user", "bob"),
        ]),
        at(T0),
        at(T0),
    ));
    assert_eq!(keep, Ok(()));
    assert!(!response.headers.contains_key("x-user"));
}
