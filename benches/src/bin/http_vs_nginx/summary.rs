//! The printed report: the README table of medians and ratios, the
//! conditions of the run, the command that reproduces it, every run.

use fleetcache_benches::versus::{self, Conditions, Measured, Metric, Row, Run, Target, Tools};

use crate::{Args, Scenario};

/// A table row to build: scenario, metric, runs, value, decimals, target.
type RowSpec<'a> = (
    &'static str,
    &'static str,
    &'a [Run],
    Metric,
    usize,
    Option<Target>,
);

pub(crate) fn print_report(
    args: &Args,
    tools: &Tools,
    conditions: &Conditions,
    scenarios: &[Scenario],
    results: &[Vec<Run>],
) {
    let (small, large) = match results {
        [small, large] => (small.as_slice(), large.as_slice()),
        _ => (&[][..], &[][..]),
    };
    let a = "4 KiB hot hits, 64 conns";
    let b = "256 MiB, 16 conns";
    let rps: Metric = |r| Some(r.load().requests_per_sec);
    let server_busy: Metric = |r| Some(r.cpu_busy_percent());
    let client_busy: Metric = |r| Some(r.client_busy_percent());
    let rss: Metric = |r| Some(r.peak_rss_mib());
    let at_most = Some(Target::RatioAtMost(1.25));
    let at_least = Some(Target::RatioAtLeast(0.8));
    let below = Some(Target::FleetcacheBelow(64.0, "64 MiB"));
    #[rustfmt::skip]
    let specs: [RowSpec<'_>; 13] = [
        (a, "requests/s", small, rps, 0, None),
        (a, "server CPU µs per request", small, |r| r.cpu_us_per_request(), 2, at_most),
        (a, "server CPU, % of one core", small, server_busy, 0, None),
        (a, "wrk CPU, % of one core", small, client_busy, 0, None),
        (a, "latency p50 (ms)", small, |r| r.load().latency_at(50.0).map(|us| us / 1e3), 3, None),
        (a, "latency p99 (ms)", small, |r| r.load().latency_at(99.0).map(|us| us / 1e3), 3, None),
        (a, "peak RSS (MiB)", small, rss, 1, None),
        (b, "throughput (MiB/s)", large, |r| Some(r.mib_per_sec()), 0, at_least),
        (b, "requests/s", large, rps, 2, None),
        (b, "server CPU ms per GiB", large, |r| Some(r.cpu_ms_per_gib()), 1, None),
        (b, "server CPU, % of one core", large, server_busy, 0, None),
        (b, "wrk CPU, % of one core", large, client_busy, 0, None),
        (b, "peak RSS (MiB)", large, rss, 1, below),
    ];
    let rows: Vec<Row> = specs
        .into_iter()
        .map(|(scenario, metric, runs, value, decimals, target)| {
            Row::new(scenario, metric, runs, value, decimals, target)
        })
        .collect();

    println!("## HTTP: fleetcache vs nginx on loopback\n");
    println!("{}", conditions.machine_line(&tools.versions()));
    println!(
        "{} nginx: one process, `sendfile on`, files from disk.\n",
        conditions.method(&args.common, "wrk")
    );
    println!("{}\n", conditions.load_sentence());
    print!("{}", versus::markdown_table(&rows));
    if let Some(verdict) = versus::verdict_line(&rows) {
        println!("\n{verdict}");
    }
    let measured: Vec<Measured<'_>> = scenarios
        .iter()
        .zip(results)
        .map(|(scenario, runs)| Measured {
            label: scenario.label,
            generator: &scenario.wrk,
            runs,
        })
        .collect();
    versus::print_closing(&measured, &args.reproduce());
}
