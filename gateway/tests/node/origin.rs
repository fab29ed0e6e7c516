//! Origin mode against a real origin: RFC 9111 storage, freshness, validation,
//! Vary, stale answers, invalidation and purge, counted at the origin.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::origin_server::{ScriptBody, Scripted, TestOrigin};
use crate::support::{TestNode, blake3_hex, eventually, pattern};

/// A node in front of `origin`, with extra FLEETCACHE_* settings.
pub async fn node_for(origin: &TestOrigin, extra: &[(&str, &str)]) -> TestNode {
    let url = origin.url();
    let mut env = vec![("FLEETCACHE_ORIGIN", url.as_str())];
    env.extend_from_slice(extra);
    TestNode::start_with(&env).await
}

pub fn cache_status(reply: &crate::support::Reply) -> String {
    reply.header("cache-status").unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_fresh_response_is_fetched_once_and_served_from_the_store() {
    let origin = TestOrigin::start().await;
    let body = pattern(100_000, 1);
    let served = body.clone();
    origin.route("/a/b?c=d", move |_| {
        Scripted::ok(served.clone())
            .header("cache-control", "max-age=300")
            .header("content-type", "image/png")
            .header("etag", "\"v1\"")
    });
    let node = node_for(&origin, &[]).await;

    let first = node.get("/a/b?c=d").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, body);
    assert!(cache_status(&first).contains("fwd=uri-miss"), "{first:?}");
    assert!(cache_status(&first).contains("stored"), "{first:?}");
    assert!(first.header("via").unwrap().contains("fleetcache"));

    node.settle().await;
    let second = node.get("/a/b?c=d").await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body, body);
    assert!(
        cache_status(&second).starts_with("fleetcache; hit"),
        "{second:?}"
    );
    assert_eq!(second.header("content-type"), Some("image/png"));
    assert_eq!(second.header("etag"), Some("\"v1\""));
    assert!(second.header("age").is_some());
    assert_eq!(origin.hits("/a/b?c=d"), 1);

    // The stored bytes are linked by hash and served by hash, verifiably.
    let hash = blake3_hex(&body);
    assert_eq!(
        second.header("link"),
        Some(format!("</blake3/{hash}>; rel=\"duplicate\"").as_str())
    );
    let by_hash = node.get(&format!("/blake3/{hash}")).await;
    assert_eq!(by_hash.body, body);
    // Another query string is another URL.
    let other = node.get("/a/b?c=e").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(origin.hits("/a/b?c=e"), 1);
}

#[tokio::test]
async fn identical_bodies_under_different_urls_are_stored_once() {
    let origin = TestOrigin::start().await;
    let body = pattern(50_000, 2);
    for path in ["/one", "/two", "/three"] {
        let served = body.clone();
        origin.route(path, move |_| {
            Scripted::ok(served.clone()).header("cache-control", "max-age=300")
        });
    }
    let node = node_for(&origin, &[]).await;
    for path in ["/one", "/two", "/three"] {
        assert_eq!(node.get(path).await.body, body);
    }
    let stats = node.stats().await;
    assert_eq!(stats["store"]["objects"], 1, "{stats}");
    assert_eq!(stats["store"]["url_entries"], 3, "{stats}");
    node.settle().await;
    for path in ["/one", "/two", "/three"] {
        assert!(cache_status(&node.get(path).await).contains("hit"));
    }
}

