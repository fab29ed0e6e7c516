//! The deployment's Grafana dashboard and Prometheus alert rules query only
//! metrics a node exports: every metric name in their PromQL must appear as a
//! `# TYPE` line in the `/metrics` of a real fleet that has served hits, misses,
//! peer and owner fills, origin fetches and a purge (labelled series exist only
//! once something was counted under a label).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::origin_server::{Scripted, TestOrigin};
use crate::support::{Fleet, TestNode, eventually, pattern};

const DASHBOARD: &str = include_str!("../../../deploy/grafana/fleetcache.json");
const ALERTS: &str = include_str!("../../../deploy/prometheus/alerts.yml");

/// Series Prometheus makes itself rather than scraping them.
const PROMETHEUS_OWN: &[&str] = &["up"];

/// PromQL words that are never metric names: aggregators, operators, modifiers
/// and literals. Functions are recognised by the `(` after them.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "start",
    "end",
    "atan2",
    "inf",
    "nan",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects: identifiers outside label
/// matchers (`{…}`), ranges (`[…]`), strings, label lists (`by (…)`), that are
/// not functions (followed by `(`) or keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Skips from an opening delimiter to its closing one, strings included.
    let skip_to = |mut i: usize, close: char| -> usize {
        while i < chars.len() && chars[i] != close {
            if matches!(chars[i], '"' | '\'' | '`') {
                i = skip_string(&chars, i);
            } else {
                i += 1;
            }
        }
        i + 1
    };
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(&chars, i);
        } else if c == '{' {
            i = skip_to(i + 1, '}');
        } else if c == '[' {
            i = skip_to(i + 1, ']');
        } else if c == '#' {
            // A comment runs to the end of the line.
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == '.' || c == '$' {
            // A number, a duration (`1d`, `0.5`, `1e3`) or a dashboard variable.
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_')
            {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let call = chars.get(next) == Some(&'(');
            if LABEL_LISTS.contains(&word.as_str()) {
                if call {
                    i = skip_to(next + 1, ')');
                }
            } else if !call && !KEYWORDS.contains(&word.as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The index just past the string literal starting at `i`.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    let quote = chars[i];
    i += 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// Every PromQL expression of the dashboard: panel targets, and the metric
/// selector of `label_values(…)` variable queries.
fn dashboard_exprs(json: &str) -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                        ("query" | "definition", serde_json::Value::String(q)) => {
                            if let Some(args) = q
                                .trim()
                                .strip_prefix("label_values(")
                                .and_then(|a| a.strip_suffix(')'))
                            {
                                // label_values(selector, label): the label is no metric.
                                let selector = args.rsplit_once(',').map_or(args, |(s, _)| s);
                                out.push(selector.to_owned());
                            }
                        }
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(json).expect("dashboard is JSON");
    let mut out = Vec::new();
    walk(&dashboard, &mut out);
    out
}

/// Every `expr:` of a Prometheus rule file, single-line or a block scalar
/// (`expr: |` followed by more indented lines).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        i += 1;
        let Some(value) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let mut block = String::new();
            while i < lines.len()
                && (lines[i].trim().is_empty()
                    || lines[i].len() - lines[i].trim_start().len() > indent)
            {
                block.push_str(lines[i].trim());
                block.push('\n');
                i += 1;
            }
            out.push(block);
        } else {
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            out.push(unquoted.to_owned());
        }
    }
    out
}

/// Metric names and types from `# TYPE name type` lines.
fn exported_types(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

/// The names among `queried` that no exported metric provides: a histogram is
/// queried through its `_bucket`, `_sum` and `_count` series, never by its bare name.
fn unexported(queried: &BTreeSet<String>, types: &BTreeMap<String, String>) -> Vec<String> {
    let histogram_part = |name: &str| {
        ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix).is_some_and(|base| {
                matches!(
                    types.get(base).map(String::as_str),
                    Some("histogram") | Some("summary")
                ) && (*suffix != "_bucket" || types[base] == "histogram")
            })
        })
    };
    queried
        .iter()
        .filter(|name| !PROMETHEUS_OWN.contains(&name.as_str()))
        .filter(|name| match types.get(name.as_str()).map(String::as_str) {
            Some("histogram" | "summary") => true,
            Some(_) => false,
            None => !histogram_part(name),
        })
        .cloned()
        .collect()
}

