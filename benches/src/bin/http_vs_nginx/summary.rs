//! The printed report: the README table of medians and ratios, the
//! conditions of the run, the command that reproduces it, every run.

use std::ffi::OsStr;

use fleetcache_benches::median;
use fleetcache_benches::procfs::Machine;

use crate::report::{self, Row, Run, Target, Which};
use crate::{Args, Scenario, Tools};
use fleetcache_benches::meter::RSS_SAMPLE_INTERVAL;

/// How a table row reads one value from a run.
type Metric = fn(&Run) -> Option<f64>;

/// A table row to build: scenario, metric, runs, value, decimals, target.
type RowSpec<'a> = (
    &'static str,
    &'static str,
    &'a [Run],
    Metric,
    usize,
    Option<Target>,
);

/// Load averages around the whole benchmark: how busy the shared machine
/// was (the benchmark itself keeps about two cores busy).
#[derive(Debug)]
pub(crate) struct Load {
    pub(crate) before: String,
    pub(crate) after: String,
}

pub(crate) fn print_report(
    args: &Args,
    tools: &Tools,
    machine: &Machine,
    load: &Load,
    (clk_tck, clk_source): (u64, &str),
    scenarios: &[Scenario],
    results: &[Vec<Run>],
) {
    let (small, large) = match results {
        [small, large] => (small.as_slice(), large.as_slice()),
        _ => (&[][..], &[][..]),
    };
    let a = "4 KiB hot hits, 64 conns";
    let b = "256 MiB, 16 conns";
    let rps: Metric = |r| Some(r.wrk.requests_per_sec);
    let server_busy: Metric = |r| Some(r.cpu_busy_percent());
    let client_busy: Metric = |r| Some(r.client_busy_percent());
    let rss: Metric = |r| Some(report::mib(r.peak_rss));
    let at_most = Some(Target::RatioAtMost(1.25));
    let at_least = Some(Target::RatioAtLeast(0.8));
    let below = Some(Target::FleetcacheBelow(64.0, "64 MiB"));
    #[rustfmt::skip]
    let specs: [RowSpec<'_>; 13] = [
        (a, "requests/s", small, rps, 0, None),
        (a, "server CPU µs per request", small, |r| r.cpu_us_per_request(), 2, at_most),
        (a, "server CPU, % of one core", small, server_busy, 0, None),
        (a, "wrk CPU, % of one core", small, client_busy, 0, None),
        (a, "latency p50 (ms)", small, |r| r.wrk.latency_at(50.0).map(|us| us / 1e3), 3, None),
        (a, "latency p99 (ms)", small, |r| r.wrk.latency_at(99.0).map(|us| us / 1e3), 3, None),
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
    println!(
        "Machine: nproc {}, {}, Linux {}. {}; {}.",
        machine.nproc, machine.cpu_model, machine.kernel, tools.nginx.version, tools.wrk_version
    );
    println!(
        "Servers pinned to CPU {}, wrk (`-t1`) to CPU {}. Medians of {} rounds per scenario; \
         each round runs both servers, alternating which goes first. Server CPU is utime + stime \
         from `/proc/<pid>/stat` over each wrk run ({clk_tck} ticks/s, {clk_source}); RSS is \
         VmRSS sampled every {} ms. nginx: one process, `sendfile on`, files from disk.\n",
        args.server_cpu,
        args.client_cpu,
        args.rounds,
        RSS_SAMPLE_INTERVAL.as_millis()
    );
    println!(
        "Load average (1/5/15 min) before: {}, after: {}. Numbers from a busy machine are noisy; \
         CPU per request is the steadiest of them.\n",
        load.before, load.after
    );
    print!("{}", report::markdown_table(&rows));
    let missed: Vec<String> = rows
        .iter()
        .filter(|r| r.verdict() == Some(false))
        .map(|r| format!("{}: {}", r.scenario, r.metric))
        .collect();
    if missed.is_empty() {
        println!("\nAll targets met.");
    } else {
        println!("\nTargets missed: {}.", missed.join("; "));
    }
    for (scenario, runs) in scenarios.iter().zip(results) {
        if let Some(note) = bottleneck_note(scenario.label, runs) {
            println!("\n{note}");
        }
    }
    println!("\nReproduce:\n\n```sh\n{}\n```\n", args.reproduce());
    println!("<details><summary>Every run</summary>\n");
    for (scenario, runs) in scenarios.iter().zip(results) {
        let command = scenario.wrk.argv("URL").join(" ");
        println!(
            "{}",
            report::raw_table(&format!("{} (`{command}`)", scenario.label), runs)
        );
    }
    println!("</details>");
    let ran_as: Vec<String> = std::env::args_os()
        .map(|a| OsStr::to_string_lossy(&a).into_owned())
        .collect();
    eprintln!("\nran as: {}", ran_as.join(" "));
}

/// Below this share of a core, a process was not what set the pace.
const SATURATED_PERCENT: f64 = 85.0;

/// Says what limited each server's runs when not both were CPU-bound: the
/// rate ratios compare the servers only when the servers set the rate.
fn bottleneck_note(scenario: &str, runs: &[Run]) -> Option<String> {
    let med = |which: Which, f: fn(&Run) -> f64| {
        let values: Vec<f64> = runs.iter().filter(|r| r.server == which).map(f).collect();
        median(&values).unwrap_or(f64::NAN)
    };
    let verdict = |which: Which| -> (bool, String) {
        let name = which.name();
        let server = med(which, Run::cpu_busy_percent);
        let client = med(which, Run::client_busy_percent);
        let others = med(which, Run::server_core_others_percent);
        if server >= SATURATED_PERCENT {
            (
                true,
                format!("{name} was CPU-bound ({server:.0}% of its core)"),
            )
        } else if client >= SATURATED_PERCENT {
            (
                false,
                format!(
                    "{name} was client-bound (wrk at {client:.0}% of its core, {name} at \
                     {server:.0}%)"
                ),
            )
        } else if others >= 100.0 - SATURATED_PERCENT {
            (
                false,
                format!(
                    "{name} shared its core with other work ({others:.0}% of it; {name} \
                     {server:.0}%, wrk {client:.0}%)"
                ),
            )
        } else {
            (
                false,
                format!(
                    "{name} was neither CPU- nor client-bound ({name} {server:.0}%, wrk \
                     {client:.0}%): latency, scheduling or steal set the rate"
                ),
            )
        }
    };
    let (fc_bound, fc) = verdict(Which::Fleetcache);
    let (ng_bound, ng) = verdict(Which::Nginx);
    if fc_bound && ng_bound {
        return None;
    }
    Some(format!(
        "Note ({scenario}): {fc}; {ng}. Rate ratios (req/s, MiB/s) compare the servers only \
         when both are CPU-bound; CPU per request / per GiB compares like with like either way."
    ))
}