#[tokio::test]
async fn freshness_comes_from_each_source_in_order() {
    let origin = TestOrigin::start().await;
    let long_ago = "Mon, 01 Jan 2001 00:00:00 GMT";
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
    let cases: &[Case<'_>] = &[
        ("/max-age", &[("cache-control", "max-age=300")], true),
        (
            "/s-maxage",
            &[("cache-control", "s-maxage=300, max-age=0")],
            true,
        ),
        (
            "/s-maxage-zero",
            &[("cache-control", "s-maxage=0, max-age=300")],
            false,
        ),
        ("/expires-past", &[("expires", long_ago)], false),
        (
            "/expires-invalid",
            &[("expires", "0"), ("last-modified", long_ago)],
            false,
        ),
        ("/heuristic", &[("last-modified", long_ago)], true),
        ("/nothing", &[], false),
    ];
    for (path, headers, _) in cases {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        origin.route(path, move |_| {
            let mut reply = Scripted::ok("body");
            for (name, value) in &headers {
                reply = reply.header(name, value);
            }
            reply
        });
    }
    let node = node_for(&origin, &[]).await;
    for (path, _, fresh) in cases {
        node.get(path).await;
        let second = node.get(path).await;
        let expected = if *fresh { 1 } else { 2 };
        assert_eq!(origin.hits(path), expected, "{path}: {second:?}");
    }
}

#[tokio::test]
async fn expires_in_the_future_and_default_ttl_make_fresh_entries() {
    let origin = TestOrigin::start().await;
    origin.route("/expires", |_| {
        let in_an_hour = httpdate(std::time::SystemTime::now() + Duration::from_secs(3600));
        Scripted::ok("e").header("expires", &in_an_hour)
    });
    origin.route("/bare", |_| Scripted::ok("b").header("etag", "\"b\""));
    let node = node_for(&origin, &[]).await;
    node.get("/expires").await;
    node.settle().await;
    assert!(cache_status(&node.get("/expires").await).contains("hit"));
    assert_eq!(origin.hits("/expires"), 1);

    // With no freshness information, default_ttl (when set) applies.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!(
            "[[origin]]\nurl = \"{}\"\ndefault_ttl = \"1h\"\n",
            origin.url()
        ),
    )
    .unwrap();
    let config_node = TestNode::start_with_file(file.path(), &[]).await;
    config_node.get("/bare").await;
    config_node.settle().await;
    assert!(cache_status(&config_node.get("/bare").await).contains("hit"));
    // Without it, the entry is stale at once and revalidated.
    node.get("/bare").await;
    let before = origin.hits("/bare");
    node.get("/bare").await;
    assert_eq!(origin.hits("/bare"), before + 1);
}

fn httpdate(time: std::time::SystemTime) -> String {
    // RFC 9110 IMF-fixdate, the way an origin would write it.
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let days = secs / 86400;
    let rem = secs % 86400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let names = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {d:02} {} {year} {h:02}:{m:02}:{s:02} GMT",
        names[(month - 1) as usize]
    )
}

#[tokio::test]
async fn age_from_the_origin_counts_against_freshness() {
    let origin = TestOrigin::start().await;
    origin.route("/aged", |_| {
        Scripted::ok("old")
            .header("cache-control", "max-age=100")
            .header("age", "150")
    });
    origin.route("/young", |_| {
        Scripted::ok("young")
            .header("cache-control", "max-age=100")
            .header("age", "30")
    });
    let node = node_for(&origin, &[]).await;
    node.get("/aged").await;
    node.get("/aged").await;
    assert_eq!(origin.hits("/aged"), 2, "already stale on arrival");
    node.get("/young").await;
    let hit = node.get("/young").await;
    assert_eq!(origin.hits("/young"), 1);
    let age: u64 = hit.header("age").unwrap().parse().unwrap();
    assert!((30..100).contains(&age), "{age}");
}

