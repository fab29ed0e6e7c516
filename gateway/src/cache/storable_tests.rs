#![allow(clippy::unwrap_used)]

use super::*;
use crate::cache::test_support::{T0, at, date, headers};
use std::time::Duration;

const ALL_REASONS: [NotStorable; 11] = [
    NotStorable::Method,
    NotStorable::Status,
    NotStorable::RequestNoStore,
    NotStorable::NoStore,
    NotStorable::SurrogateNoStore,
    NotStorable::MustUnderstand,
    NotStorable::Private,
    NotStorable::Authorization,
    NotStorable::VaryStar,
    NotStorable::SetCookie,
    NotStorable::NoFreshness,
];

fn decide_with(
    method: &Method,
    request: &[(&str, &str)],
    status: u16,
    response: &[(&str, &str)],
    default_ttl: Option<u64>,
) -> Result<StoredResponse, NotStorable> {
    let request_headers = headers(request);
    let response_headers = headers(response);
    storable(
        &Exchange {
            method,
            request_headers: &request_headers,
            status,
            response_headers: &response_headers,
            request_time: at(T0 - 1),
            response_time: at(T0),
        },
        Defaults {
            default_ttl: default_ttl.map(Duration::from_secs),
            stale_if_error: None,
        },
    )
}

fn decide(
    request: &[(&str, &str)],
    status: u16,
    response: &[(&str, &str)],
) -> Result<StoredResponse, NotStorable> {
    decide_with(&Method::GET, request, status, response, None)
}

fn reason(request: &[(&str, &str)], status: u16, response: &[(&str, &str)]) -> NotStorable {
    decide(request, status, response).unwrap_err()
}

const FRESH: (&str, &str) = ("cache-control", "max-age=60");

#[test]
fn a_plain_cacheable_response_is_stored_with_its_times() {
    let stored = decide(&[], 200, &[FRESH, ("content-type", "text/plain")]).unwrap();
    assert_eq!(stored.status, 200);
    assert_eq!(stored.request_time, T0 - 1);
    assert_eq!(stored.response_time, T0);
    assert_eq!(stored.headers["content-type"], "text/plain");
    assert!(stored.vary.is_empty());
    assert_eq!(stored.surrogate_control, None);
}

#[test]
fn only_get_is_stored() {
    for method in [
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::OPTIONS,
        Method::from_bytes(b"get").unwrap(),
    ] {
        assert_eq!(
            decide_with(&method, &[], 200, &[FRESH], None).unwrap_err(),
            NotStorable::Method,
            "{method}"
        );
    }
}

#[test]
fn status_codes() {
    for status in [
        0, 99, 100, 101, 103, 199, 206, 304, 428, 429, 431, 511, 600, 699, 999, 1000, 65535,
    ] {
        assert_eq!(
            reason(&[], status, &[FRESH, ("cache-control", "public")]),
            NotStorable::Status,
            "{status}"
        );
    }
    let validator = ("etag", "\"v1\"");
    for status in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
        assert!(decide(&[], status, &[validator]).is_ok(), "{status}");
    }
    // Other final statuses need explicit freshness or `public`.
    for status in [201, 302, 303, 307, 400, 403, 500, 502, 503, 599] {
        assert_eq!(
            reason(&[], status, &[validator]),
            NotStorable::NoFreshness,
            "{status}"
        );
        assert!(decide(&[], status, &[FRESH]).is_ok(), "{status}");
        assert!(decide(&[], status, &[("expires", &date(T0 + 60))]).is_ok());
        assert!(decide(&[], status, &[validator, ("cache-control", "public")]).is_ok());
    }
}

#[test]
fn no_store_in_request_or_response() {
    assert_eq!(
        reason(&[("cache-control", "no-store")], 200, &[FRESH]),
        NotStorable::RequestNoStore
    );
    assert_eq!(
        reason(
            &[],
            200,
            &[("cache-control", "no-store, max-age=60, public")]
        ),
        NotStorable::NoStore
    );
    assert_eq!(
        reason(&[], 200, &[FRESH, ("cache-control", "NO-STORE")]),
        NotStorable::NoStore
    );
}

#[test]
fn must_understand() {
    let both = ("cache-control", "must-understand, no-store, max-age=60");
    assert!(decide(&[], 200, &[both]).is_ok());
    assert!(decide(&[], 451, &[both]).is_ok());
    assert_eq!(reason(&[], 599, &[both]), NotStorable::MustUnderstand);
    assert_eq!(
        reason(
            &[],
            299,
            &[("cache-control", "must-understand, max-age=60")]
        ),
        NotStorable::MustUnderstand
    );
    // It never overrides the request's no-store.
    assert_eq!(
        reason(&[("cache-control", "no-store")], 200, &[both]),
        NotStorable::RequestNoStore
    );
}