#[test]
fn metric_names_skip_functions_labels_keywords_and_literals() {
    let expr = r#"histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{route=~"blob|url", x='}'}[5m] offset 1d)))
        / on(instance) group_left(peer) b_total and 1 - max without (peer) (c:recorded) > bool 0.5e3
        or sum(rate(d[$__rate_interval])) unless e{instance=~"$instance"}"#;
    let names: Vec<String> = metric_names(expr).into_iter().collect();
    assert_eq!(names, ["a_bucket", "b_total", "c:recorded", "d", "e"]);

    let types = BTreeMap::from([
        ("a".to_owned(), "histogram".to_owned()),
        ("b_total".to_owned(), "counter".to_owned()),
        ("s".to_owned(), "summary".to_owned()),
    ]);
    let queried: BTreeSet<String> = [
        "a_bucket",
        "a_sum",
        "a_count",
        "a",
        "b_total",
        "b_total_bucket",
        "s_sum",
        "s_bucket",
        "up",
        "fleetcache_no_such_metric_total",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(
        unexported(&queried, &types),
        [
            "a",
            "b_total_bucket",
            "fleetcache_no_such_metric_total",
            "s_bucket"
        ]
    );
}

#[test]
fn rule_exprs_reads_single_line_and_block_expressions() {
    let yaml = "groups:\n  - rules:\n      - alert: A\n        expr: up == 0\n        for: 1m\n      - alert: B\n        expr: |\n          x_total\n          / y\n        labels: {}\n      - alert: C\n        expr: \"z > 1\"\n";
    assert_eq!(rule_exprs(yaml), ["up == 0", "x_total\n/ y\n", "z > 1"]);
}

/// Fleet members in front of the origin, all addressed with one Host so that
/// every node agrees on each URL's owner.
const HOST: &str = "cdn.test";

async fn admin_post(node: &TestNode, path: &str, body: &str) -> serde_json::Value {
    let reply = node
        .request(
            Method::POST,
            &node.admin_url(path),
            &[("content-type", "application/json")],
            Bytes::from(body.to_owned()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_alerts_query_is_exported() {
    let mut queried = BTreeSet::new();
    let mut exprs = dashboard_exprs(DASHBOARD);
    let panels = exprs.len();
    exprs.extend(rule_exprs(ALERTS));
    assert!(panels >= 20, "only {panels} dashboard expressions found");
    assert!(exprs.len() > panels + 5, "alert rule expressions not found");
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric found in {expr:?}");
        queried.extend(names);
    }

    // Two fleet members in front of one origin.
    let origin = TestOrigin::start().await;
    for i in 0..8 {
        origin.route(&format!("/u/{i}"), move |seen| {
            Scripted::ok(format!("url {i} {}", seen.n)).header("cache-control", "max-age=300")
        });
    }
    let url = origin.url();
    let mut fleet = Fleet::new();
    // HTTPS on, so its certificate metrics exist (the expiry alert reads them).
    let mut ca = crate::tls_support::TestCa::new();
    let issued = ca.issue(&["localhost"]);
    let (cert, key) = (
        issued.cert.display().to_string(),
        issued.key.display().to_string(),
    );
    let env = [
        ("FLEETCACHE_ORIGIN", url.as_str()),
        ("FLEETCACHE_HTTP_TLS_CERT_FILE", cert.as_str()),
        ("FLEETCACHE_HTTP_TLS_KEY_FILE", key.as_str()),
    ];
    let a = TestNode::start_in_fleet_with(&mut fleet, &[], &env).await;
    let b = TestNode::start_in_fleet_with(&mut fleet, &[a.swarm.unwrap()], &env).await;
    a.wait_peers_up(1).await;
    b.wait_peers_up(1).await;
    for node in [&a, &b] {
        eventually("a ping answered", Duration::from_secs(15), async || {
            node.metrics()
                .await
                .contains("fleetcache_peer_rtt_seconds{")
        })
        .await;
    }

    // By hash: a miss filled from the peer, then a hit, and a miss nobody can fill.
    let data = pattern(300_000, 9);
    let hash = a.put(data.clone()).await;
    let filled = b.get(&format!("/blake3/{hash}")).await;
    assert_eq!(filled.status, StatusCode::OK);
    assert_eq!(filled.body.len(), data.len());
    b.settle().await;
    assert_eq!(
        b.get(&format!("/blake3/{hash}")).await.status,
        StatusCode::OK
    );
    let absent = "0".repeat(64);
    assert_eq!(
        b.get(&format!("/blake3/{absent}")).await.status,
        StatusCode::NOT_FOUND
    );

    // By URL on both nodes: each URL's owner fetches it from the origin, the
    // other node asks the owner; then hits.
    for i in 0..8 {
        for node in [&a, &b] {
            let reply = node.get_with(&format!("/u/{i}"), &[("host", HOST)]).await;
            assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
            node.settle().await;
        }
    }
    for node in [&a, &b] {
        node.get_with("/u/0", &[("host", HOST)]).await;
    }
    // A purge, pushed to the peer.
    admin_post(&a, "/purge", "{\"urls\": [\"/u/1\"]}").await;
    eventually(
        "the purge reaches the peer",
        Duration::from_secs(15),
        async || {
            b.metric("fleetcache_fleet_purges_applied_total{via=\"push\"}")
                .await
                >= 1.0
        },
    )
    .await;

    let mut types = BTreeMap::new();
    for node in [&a, &b] {
        types.extend(exported_types(&node.metrics().await));
    }
    let missing = unexported(&queried, &types);
    assert!(
        missing.is_empty(),
        "deploy/grafana/fleetcache.json or deploy/prometheus/alerts.yml query metrics the \
         nodes do not export: {missing:?}\nexported: {:?}",
        types.keys().collect::<Vec<_>>()
    );
    a.stop().await;
    b.stop().await;
}