#[tokio::test]
async fn stale_entries_are_revalidated_and_a_304_updates_the_headers() {
    let origin = TestOrigin::start().await;
    let body = pattern(40_000, 3);
    let served = body.clone();
    origin.route("/doc", move |seen| {
        if seen.header("if-none-match") == Some("\"v1\"") {
            return Scripted::status(304, "")
                .header("etag", "\"v1\"")
                .header("cache-control", "max-age=0")
                .header("x-version", &format!("{}", seen.n + 1))
                .header("content-length", "7");
        }
        Scripted::ok(served.clone())
            .header("etag", "\"v1\"")
            .header("cache-control", "max-age=0")
            .header("content-type", "text/plain")
            .header("x-version", "1")
    });
    let node = node_for(&origin, &[]).await;
    assert_eq!(node.get("/doc").await.header("x-version"), Some("1"));
    let second = node.get("/doc").await;
    assert_eq!(second.status, StatusCode::OK);
    assert!(second.body == body, "the body is the stored one");
    assert_eq!(
        second.header("x-version"),
        Some("2"),
        "{:?}",
        second.headers
    );
    assert_eq!(second.header("content-type"), Some("text/plain"));
    assert_eq!(
        second.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert!(cache_status(&second).contains("fwd=stale"), "{second:?}");
    assert!(
        cache_status(&second).contains("fwd-status=304"),
        "{second:?}"
    );
    let conditional = origin.last("/doc").unwrap();
    assert_eq!(conditional.header("if-none-match"), Some("\"v1\""));
    // The merged headers were stored: the next revalidation's answer shows
    // the new version, and the client's own conditional gets a 304.
    let third = node.get("/doc").await;
    assert_eq!(third.header("x-version"), Some("3"));
    let not_modified = node.get_with("/doc", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert_eq!(origin.hits("/doc"), 4);
    assert_eq!(
        node.metric("fleetcache_revalidations_total{outcome=\"304\"}")
            .await,
        3.0
    );
}

#[tokio::test]
async fn last_modified_revalidates_with_if_modified_since() {
    let origin = TestOrigin::start().await;
    let modified = "Tue, 01 Jan 2002 00:00:00 GMT";
    origin.route("/lm", move |seen| {
        if seen.header("if-modified-since") == Some(modified) {
            return Scripted::status(304, "").header("cache-control", "no-cache");
        }
        Scripted::ok("dated")
            .header("last-modified", modified)
            .header("cache-control", "no-cache")
    });
    let node = node_for(&origin, &[]).await;
    node.get("/lm").await;
    let second = node.get("/lm").await;
    assert_eq!(&second.body[..], b"dated");
    assert!(
        cache_status(&second).contains("fwd-status=304"),
        "{second:?}"
    );
    let ims = node
        .get_with("/lm", &[("if-modified-since", modified)])
        .await;
    assert_eq!(ims.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn clients_conditionals_are_answered_from_fresh_entries() {
    let origin = TestOrigin::start().await;
    origin.route("/c", |_| {
        Scripted::ok("conditional")
            .header("etag", "W/\"weak\"")
            .header("cache-control", "max-age=300")
    });
    let node = node_for(&origin, &[]).await;
    node.get("/c").await;
    node.settle().await;
    let inm = node
        .get_with("/c", &[("if-none-match", "W/\"weak\"")])
        .await;
    assert_eq!(inm.status, StatusCode::NOT_MODIFIED);
    assert!(inm.body.is_empty());
    assert_eq!(inm.header("etag"), Some("W/\"weak\""));
    let im = node.get_with("/c", &[("if-match", "W/\"weak\"")]).await;
    assert_eq!(
        im.status,
        StatusCode::PRECONDITION_FAILED,
        "weak tags never match If-Match"
    );
    assert_eq!(origin.hits("/c"), 1);
}

#[tokio::test]
async fn vary_keeps_one_entry_per_variant_and_star_never_matches() {
    let origin = TestOrigin::start().await;
    origin.route("/v", |seen| {
        let encoding = seen.header("accept-encoding").unwrap_or("none").to_owned();
        Scripted::ok(format!("for {encoding}"))
            .header("vary", "Accept-Encoding")
            .header("cache-control", "max-age=300")
    });
    origin.route("/star", |_| {
        Scripted::ok("star")
            .header("vary", "*")
            .header("cache-control", "max-age=300")
    });
    let node = node_for(&origin, &[]).await;
    let gzip = [("accept-encoding", "gzip")];
    let br = [("accept-encoding", "br")];
    assert_eq!(&node.get_with("/v", &gzip).await.body[..], b"for gzip");
    let miss = node.get_with("/v", &br).await;
    assert_eq!(&miss.body[..], b"for br");
    assert!(cache_status(&miss).contains("fwd=vary-miss"), "{miss:?}");
    // Normalised values match: whitespace differences are the same variant.
    node.settle().await;
    let spaced = node.get_with("/v", &[("accept-encoding", " gzip ")]).await;
    assert_eq!(&spaced.body[..], b"for gzip");
    assert!(cache_status(&spaced).contains("hit"));
    assert_eq!(&node.get_with("/v", &br).await.body[..], b"for br");
    assert_eq!(&node.get("/v").await.body[..], b"for none");
    assert_eq!(origin.hits("/v"), 3);

    node.get("/star").await;
    node.get("/star").await;
    assert_eq!(origin.hits("/star"), 2);
}

#[tokio::test]
async fn no_store_private_and_authorization_are_not_stored() {
    let origin = TestOrigin::start().await;
    origin.route("/no-store", |seen| {
        Scripted::ok(format!("n{}", seen.n)).header("cache-control", "no-store, max-age=300")
    });
    origin.route("/private", |seen| {
        Scripted::ok(format!("p{}", seen.n)).header("cache-control", "private, max-age=300")
    });
    origin.route("/auth", |seen| {
        Scripted::ok(format!("a{}", seen.n)).header("cache-control", "max-age=300")
    });
    origin.route("/auth-public", |seen| {
        Scripted::ok(format!("ap{}", seen.n)).header("cache-control", "public, max-age=300")
    });
    origin.route("/cookie", |seen| {
        Scripted::ok(format!("c{}", seen.n))
            .header("cache-control", "max-age=300")
            .header("set-cookie", "session=1")
    });
    let node = node_for(&origin, &[]).await;
    for path in ["/no-store", "/private", "/cookie"] {
        let first = node.get(path).await;
        let second = node.get(path).await;
        assert_ne!(first.body, second.body, "{path} was shared");
        assert_eq!(origin.hits(path), 2, "{path}");
    }
    let auth = [("authorization", "Bearer secret")];
    node.get_with("/auth", &auth).await;
    node.get_with("/auth", &auth).await;
    assert_eq!(origin.hits("/auth"), 2);
    node.get_with("/auth-public", &auth).await;
    node.settle().await;
    let shared = node.get("/auth-public").await;
    assert!(cache_status(&shared).contains("hit"), "{shared:?}");
    assert_eq!(origin.hits("/auth-public"), 1);
    // A request's no-store keeps its answer out of the store.
    origin.route("/asked-no-store", |_| {
        Scripted::ok("x").header("cache-control", "max-age=300")
    });
    node.get_with("/asked-no-store", &[("cache-control", "no-store")])
        .await;
    node.get("/asked-no-store").await;
    assert_eq!(origin.hits("/asked-no-store"), 2);
}

#[tokio::test]
async fn private_answers_are_never_shared_between_concurrent_clients() {
    let origin = TestOrigin::start().await;
    origin.route("/me", |seen| {
        Scripted::ok(format!("user {}", seen.header("x-user").unwrap_or("?")))
            .header("cache-control", "private")
            .delay(Duration::from_millis(200))
    });
    let node = node_for(&origin, &[]).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = node.client.clone();
        let url = node.url("/me");
        tasks.push(tokio::spawn(async move {
            let user = format!("u{i}");
            let reply = crate::support::request(
                &client,
                Method::GET,
                &url,
                &[("x-user", &user)],
                Bytes::new(),
            )
            .await;
            (user, reply.body)
        }));
    }
    for task in tasks {
        let (user, body) = task.await.unwrap();
        assert_eq!(body, format!("user {user}"));
    }
    assert_eq!(origin.hits("/me"), 8);
}

#[tokio::test]
async fn request_directives_are_honoured() {
    let origin = TestOrigin::start().await;
    origin.route("/r", |seen| {
        // Already 100 s old when it arrives, so a request's max-age can refuse it.
        Scripted::ok(format!("r{}", seen.n))
            .header("cache-control", "max-age=300")
            .header("age", "100")
            .header("etag", "\"r\"")
    });
    let node = node_for(&origin, &[]).await;
    // only-if-cached with nothing stored: 504.
    let cold = node
        .get_with("/r", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(cold.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(origin.hits("/r"), 0);
    node.get("/r").await;
    node.settle().await;
    let cached = node
        .get_with("/r", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(cached.status, StatusCode::OK);
    // no-cache and max-age=0 go to the origin (revalidation).
    let no_cache = node.get_with("/r", &[("cache-control", "no-cache")]).await;
    assert!(
        cache_status(&no_cache).contains("fwd=request"),
        "{no_cache:?}"
    );
    assert_eq!(origin.hits("/r"), 2);
    node.get_with("/r", &[("pragma", "no-cache")]).await;
    assert_eq!(origin.hits("/r"), 3);
    node.get_with("/r", &[("cache-control", "max-age=50")])
        .await;
    assert_eq!(origin.hits("/r"), 4);
    node.get_with("/r", &[("cache-control", "max-age=150")])
        .await;
    assert_eq!(origin.hits("/r"), 4, "an age of 100 is within max-age=150");
    // min-fresh beyond the remaining lifetime: origin; within it: hit.
    node.get_with("/r", &[("cache-control", "min-fresh=1000")])
        .await;
    assert_eq!(origin.hits("/r"), 5);
    node.get_with("/r", &[("cache-control", "min-fresh=10")])
        .await;
    assert_eq!(origin.hits("/r"), 5);

    // max-stale serves a stale entry without asking.
    origin.route("/stale", |seen| {
        Scripted::ok(format!("s{}", seen.n))
            .header("cache-control", "max-age=0")
            .header("etag", "\"s\"")
    });
    node.get("/stale").await;
    let stale = node
        .get_with("/stale", &[("cache-control", "max-stale")])
        .await;
    assert_eq!(&stale.body[..], b"s0");
    assert_eq!(origin.hits("/stale"), 1);
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let origin = TestOrigin::start().await;
    origin.route("/swr", |seen| {
        let reply = Scripted::ok(format!("version {}", seen.n))
            .header("cache-control", "max-age=0, stale-while-revalidate=600");
        // The refresh takes a while, so the stale answers below overlap it.
        if seen.n > 0 {
            return reply.delay(Duration::from_millis(300));
        }
        reply
    });
    let node = node_for(&origin, &[]).await;
    assert_eq!(&node.get("/swr").await.body[..], b"version 0");
    node.settle().await;
    for _ in 0..5 {
        let reply = node.get("/swr").await;
        assert_eq!(&reply.body[..], b"version 0", "answered at once, stale");
        assert!(
            cache_status(&reply).contains("stale-while-revalidate"),
            "{reply:?}"
        );
    }
    // One background refresh for all five.
    eventually(
        "the background refresh",
        Duration::from_secs(10),
        async || origin.hits("/swr") >= 2,
    )
    .await;
    node.settle().await;
    assert_eq!(origin.hits("/swr"), 2);
    assert_eq!(&node.get("/swr").await.body[..], b"version 1");
}

#[tokio::test]
async fn stale_entries_cover_origin_errors_and_outages_unless_forbidden() {
    let origin = TestOrigin::start().await;
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for (path, cache_control) in [
        ("/sie", "max-age=0, stale-if-error=600"),
        ("/default", "max-age=0"),
        ("/strict", "max-age=0, must-revalidate"),
    ] {
        let flag = failing.clone();
        origin.route(path, move |_| {
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                return Scripted::status(503, "down for maintenance");
            }
            Scripted::ok("good")
                .header("cache-control", cache_control)
                .header("etag", "\"g\"")
        });
    }
    // The origin's stale_if_error window (1h by default) covers responses
    // that say nothing; a response's own stale-if-error works anyway.
    let node = node_for(&origin, &[]).await;
    let strict_node = {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            format!(
                "[[origin]]\nurl = \"{}\"\nstale_if_error = \"0s\"\n",
                origin.url()
            ),
        )
        .unwrap();
        TestNode::start_with_file(file.path(), &[]).await
    };
    for path in ["/sie", "/default", "/strict"] {
        node.get(path).await;
        strict_node.get(path).await;
    }
    node.settle().await;
    strict_node.settle().await;
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    for path in ["/sie", "/default"] {
        let stale = node.get(path).await;
        assert_eq!(stale.status, StatusCode::OK, "{path}: {stale:?}");
        assert_eq!(&stale.body[..], b"good");
        assert!(cache_status(&stale).contains("stale-if-error"), "{stale:?}");
    }
    // must-revalidate forbids it: the origin's error reaches the client.
    let strict = node.get("/strict").await;
    assert_eq!(strict.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(&strict.body[..], b"down for maintenance");
    // With the window off, only the response's own directive helps.
    assert_eq!(strict_node.get("/sie").await.status, StatusCode::OK);
    let off = strict_node.get("/default").await;
    assert_eq!(off.status, StatusCode::SERVICE_UNAVAILABLE, "{off:?}");

    origin.stop();
    for path in ["/sie", "/default"] {
        let outage = node.get(path).await;
        assert_eq!(outage.status, StatusCode::OK, "{path}: {outage:?}");
        assert_eq!(&outage.body[..], b"good");
    }
    let strict = node.get("/strict").await;
    assert_eq!(strict.status, StatusCode::BAD_GATEWAY, "{strict:?}");
    assert!(cache_status(&strict).contains("fwd=stale"), "{strict:?}");
    let gone = node.get("/never-stored").await;
    assert_eq!(gone.status, StatusCode::BAD_GATEWAY);
    assert!(
        node.metric("fleetcache_stale_responses_total{reason=\"stale-if-error\"}")
            .await
            >= 4.0
    );
}

#[tokio::test]
async fn unsafe_requests_pass_through_and_invalidate() {
    let origin = TestOrigin::start().await;
    origin.route("/item", |seen| match seen.method {
        Method::POST => Scripted::status(201, format!("got {} bytes", seen.body.len()))
            .header("location", "/item/7")
            .header("content-location", "http://elsewhere.example/item"),
        _ => Scripted::ok(format!("item v{}", seen.n)).header("cache-control", "max-age=300"),
    });
    origin.route("/item/7", |seen| {
        Scripted::ok(format!("seven v{}", seen.n)).header("cache-control", "max-age=300")
    });
    let node = node_for(&origin, &[]).await;
    node.get("/item").await;
    node.get("/item/7").await;
    node.settle().await;
    assert!(cache_status(&node.get("/item").await).contains("hit"));

    let upload = Bytes::from(pattern(300_000, 4));
    let posted = node
        .request(Method::POST, &node.url("/item"), &[], upload.clone())
        .await;
    assert_eq!(posted.status, StatusCode::CREATED);
    assert_eq!(posted.body, format!("got {} bytes", upload.len()));
    assert!(cache_status(&posted).contains("fwd=method"), "{posted:?}");
    assert_eq!(origin.last("/item").unwrap().body, upload);

    // Both the target and its Location were invalidated.
    let item = node.get("/item").await;
    assert!(!cache_status(&item).contains("hit"), "{item:?}");
    let seven = node.get("/item/7").await;
    assert!(!cache_status(&seven).contains("hit"), "{seven:?}");

    // A failed unsafe request invalidates nothing.
    origin.route("/keep", |seen| match seen.method {
        Method::DELETE => Scripted::status(500, "no"),
        _ => Scripted::ok("keep").header("cache-control", "max-age=300"),
    });
    node.get("/keep").await;
    node.settle().await;
    node.request(Method::DELETE, &node.url("/keep"), &[], Bytes::new())
        .await;
    assert!(cache_status(&node.get("/keep").await).contains("hit"));
}

#[tokio::test]
async fn hop_by_hop_fields_never_cross_and_via_is_added() {
    let origin = TestOrigin::start().await;
    origin.route("/hop", |_| {
        Scripted::ok("hop")
            .header("cache-control", "max-age=300")
            .header("connection", "x-private-hop")
            .header("x-private-hop", "secret")
            .header("keep-alive", "timeout=5")
            .header("surrogate-control", "max-age=300")
            .header("x-end-to-end", "kept")
    });
    let node = node_for(&origin, &[]).await;
    for _ in 0..2 {
        let reply = node
            .get_with(
                "/hop",
                &[
                    ("connection", "x-client-hop"),
                    ("x-client-hop", "1"),
                    ("te", "trailers"),
                    ("proxy-authorization", "Basic abc"),
                    ("x-client-e2e", "1"),
                ],
            )
            .await;
        assert_eq!(reply.header("x-end-to-end"), Some("kept"));
        for gone in ["x-private-hop", "keep-alive", "surrogate-control"] {
            assert!(reply.header(gone).is_none(), "{gone} reached the client");
        }
        assert!(reply.header("via").unwrap().contains("1.1 fleetcache"));
    }
    let seen = origin.last("/hop").unwrap();
    for gone in ["x-client-hop", "te", "proxy-authorization"] {
        assert!(seen.header(gone).is_none(), "{gone} reached the origin");
    }
    assert_eq!(seen.header("x-client-e2e"), Some("1"));
    assert!(seen.header("via").unwrap().contains("fleetcache"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        seen.header("host"),
        Some(origin.addr.to_string().as_str()),
        "the origin sees its own name"
    );
}

#[tokio::test]
async fn purge_by_url_prefix_and_surrogate_key() {
    let origin = TestOrigin::start().await;
    for path in ["/p/a", "/p/b", "/q/c", "/tagged/1", "/tagged/2"] {
        let tag = if path.starts_with("/tagged/") {
            "group-x all"
        } else {
            "all"
        };
        origin.route(path, move |seen| {
            Scripted::ok(format!("{} {}", seen.target, seen.n))
                .header("cache-control", "max-age=300")
                .header("surrogate-key", tag)
        });
    }
    let node = node_for(&origin, &[]).await;
    let warm = async || {
        for path in ["/p/a", "/p/b", "/q/c", "/tagged/1", "/tagged/2"] {
            node.get(path).await;
        }
    };
    warm().await;
    node.settle().await;
    let purge = async |body: &str| {
        let reply = node
            .request(
                Method::POST,
                &node.admin_url("/purge"),
                &[("content-type", "application/json")],
                Bytes::from(body.to_owned()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        reply.json()
    };
    let host = format!("http://{}", node.public);
    let answer = purge(&format!("{{\"urls\": [\"{host}/p/a\"]}}")).await;
    assert_eq!(answer["removed"], 1, "{answer}");
    assert!(!cache_status(&node.get("/p/a").await).contains("hit"));
    assert!(cache_status(&node.get("/p/b").await).contains("hit"));

    let answer = purge("{\"prefixes\": [\"/p/\"]}").await;
    assert_eq!(answer["removed"], 2, "{answer}");
    let answer = purge("{\"surrogate_keys\": [\"group-x\"]}").await;
    assert_eq!(answer["removed"], 2, "{answer}");
    assert!(cache_status(&node.get("/q/c").await).contains("hit"));
    assert!(!cache_status(&node.get("/tagged/1").await).contains("hit"));
    // A path purges that path under every host.
    let answer = purge("{\"urls\": [\"/q/c\"]}").await;
    assert_eq!(answer["removed"], 1, "{answer}");

    for bad in [
        "",
        "{}",
        "{\"urls\": [\"ftp://x/y\"]}",
        "{\"nope\": []}",
        "[1]",
    ] {
        let reply = node
            .request(
                Method::POST,
                &node.admin_url("/purge"),
                &[],
                Bytes::from(bad.to_owned()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {reply:?}");
    }
    assert!(node.metric("fleetcache_purged_entries_total").await >= 6.0);
}

#[tokio::test]
async fn chunked_origin_responses_are_cached() {
    let origin = TestOrigin::start().await;
    let body = pattern(700_000, 5);
    let pieces: Vec<Bytes> = body.chunks(65_536).map(Bytes::copy_from_slice).collect();
    origin.route("/chunked", move |_| {
        Scripted::ok(Bytes::new())
            .header("cache-control", "max-age=300")
            .body(ScriptBody::Chunks(pieces.clone()))
    });
    let node = node_for(&origin, &[]).await;
    let first = node.get("/chunked").await;
    assert_eq!(first.body, body);
    assert!(first.header("content-length").is_none(), "{first:?}");
    node.settle().await;
    let second = node.get("/chunked").await;
    assert_eq!(second.body, body);
    assert_eq!(
        second.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(origin.hits("/chunked"), 1);
}

#[tokio::test]
async fn virtual_hosts_pick_their_origin_and_unknown_hosts_are_404() {
    let shop = TestOrigin::start().await;
    let blog = TestOrigin::start().await;
    shop.route("/", |_| {
        Scripted::ok("shop").header("cache-control", "max-age=60")
    });
    blog.route("/", |_| {
        Scripted::ok("blog").header("cache-control", "max-age=60")
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!(
            "[[origin]]\nurl = \"{}\"\nhost = \"shop.example\"\n\n\
             [[origin]]\nurl = \"{}\"\nhost = \"blog.example\"\n",
            shop.url(),
            blog.url()
        ),
    )
    .unwrap();
    let node = TestNode::start_with_file(file.path(), &[]).await;
    let shop_reply = node.get_with("/", &[("host", "Shop.Example")]).await;
    assert_eq!(&shop_reply.body[..], b"shop");
    let blog_reply = node.get_with("/", &[("host", "blog.example:8080")]).await;
    assert_eq!(&blog_reply.body[..], b"blog");
    let unknown = node.get_with("/", &[("host", "other.example")]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!((shop.hits("/"), blog.hits("/")), (1, 1));
    // Hosts are separate cache keys: the same path is two entries.
    node.settle().await;
    assert_eq!(node.stats().await["store"]["url_entries"], 2);
}

#[tokio::test]
async fn a_url_keeps_a_bounded_number_of_variants() {
    let origin = TestOrigin::start().await;
    origin.route("/many", |seen| {
        Scripted::ok(format!(
            "for {}",
            seen.header("accept-encoding").unwrap_or("-")
        ))
        .header("vary", "accept-encoding")
        .header("cache-control", "max-age=300")
    });
    let node = node_for(&origin, &[]).await;
    for i in 0..40 {
        let value = format!("x-{i}");
        node.get_with("/many", &[("accept-encoding", &value)]).await;
        node.settle().await;
    }
    let entries = node.stats().await["store"]["url_entries"].as_u64().unwrap();
    assert!((1..=32).contains(&entries), "{entries} variants kept");
    // The newest variants stay; the oldest made room.
    let newest = node.get_with("/many", &[("accept-encoding", "x-39")]).await;
    assert!(cache_status(&newest).contains("hit"), "{newest:?}");
    let oldest = node.get_with("/many", &[("accept-encoding", "x-0")]).await;
    assert!(!cache_status(&oldest).contains("hit"), "{oldest:?}");
    assert_eq!(&oldest.body[..], b"for x-0");
}