#[test]
fn private_unqualified_and_qualified() {
    assert_eq!(
        reason(&[], 200, &[("cache-control", "private, max-age=60")]),
        NotStorable::Private
    );
    let stored = decide(
        &[],
        200,
        &[
            (
                "cache-control",
                "private=\"X-User, Set-Cookie\", max-age=60",
            ),
            ("x-user", "alice"),
            ("set-cookie", "session=alice"),
            ("x-other", "kept"),
        ],
    )
    .unwrap();
    assert!(!stored.headers.contains_key("x-user"));
    assert!(!stored.headers.contains_key(SET_COOKIE));
    assert_eq!(stored.headers["x-other"], "kept");
}

#[test]
fn authorization_needs_an_explicit_permission() {
    let auth = [("authorization", "Bearer secret")];
    assert_eq!(reason(&auth, 200, &[FRESH]), NotStorable::Authorization);
    assert_eq!(
        reason(&auth, 200, &[("cache-control", "s-maxage=oops")]),
        NotStorable::Authorization
    );
    for allowed in [
        "public, max-age=60",
        "s-maxage=60",
        "s-maxage=0, etc",
        "must-revalidate, max-age=60",
    ] {
        let response = [("cache-control", allowed), ("etag", "\"x\"")];
        assert!(decide(&auth, 200, &response).is_ok(), "{allowed}");
    }
}

#[test]
fn vary_star_is_never_stored() {
    assert_eq!(
        reason(&[], 200, &[FRESH, ("vary", "*")]),
        NotStorable::VaryStar
    );
    assert_eq!(
        reason(&[], 200, &[FRESH, ("vary", "Accept-Encoding Cookie")]),
        NotStorable::VaryStar
    );
    let stored = decide(
        &[("accept-encoding", "gzip")],
        200,
        &[FRESH, ("vary", "accept-encoding")],
    )
    .unwrap();
    assert_eq!(stored.vary.fields()[0].1.as_deref(), Some(&b"gzip"[..]));
}

#[test]
fn set_cookie_needs_public_or_s_maxage() {
    let cookie = ("set-cookie", "session=abc");
    assert_eq!(reason(&[], 200, &[FRESH, cookie]), NotStorable::SetCookie);
    assert_eq!(
        reason(&[], 200, &[("cache-control", "s-maxage=x"), cookie]),
        NotStorable::SetCookie
    );
    let public = decide(&[], 200, &[("cache-control", "public, max-age=60"), cookie]);
    assert_eq!(public.unwrap().headers[SET_COOKIE], "session=abc");
    assert!(decide(&[], 200, &[("cache-control", "s-maxage=60"), cookie]).is_ok());
    // Surrogate-Control freshness does not vouch for a cookie.
    assert_eq!(
        reason(&[], 200, &[("surrogate-control", "max-age=60"), cookie]),
        NotStorable::SetCookie
    );
}

#[test]
fn a_response_that_could_never_be_reused_is_refused() {
    assert_eq!(reason(&[], 200, &[]), NotStorable::NoFreshness);
    assert_eq!(
        reason(&[], 200, &[("cache-control", "max-age=0")]),
        NotStorable::NoFreshness
    );
    assert_eq!(
        reason(&[], 200, &[("cache-control", "no-cache, max-age=600")]),
        NotStorable::NoFreshness
    );
    // A validator, a default TTL, heuristic freshness or a stale window
    // each make it worth keeping.
    assert!(decide(&[], 200, &[("etag", "W/\"1\"")]).is_ok());
    assert!(
        decide(
            &[],
            200,
            &[("cache-control", "no-cache"), ("etag", "\"1\"")]
        )
        .is_ok()
    );
    assert!(decide(&[], 200, &[("last-modified", &date(T0 - 1000))]).is_ok());
    assert!(decide_with(&Method::GET, &[], 200, &[], Some(60)).is_ok());
    assert!(
        decide(
            &[],
            200,
            &[("cache-control", "max-age=0, stale-if-error=60")]
        )
        .is_ok()
    );
}

#[test]
fn surrogate_control_decides_first_and_is_not_stored_as_a_header() {
    assert_eq!(
        reason(
            &[],
            200,
            &[
                ("surrogate-control", "no-store"),
                ("cache-control", "public, max-age=60")
            ]
        ),
        NotStorable::SurrogateNoStore
    );
    let stored = decide(
        &[],
        500,
        &[
            ("surrogate-control", "max-age=300"),
            ("surrogate-control", "stale-if-error=60"),
            ("cache-control", "no-store, no-cache"),
        ],
    )
    .unwrap();
    assert!(!stored.headers.contains_key(SURROGATE_CONTROL));
    assert_eq!(
        stored.surrogate_control.as_deref(),
        Some(&b"max-age=300, stale-if-error=60"[..])
    );
    assert_eq!(
        reason(
            &[],
            200,
            &[
                ("surrogate-control", "max-age=300"),
                ("cache-control", "private")
            ]
        ),
        NotStorable::Private
    );
}

