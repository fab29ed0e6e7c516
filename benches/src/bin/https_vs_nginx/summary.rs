//! The printed report: the README table of medians and ratios (the HTTP/3
//! rows fleetcache's alone, compared with its own HTTP/2), the conditions
//! of the run, what each protocol negotiated, whether h3load kept up, the
//! command that reproduces it, every run.

use fleetcache_benches::https::Protocol;
use fleetcache_benches::median;
use fleetcache_benches::versus::{
    self, Conditions, Instead, Measured, Metric, Row, Run, Tools, Which,
};

use crate::{Args, NO_QUIC, Scenario};

/// A table row to build: metric, value, decimals.
type RowSpec = (&'static str, Metric, usize);

/// The load generator's CPU row; its label names the generator.
const CLIENT_CPU: &str = "client CPU, % of one core";

/// Rows of a 4 KiB hot-hit scenario.
const SMALL_ROWS: [RowSpec; 5] = [
    ("requests/s", |r| Some(r.load().requests_per_sec), 0),
    ("server CPU µs per request", Run::cpu_us_per_request, 2),
    (
        "server CPU, % of one core",
        |r| Some(r.cpu_busy_percent()),
        0,
    ),
    (CLIENT_CPU, |r| Some(r.client_busy_percent()), 0),
    (
        "latency mean (ms)",
        |r| r.load().latency_mean_us.map(|us| us / 1e3),
        2,
    ),
];

/// Rows of a 256 MiB scenario.
const LARGE_ROWS: [RowSpec; 5] = [
    ("throughput (MB/s)", |r| Some(r.mb_per_sec()), 0),
    ("server CPU ms per GiB", |r| Some(r.cpu_ms_per_gib()), 0),
    (
        "server CPU, % of one core",
        |r| Some(r.cpu_busy_percent()),
        0,
    ),
    (CLIENT_CPU, |r| Some(r.client_busy_percent()), 0),
    ("peak RSS (MiB)", |r| Some(r.peak_rss_mib()), 1),
];

/// Below this share of its core the load generator did not set the pace.
const CLIENT_SATURATED_PERCENT: f64 = 85.0;

/// The metric label for a scenario: the client CPU row names its generator.
fn metric_label(scenario: &Scenario, metric: &'static str) -> &'static str {
    match (metric, scenario.protocol) {
        (CLIENT_CPU, Protocol::Http3) => "h3load CPU, % of one core",
        (CLIENT_CPU, _) => "h2load CPU, % of one core",
        (metric, _) => metric,
    }
}

/// fleetcache's median of `value` over `runs`.
fn fleetcache_median(runs: &[Run], value: Metric) -> Option<f64> {
    let values: Vec<f64> = runs
        .iter()
        .filter(|r| r.server == Which::Fleetcache)
        .filter_map(value)
        .collect();
    median(&values)
}

/// The table rows: every scenario's metrics; in the h3 rows nginx's cells
/// say why they are empty and the ratio is to fleetcache's h2 figure of the
/// same object and rounds.
fn rows(scenarios: &[Scenario], results: &[Vec<Run>]) -> Vec<Row> {
    let mut rows = Vec::new();
    for (scenario, runs) in scenarios.iter().zip(results) {
        let specs = if scenario.large() {
            &LARGE_ROWS
        } else {
            &SMALL_ROWS
        };
        let h2_runs = (scenario.protocol == Protocol::Http3)
            .then(|| {
                scenarios
                    .iter()
                    .zip(results)
                    .find(|(s, _)| s.protocol == Protocol::Http2 && s.large() == scenario.large())
                    .map(|(_, runs)| runs.as_slice())
            })
            .flatten();
        rows.extend(specs.iter().map(|&(metric, value, decimals)| {
            let label = metric_label(scenario, metric);
            let row = Row::new(scenario.label.as_str(), label, runs, value, decimals, None);
            match scenario.protocol {
                Protocol::Http3 => row.instead(Instead {
                    nginx: NO_QUIC,
                    against: "fleetcache h2".to_owned(),
                    value: h2_runs.and_then(|runs| fleetcache_median(runs, value)),
                }),
                _ => row,
            }
        }));
    }
    rows
}

/// The cipher suite in a negotiated line (`TLSv1.3 <suite> <alpn>`).
fn suite(negotiated: &str) -> Option<&str> {
    negotiated.split_whitespace().nth(1)
}

/// fleetcache's negotiated line in a scenario's first run.
fn fleetcache_negotiated(runs: &[Run]) -> Option<&str> {
    runs.iter()
        .find(|r| r.server == Which::Fleetcache)
        .and_then(|r| r.load().negotiated.as_deref())
}

/// Whether h2 and h3 used the same cipher suite with fleetcache, in words.
fn suites_sentence(scenarios: &[Scenario], results: &[Vec<Run>]) -> String {
    let of = |protocol: Protocol| -> Vec<&str> {
        scenarios
            .iter()
            .zip(results)
            .filter(|(s, _)| s.protocol == protocol)
            .filter_map(|(_, runs)| fleetcache_negotiated(runs).and_then(suite))
            .collect()
    };
    let (h2, h3) = (of(Protocol::Http2), of(Protocol::Http3));
    match (h2.first(), h3.first()) {
        (Some(a), Some(b)) if h2.iter().chain(&h3).all(|s| s == a) && a == b => format!(
            "h2 (h2load) and h3 (h3load) used the same TLS 1.3 cipher suite with fleetcache, {a}."
        ),
        _ => format!(
            "Warning: h2 and h3 used different cipher suites with fleetcache (h2: {h2:?}, h3: \
             {h3:?}), so their CPU figures differ by that too."
        ),
    }
}

/// Says, per h3 scenario, whether h3load kept up or set the pace itself,
/// and how many UDP datagrams the kernel dropped (each one a QUIC loss:
/// a retransmission and a smaller congestion window).
fn h3load_sentences(scenarios: &[Scenario], results: &[Vec<Run>]) -> Vec<String> {
    scenarios
        .iter()
        .zip(results)
        .filter(|(s, _)| s.protocol == Protocol::Http3)
        .map(|(scenario, runs)| {
            let client = fleetcache_median(runs, |r| Some(r.client_busy_percent()));
            let server = fleetcache_median(runs, |r| Some(r.cpu_busy_percent()));
            let (client, server) = (client.unwrap_or(f64::NAN), server.unwrap_or(f64::NAN));
            let pace = if client >= CLIENT_SATURATED_PERCENT {
                format!(
                    "h3load saturated its core ({client:.0}%, fleetcache {server:.0}%): the figure \
                     is client-bound, a floor for fleetcache's rate; its CPU per request / per GiB \
                     still holds"
                )
            } else {
                format!(
                    "h3load used {client:.0}% of its core (fleetcache {server:.0}% of its own): \
                     the client was not the bottleneck"
                )
            };
            let drops: Vec<String> = runs
                .iter()
                .map(|r| {
                    r.load()
                        .udp_drops
                        .map_or_else(|| "?".to_owned(), |n| n.to_string())
                })
                .collect();
            format!(
                "{}: {pace}. UDP datagrams dropped for want of socket receive-buffer room \
                 (machine-wide, per run): {}.",
                scenario.label,
                drops.join(", ")
            )
        })
        .collect()
}

pub(crate) fn print_report(
    args: &Args,
    tools: &Tools,
    conditions: &Conditions,
    scenarios: &[Scenario],
    results: &[Vec<Run>],
) {
    let rows = rows(scenarios, results);
    println!("## HTTPS: fleetcache vs nginx on loopback\n");
    println!(
        "{}",
        conditions.machine_line(&format!(
            "{}; {}",
            tools.versions(),
            fleetcache_benches::h3load::VERSION
        ))
    );
    println!(
        "{} Both servers present the same self-signed ECDSA P-256 certificate and offer TLS 1.2 \
         and 1.3 with ALPN h2 and http/1.1. nginx: one process, `sendfile on` (unused under TLS \
         without kTLS), files from disk. MB = 10⁶ bytes of HTTP (after TLS). All protocols of \
         one object share their rounds.\n",
        conditions.method(&args.common, "h2load")
    );
    println!("{}\n", conditions.load_sentence());
    print!("{}", versus::markdown_table(&rows));
    println!(
        "\nh3 rows: fleetcache alone, over QUIC on the HTTPS port number (UDP), loaded by \
         h3load, this benchmark's own generator (its hidden `h3load` subcommand: quinn + h3, \
         one thread pinned to CPU {} as h2load is, a UDP socket per connection, every response \
         checked for status 200 and its length), because Debian's h2load (nghttp2 1.52) has no HTTP/3 and \
         Debian's nginx 1.22 no QUIC (nginx 1.25+). Their nginx cells say so, and their last \
         column is not a ratio to nginx but to fleetcache's own HTTP/2 figure of the same \
         object in the same rounds (h3 / h2). h3's MB count body bytes only (h2load's count \
         HTTP/2 frame and header bytes too, a few per mille at 256 MiB).",
        args.common.client_cpu
    );
    println!("\n{}", suites_sentence(scenarios, results));
    for sentence in h3load_sentences(scenarios, results) {
        println!("\n{sentence}");
    }
    println!("\nNegotiated (the load generator's first connection, per scenario and server):");
    for (scenario, runs) in scenarios.iter().zip(results) {
        for which in [Which::Fleetcache, Which::Nginx] {
            if !runs.iter().any(|r| r.server == which) {
                continue;
            }
            let negotiated = runs
                .iter()
                .find(|r| r.server == which)
                .and_then(|r| r.load().negotiated.as_deref())
                .unwrap_or("?");
            println!("- {}, {}: {negotiated}", scenario.label, which.name());
        }
    }
    let measured: Vec<Measured<'_>> = scenarios
        .iter()
        .zip(results)
        .map(|(scenario, runs)| Measured {
            label: &scenario.label,
            generator: scenario.generator.as_ref(),
            runs,
        })
        .collect();
    versus::print_closing(&measured, &args.reproduce());
}
