//! The printed report: the README table of medians and ratios (with the
//! HTTP/3 rows that are not measured yet), the conditions of the run, what
//! each protocol negotiated, the command that reproduces it, every run.

use fleetcache_benches::versus::{self, Conditions, Measured, Metric, Row, Run, Tools, Which};

use crate::{Args, H3_NOT_MEASURED, Scenario};

/// A table row to build: metric, value, decimals.
type RowSpec = (&'static str, Metric, usize);

/// Rows of a 4 KiB hot-hit scenario.
const SMALL_ROWS: [RowSpec; 5] = [
    ("requests/s", |r| Some(r.load().requests_per_sec), 0),
    ("server CPU µs per request", Run::cpu_us_per_request, 2),
    (
        "server CPU, % of one core",
        |r| Some(r.cpu_busy_percent()),
        0,
    ),
    (
        "h2load CPU, % of one core",
        |r| Some(r.client_busy_percent()),
        0,
    ),
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
    (
        "h2load CPU, % of one core",
        |r| Some(r.client_busy_percent()),
        0,
    ),
    ("peak RSS (MiB)", |r| Some(r.peak_rss_mib()), 1),
];

pub(crate) fn print_report(
    args: &Args,
    tools: &Tools,
    conditions: &Conditions,
    scenarios: &[Scenario],
    results: &[Vec<Run>],
) {
    let mut rows = Vec::new();
    for (scenario, runs) in scenarios.iter().zip(results) {
        let specs = if scenario.large() {
            &LARGE_ROWS
        } else {
            &SMALL_ROWS
        };
        rows.extend(specs.iter().map(|&(metric, value, decimals)| {
            Row::new(scenario.label.as_str(), metric, runs, value, decimals, None)
        }));
    }
    // The HTTP/3 hook: rows without numbers until h3 is measured.
    for what in ["4 KiB hot hits", "256 MiB"] {
        rows.push(Row {
            scenario: format!("{what}, h3"),
            metric: "not measured: no HTTP/3 load generator or nginx here (see below)",
            fleetcache: None,
            nginx: None,
            decimals: 0,
            target: None,
        });
    }

    println!("## HTTPS: fleetcache vs nginx on loopback\n");
    println!("{}", conditions.machine_line(&tools.versions()));
    println!(
        "{} Both servers present the same self-signed ECDSA P-256 certificate and offer TLS 1.2 \
         and 1.3 with ALPN h2 and http/1.1. nginx: one process, `sendfile on` (unused under TLS \
         without kTLS), files from disk. MB = 10⁶ bytes of HTTP (after TLS).\n",
        conditions.method(&args.common, "h2load")
    );
    println!("{}\n", conditions.load_sentence());
    print!("{}", versus::markdown_table(&rows));
    println!("\n{H3_NOT_MEASURED}.");
    println!("\nNegotiated (h2load's first connection, per scenario and server):");
    for (scenario, runs) in scenarios.iter().zip(results) {
        for which in [Which::Fleetcache, Which::Nginx] {
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
            generator: &scenario.h2load,
            runs,
        })
        .collect();
    versus::print_closing(&measured, &args.reproduce());
}
