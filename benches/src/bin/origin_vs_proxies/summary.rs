//! The printed report: conditions, the table of medians and ratios, notes
//! on what limited the runs, the reproducing command, every run.

use std::time::Duration;

use fleetcache_benches::median;
use fleetcache_benches::procfs::Machine;

use crate::caches::Cache;
use crate::report::{self, ColdRun, HotRun, Row, first_byte, last_byte};
use crate::{Args, Tools};

/// What the report says besides the runs.
#[derive(Debug)]
pub(crate) struct Facts {
    pub(crate) machine: Machine,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) clk_tck: u64,
    pub(crate) clk_source: &'static str,
    /// The cold object straight from the origin, once.
    pub(crate) origin_alone: Option<Duration>,
    /// The origin's per-connection rate limit, bytes/s.
    pub(crate) origin_rate: u64,
    /// Requests for the hot object that reached the origin in all.
    pub(crate) hot_origin_requests: usize,
}

/// Below this share of a core, a process was not what set the pace.
const SATURATED_PERCENT: f64 = 85.0;

pub(crate) fn print(args: &Args, tools: &Tools, facts: &Facts, hot: &[HotRun], cold: &[ColdRun]) {
    let rows = rows(args, hot, cold);
    let m = &facts.machine;
    println!("## Origin mode: fleetcache vs nginx proxy_cache vs Varnish, same origin\n");
    println!(
        "Machine: nproc {}, {}, Linux {}. {}; {}; {}.",
        m.nproc,
        m.cpu_model,
        m.kernel,
        tools.bins.nginx.version,
        tools.bins.varnish.version,
        tools.wrk_version
    );
    println!(
        "Caches pinned to CPU {}; wrk (`-t1`), the cold clients and the origin to CPU {}. Runs \
         alternate fleetcache, nginx, varnish within each of {} rounds; medians across rounds. \
         Server CPU is utime + stime of the cache's process group from `/proc/<pid>/stat` \
         ({} ticks/s, {}). nginx: one process (`master_process off`), `proxy_cache` on disk, \
         `proxy_cache_lock on`, lock timeout and age {} s. Varnish: `varnishd -F`, built-in VCL \
         with objects keyed by URL alone (as nginx's), plus an `X-Cache` header, `-s malloc`. Origin: a separate one-process nginx, files from \
         a temp dir, `Cache-Control: max-age=3600`.",
        args.server_cpu,
        args.client_cpu,
        args.rounds,
        facts.clk_tck,
        facts.clk_source,
        fleetcache_benches::servers::NGINX_LOCK_TIMEOUT_SECS,
    );
    println!(
        "Load average (1/5/15 min) before: {}, after: {}.\n",
        facts.load_before, facts.load_after
    );
    if !hot.is_empty() {
        println!(
            "Hot hits: {} B object, stored by each cache before timing (its second GET said \
             hit); `wrk -t1 -c{} -d{}s --latency`. Requests for it that reached the origin in \
             all: {} (one per cache is the store).",
            crate::HOT_SIZE,
            args.connections,
            args.hot_secs,
            facts.hot_origin_requests
        );
    }
    if !cold.is_empty() {
        println!(
            "Cold object: {} MiB, origin `limit_rate` {} MiB/s per connection ({}); {} clients \
             connect, then send at once; each reads its whole body and checks its length (one \
             also checks its BLAKE3 hash). A fresh query string per run makes every run cold for \
             every cache. First byte = first body byte, measured per client from just before its \
             request went out.",
            args.cold_mib,
            facts.origin_rate / crate::MIB,
            facts.origin_alone.map_or_else(
                || "not timed".to_owned(),
                |d| format!("the whole body alone in {:.2} s", d.as_secs_f64())
            ),
            args.clients,
        );
    }
    println!();
    print!("{}", report::markdown_table(&rows, args.rounds));
    for note in notes(hot, cold) {
        println!("\n{note}");
    }
    println!("\nReproduce:\n\n```sh\n{}\n```\n", args.reproduce());
    println!("<details><summary>Every run</summary>\n");
    if !hot.is_empty() {
        println!("Hot hits:\n\n{}", report::hot_runs_table(hot));
    }
    if !cold.is_empty() {
        println!("Cold object:\n\n{}", report::cold_runs_table(cold));
    }
    println!("</details>");
}

/// How a row reads one value from a run.
type Metric<R> = fn(&R) -> Option<f64>;