#[test]
fn date_is_added_only_when_missing() {
    let stored = decide(&[], 200, &[FRESH]).unwrap();
    assert_eq!(stored.headers[DATE], date(T0).as_str());
    let sent = date(T0 - 30);
    let kept = decide(&[], 200, &[FRESH, ("date", &sent)]).unwrap();
    assert_eq!(kept.headers[DATE], sent.as_str());
}

#[test]
fn hop_by_hop_fields_are_stripped() {
    let mut map = headers(&[
        ("connection", "close, X-Hop"),
        ("connection", "x-other-hop, not a field"),
        ("x-hop", "1"),
        ("x-other-hop", "2"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("trailer", "x-checksum"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("proxy-connection", "keep-alive"),
        ("proxy-authenticate", "Basic"),
        ("proxy-authorization", "Basic eA=="),
        ("proxy-status", "upstream; error=timeout"),
        ("content-type", "text/plain"),
        ("content-length", "5"),
        ("cache-control", "max-age=5"),
    ]);
    map.append(CONNECTION, HeaderValue::from_bytes(b"\xff\xfe").unwrap());
    strip_hop_by_hop(&mut map);
    let mut left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
    left.sort_unstable();
    assert_eq!(left, ["cache-control", "content-length", "content-type"]);
}

#[test]
fn stored_headers_are_stripped_too() {
    let stored = decide(
        &[],
        200,
        &[
            FRESH,
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("proxy-foo", "2"),
            ("x-end", "3"),
        ],
    )
    .unwrap();
    let mut left: Vec<&str> = stored.headers.keys().map(HeaderName::as_str).collect();
    left.sort_unstable();
    assert_eq!(left, ["cache-control", "date", "x-end"]);
}

#[test]
fn non_utf8_values_are_stored_verbatim() {
    let mut response = headers(&[FRESH]);
    response.append("x-latin1", HeaderValue::from_bytes(b"caf\xe9").unwrap());
    let request = HeaderMap::new();
    let stored = storable(
        &Exchange {
            method: &Method::GET,
            request_headers: &request,
            status: 200,
            response_headers: &response,
            request_time: at(T0),
            response_time: at(T0),
        },
        Defaults::default(),
    )
    .unwrap();
    assert_eq!(stored.headers["x-latin1"].as_bytes(), b"caf\xe9");
}

#[test]
fn reasons_display_as_their_short_names() {
    for reason in ALL_REASONS {
        assert_eq!(reason.to_string(), reason.as_str());
    }
}

#[test]
fn invalid_status_codes_are_refused_whatever_the_headers() {
    let permissive = [
        ("cache-control", "public, max-age=60, s-maxage=60"),
        ("cdn-cache-control", "public, max-age=60"),
        ("surrogate-control", "max-age=60"),
        ("etag", "\"v\""),
    ];
    for status in [0, 42, 99, 600, 700, 999] {
        assert_eq!(
            reason(&[], status, &permissive),
            NotStorable::Status,
            "{status}"
        );
    }
    assert!(decide(&[], 599, &permissive).is_ok());
}

/// RFC 9213: the storage side of the cache-tests `cdn-cache-control` suite.
mod targeted {
    use super::*;

    #[test]
    fn cdn_restrictions_beat_a_fresh_cache_control_and_expires() {
        let future = date(T0 + 10_000);
        let fresh = |cdn: &'static str| {
            reason(
                &[],
                200,
                &[
                    ("cdn-cache-control", cdn),
                    ("cache-control", "max-age=10000"),
                    ("expires", &future),
                ],
            )
        };
        assert_eq!(fresh("private"), NotStorable::Private);
        assert_eq!(fresh("no-store"), NotStorable::NoStore);
        assert_eq!(fresh("max-age=0"), NotStorable::NoFreshness);
        // `no-cache` without a validator could never be reused.
        assert_eq!(fresh("no-cache"), NotStorable::NoFreshness);
        // With one it is stored, to be revalidated every time.
        let validated = [("cdn-cache-control", "no-cache"), ("etag", "\"1\"")];
        assert!(decide(&[], 200, &validated).is_ok());
    }

    #[test]
    fn cdn_freshness_beats_cache_control_no_store_and_private() {
        for cache_control in ["no-store", "private", "no-store, private, no-cache"] {
            let stored = decide(
                &[],
                200,
                &[
                    ("cache-control", cache_control),
                    ("cdn-cache-control", "max-age=10000"),
                ],
            )
            .unwrap();
            // Both fields are kept, to be forwarded (RFC 9213 §3).
            assert_eq!(stored.headers["cdn-cache-control"], "max-age=10000");
            assert_eq!(stored.headers["cache-control"], cache_control);
        }
        // A status that needs explicit freshness gets it from the field.
        assert!(decide(&[], 500, &[("cdn-cache-control", "max-age=60")]).is_ok());
    }

    #[test]
    fn an_invalid_field_leaves_cache_control_in_charge() {
        for value in ["max-age=10000, &&&&&", "max-age =100", "MaX-aGe=10000", ""] {
            let response = [("cdn-cache-control", value), ("cache-control", "no-store")];
            assert_eq!(
                reason(&[], 200, &response),
                NotStorable::NoStore,
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_wrongly_typed_max_age_is_not_used() {
        let response = [
            ("cdn-cache-control", "max-age=\"10000\""),
            ("cache-control", "no-store"),
        ];
        assert_eq!(reason(&[], 200, &response), NotStorable::NoFreshness);
        // Not even with an operator default TTL: the field stated (badly)
        // its freshness.
        assert!(decide_with(&Method::GET, &[], 200, &response, Some(600)).is_err());
    }

    #[test]
    fn expires_is_ignored_under_a_targeted_field() {
        let future = date(T0 + 10_000);
        // Expires would be explicit freshness for a 500; here it is not.
        let response = [("cdn-cache-control", "none"), ("expires", &future)];
        assert_eq!(reason(&[], 500, &response), NotStorable::NoFreshness);
    }

    #[test]
    fn permissions_come_from_the_targeted_field() {
        let auth = [("authorization", "Bearer x")];
        let cookie = ("set-cookie", "a=b");
        let cc_public = ("cache-control", "public, s-maxage=60");
        // Cache-Control's permissions do not count next to a targeted field.
        let response = [cc_public, ("cdn-cache-control", "max-age=60")];
        assert_eq!(reason(&auth, 200, &response), NotStorable::Authorization);
        assert_eq!(
            reason(
                &[],
                200,
                &[cc_public, ("cdn-cache-control", "max-age=60"), cookie]
            ),
            NotStorable::SetCookie
        );
        // The targeted field's do.
        assert!(decide(&auth, 200, &[("cdn-cache-control", "public, max-age=60")]).is_ok());
        assert!(decide(&auth, 200, &[("cdn-cache-control", "s-maxage=60")]).is_ok());
        assert!(
            decide(
                &[],
                200,
                &[("cdn-cache-control", "public, max-age=60"), cookie]
            )
            .is_ok()
        );
        let stored = decide(
            &[],
            200,
            &[
                ("cdn-cache-control", "private=\"set-cookie\", max-age=60"),
                cookie,
            ],
        )
        .unwrap();
        assert!(!stored.headers.contains_key(SET_COOKIE));
    }

    #[test]
    fn surrogate_control_is_ignored_under_a_targeted_field() {
        let response = [
            ("surrogate-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ];
        assert!(decide(&[], 200, &response).is_ok());
    }
}

/// Which stale windows make a response without freshness or validator
/// worth storing.
mod stale_windows {
    use super::*;

    fn with_window(
        response: &[(&str, &str)],
        window: Option<u64>,
    ) -> Result<StoredResponse, NotStorable> {
        let request_headers = headers(&[]);
        let response_headers = headers(response);
        storable(
            &Exchange {
                method: &Method::GET,
                request_headers: &request_headers,
                status: 200,
                response_headers: &response_headers,
                request_time: at(T0),
                response_time: at(T0),
            },
            Defaults {
                default_ttl: None,
                stale_if_error: window.map(Duration::from_secs),
            },
        )
    }

    #[test]
    fn the_operator_window_counts() {
        let zero = [("cache-control", "max-age=0")];
        assert_eq!(
            with_window(&zero, None).unwrap_err(),
            NotStorable::NoFreshness
        );
        assert_eq!(
            with_window(&zero, Some(0)).unwrap_err(),
            NotStorable::NoFreshness
        );
        assert!(with_window(&zero, Some(60)).is_ok());
    }

    #[test]
    fn no_window_counts_where_stale_is_never_served() {
        for response in [
            "max-age=0, must-revalidate, stale-if-error=60",
            "max-age=0, proxy-revalidate, stale-while-revalidate=60",
            "s-maxage=0, stale-if-error=60",
            "no-cache, stale-if-error=60",
        ] {
            let pairs = [("cache-control", response)];
            assert_eq!(
                with_window(&pairs, Some(600)).unwrap_err(),
                NotStorable::NoFreshness,
                "{response}"
            );
        }
    }
}