fn rows(args: &Args, hot: &[HotRun], cold: &[ColdRun]) -> Vec<Row> {
    let mut rows = Vec::new();
    let a = "4 KiB hot hits";
    #[rustfmt::skip]
    let hot_specs: [(&str, Metric<HotRun>, usize); 7] = [
        ("requests/s", |r| Some(r.sample.load.requests_per_sec), 0),
        ("server CPU µs per request", HotRun::cpu_us_per_request, 2),
        ("server CPU, % of one core", |r| Some(r.server_percent()), 0),
        ("server core busy (anything), %", |r| Some(r.core_percent()), 0),
        ("wrk CPU, % of one core", |r| Some(r.client_percent()), 0),
        ("latency p50 (ms)", |r| r.latency_ms(50.0), 3),
        ("latency p99 (ms)", |r| r.latency_ms(99.0), 3),
    ];
    if !hot.is_empty() {
        for (metric, value, decimals) in hot_specs {
            rows.push(Row::new(a, metric, hot, |r| r.cache, value, decimals));
        }
    }
    let b = "cold object, N clients";
    #[rustfmt::skip]
    let cold_specs: [(&str, Metric<ColdRun>, usize); 9] = [
        ("time to first byte p50 (ms)", |r| r.secs(50.0, first_byte).map(ms), 0),
        ("time to first byte p99 (ms)", |r| r.secs(99.0, first_byte).map(ms), 0),
        ("last byte p50 (ms)", |r| r.secs(50.0, last_byte).map(ms), 0),
        ("last byte p99 (ms)", |r| r.secs(99.0, last_byte).map(ms), 0),
        ("requests the origin saw", |r| Some(r.origin_requests as f64), 0),
        ("server CPU s per run", |r| Some(r.cpu_secs), 2),
        ("server CPU, % of one core", |r| Some(r.server_percent()), 0),
        ("clients CPU, % of one core", |r| Some(r.client_percent()), 0),
        ("stored after the run (1 = HEAD says hit)", |r| Some(f64::from(u8::from(r.stored))), 0),
    ];
    if !cold.is_empty() {
        let b = if (args.clients, args.cold_mib) == (100, 64) {
            "cold 64 MiB × 100 clients"
        } else {
            b
        };
        for (metric, value, decimals) in cold_specs {
            rows.push(Row::new(b, metric, cold, |r| r.cache, value, decimals));
        }
    }
    rows
}

fn ms(secs: f64) -> f64 {
    secs * 1e3
}

/// The median per cache of `f` over `runs`.
fn medians<R>(runs: &[R], cache_of: fn(&R) -> Cache, f: fn(&R) -> f64) -> [Option<f64>; 3] {
    Cache::ALL.map(|cache| {
        let values: Vec<f64> = runs
            .iter()
            .filter(|r| cache_of(r) == cache)
            .map(f)
            .collect();
        median(&values)
    })
}

/// What set the pace of the runs, and anything odd.
fn notes(hot: &[HotRun], cold: &[ColdRun]) -> Vec<String> {
    let mut notes = Vec::new();
    if !hot.is_empty() {
        let server = medians(hot, |r| r.cache, HotRun::server_percent);
        let client = medians(hot, |r| r.cache, HotRun::client_percent);
        let core = medians(hot, |r| r.cache, HotRun::core_percent);
        let verdicts: Vec<String> = Cache::ALL
            .iter()
            .enumerate()
            .filter_map(|(i, cache)| {
                let (server, client, core) = (server[i]?, client[i]?, core[i]?);
                let name = cache.name();
                let others = (core - server).max(0.0);
                Some(if server >= SATURATED_PERCENT {
                    format!("{name} CPU-bound ({server:.0}% of its core)")
                } else if client >= SATURATED_PERCENT {
                    format!("{name} client-bound (wrk {client:.0}%, {name} {server:.0}%)")
                } else if others >= 100.0 - SATURATED_PERCENT {
                    format!(
                        "{name} shared its core with other work ({others:.0}% of it; {name} \
                         {server:.0}%, wrk {client:.0}%)"
                    )
                } else {
                    format!("{name} neither CPU- nor client-bound ({name} {server:.0}%, wrk {client:.0}%)")
                })
            })
            .collect();
        notes.push(format!(
            "Hot hits: {}. Requests/s compares the caches only where they were CPU-bound; CPU \
             per request compares like with like either way.",
            verdicts.join("; ")
        ));
        let shared: Vec<String> = hot
            .iter()
            .filter(|r| r.core_percent() - r.server_percent() >= 100.0 - SATURATED_PERCENT)
            .map(|r| {
                format!(
                    "round {} {} ({:.0}% of the core went to other work)",
                    r.round + 1,
                    r.cache.name(),
                    r.core_percent() - r.server_percent()
                )
            })
            .collect();
        if !shared.is_empty() {
            notes.push(format!(
                "Hot runs that shared the caches' core with other processes (their requests/s \
                 is low for reasons outside the cache): {}.",
                shared.join("; ")
            ));
        }
    }
    if !cold.is_empty() {
        let server = medians(cold, |r| r.cache, ColdRun::server_percent);
        let client = medians(cold, |r| r.cache, ColdRun::client_percent);
        let bound: Vec<String> = Cache::ALL
            .iter()
            .enumerate()
            .filter_map(|(i, cache)| {
                let (server, client) = (server[i]?, client[i]?);
                let name = cache.name();
                if server >= SATURATED_PERCENT {
                    Some(format!("{name}'s core was saturated ({server:.0}%)"))
                } else if client >= SATURATED_PERCENT {
                    Some(format!(
                        "the clients' core was saturated during {name}'s runs ({client:.0}%)"
                    ))
                } else {
                    None
                }
            })
            .collect();
        if !bound.is_empty() {
            notes.push(format!(
                "Cold object: {}; the last-byte times there are limited by that core, not by the \
                 origin.",
                bound.join("; ")
            ));
        }
    }
    let unstored: Vec<String> = cold
        .iter()
        .filter(|r| !r.stored)
        .map(|r| format!("{} round {}", r.cache.name(), r.round + 1))
        .collect();
    if !unstored.is_empty() {
        notes.push(format!(
            "Cold object not stored (a HEAD after the run was not a hit): {}.",
            unstored.join(", ")
        ));
    }
    notes
}
