//! The printed report: conditions, the table of medians and the ratio,
//! notes on what limited the runs, the reproducing command, every run.

use std::time::Duration;

use fleetcache_benches::median;
use fleetcache_benches::procfs::Machine;
use fleetcache_benches::servers::NGINX_LOCK_TIMEOUT_SECS;

use crate::cluster::Side;
use crate::report::{self, Row, Run, first_byte, last_byte};
use crate::{Args, Tools};

/// What the report says besides the runs.
#[derive(Debug)]
pub(crate) struct Facts {
    pub(crate) machine: Machine,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) clk_tck: u64,
    pub(crate) clk_source: &'static str,
    /// The object straight from the origin, once.
    pub(crate) origin_alone: Duration,
}

/// Above this share of a core, that core set the pace.
const SATURATED_PERCENT: f64 = 85.0;

pub(crate) fn print(args: &Args, tools: &Tools, facts: &Facts, runs: &[Run]) {
    let m = &facts.machine;
    let n = args.nodes;
    println!(
        "## Cold stampede: {n} fleetcache nodes (a fleet) vs {n} nginx proxy_cache nodes, same origin\n"
    );
    println!(
        "Machine: nproc {}, {}, Linux {}. {}; {}.",
        m.nproc, m.cpu_model, m.kernel, tools.fleetcache_version, tools.nginx.version,
    );
    println!(
        "Object: {} of random bytes; origin: a separate one-process nginx, `Cache-Control: \
         max-age=3600`, `limit_rate` {} bytes/s per connection (the whole body alone in {:.2} s). \
         Each run: {} clients, spread evenly over the {n} nodes of one side, connect, then send \
         at once for the object under a URL no node has seen; each reads its whole body and \
         compares every byte with the origin's. Time to first byte = first body byte, per client \
         from just before its request went out. Origin fetches = requests for that URL in the \
         origin's access log.",
        args.object_size,
        args.origin_rate.0,
        facts.origin_alone.as_secs_f64(),
        args.clients,
    );
    println!(
        "fleetcache: {n} `fleetcache serve` processes in origin mode, fleet certificates from \
         `fleetcache cert`, each listing the others as `[swarm] peers`; before each run every \
         node's admin `/peers` showed the others up. nginx: {n} one-process nginx \
         (`master_process off`), each its own on-disk `proxy_cache` with `proxy_cache_lock on` \
         (lock timeout and age {NGINX_LOCK_TIMEOUT_SECS} s); they do not know each other. Every \
         node pinned to CPU {}, the clients and the origin to CPU {}. Rounds: {}, each running both \
         sides (fleetcache first in odd rounds, nginx first in even ones); medians across rounds. \
         Nodes' CPU is utime + stime of every node's process group from `/proc/<pid>/stat` ({} \
         ticks/s, {}).",
        args.server_cpu, args.client_cpu, args.rounds, facts.clk_tck, facts.clk_source,
    );
    println!(
        "Load average (1/5/15 min) before: {}, after: {}.\n",
        facts.load_before, facts.load_after
    );
    print!(
        "{}",
        report::markdown_table(&rows(runs), args.rounds, args.nodes)
    );
    for note in notes(runs) {
        println!("\n{note}");
    }
    println!("\nReproduce:\n\n```sh\n{}\n```\n", args.reproduce());
    println!("<details><summary>Every run</summary>\n");
    println!("{}", report::runs_table(runs));
    println!("</details>");
}

/// How a row reads one value from a run.
type Metric = fn(&Run) -> Option<f64>;

fn rows(runs: &[Run]) -> Vec<Row> {
    #[rustfmt::skip]
    let specs: [(&str, Metric, usize); 10] = [
        ("origin fetches per object", |r| Some(r.origin_fetches as f64), 0),
        ("time to first byte p50 (ms)", |r| r.secs(50.0, first_byte).map(ms), 0),
        ("time to first byte p99 (ms)", |r| r.secs(99.0, first_byte).map(ms), 0),
        ("last byte p50 (ms)", |r| r.secs(50.0, last_byte).map(ms), 0),
        ("last byte p99 (ms)", |r| r.secs(99.0, last_byte).map(ms), 0),
        ("nodes that stored the object (HEAD after the run says hit)", |r| Some(r.stored_on() as f64), 0),
        ("nodes' CPU s per run, all nodes", |r| Some(r.cpu_secs), 2),
        ("nodes' core busy (anything), %", |r| Some(r.server_core_percent()), 0),
        ("clients' CPU, % of one core", |r| Some(r.client_percent()), 0),
        ("clients' core busy (anything), %", |r| Some(r.client_core_percent()), 0),
    ];
    specs
        .into_iter()
        .map(|(metric, value, decimals)| Row::new(metric, runs, value, decimals))
        .collect()
}

fn ms(secs: f64) -> f64 {
    secs * 1e3
}

/// The median per side of `f` over `runs`.
fn medians(runs: &[Run], f: fn(&Run) -> f64) -> [Option<f64>; 2] {
    Side::ALL.map(|side| {
        let values: Vec<f64> = runs.iter().filter(|r| r.side == side).map(f).collect();
        median(&values)
    })
}

/// What the origin counts say, what set the pace, and anything odd.
fn notes(runs: &[Run]) -> Vec<String> {
    let mut notes = Vec::new();
    let fetches = medians(runs, |r| r.origin_fetches as f64);
    if let [Some(fleet), Some(nginx)] = fetches {
        notes.push(format!(
            "Origin fetches: fleetcache's fleet {fleet:.0} per object, nginx {nginx:.0} (one per \
             node is what `proxy_cache_lock` can do: it coalesces within a node only). More than \
             one for the fleet means its nodes each fetched for themselves instead of asking the \
             URL's owner in the fleet."
        ));
    }
    let server_core = medians(runs, Run::server_core_percent);
    let client_core = medians(runs, Run::client_core_percent);
    let bound: Vec<String> = Side::ALL
        .iter()
        .enumerate()
        .filter_map(|(i, side)| {
            let (server, client) = (server_core[i]?, client_core[i]?);
            let mut cores = Vec::new();
            if server >= SATURATED_PERCENT {
                cores.push(format!("the nodes' core was busy {server:.0}% of the time"));
            }
            if client >= SATURATED_PERCENT {
                cores.push(format!(
                    "the clients' core was busy {client:.0}% of the time"
                ));
            }
            (!cores.is_empty())
                .then(|| format!("during {}'s runs {}", side.name(), cores.join(" and ")))
        })
        .collect();
    if !bound.is_empty() {
        notes.push(format!(
            "{}: last-byte times there are limited by that core, not by the origin.",
            capitalized(&bound.join("; "))
        ));
    }
    let shared: Vec<String> = runs
        .iter()
        .filter_map(|r| {
            let (server, client) = (r.server_other_percent(), r.client_other_percent());
            let other = 100.0 - SATURATED_PERCENT;
            (server >= other || client >= other).then(|| {
                format!(
                    "round {} {} (nodes' core {server:.0}%, clients' core {client:.0}%)",
                    r.round + 1,
                    r.side.name()
                )
            })
        })
        .collect();
    if !shared.is_empty() {
        notes.push(format!(
            "Runs whose cores spent a good share on work outside the measured processes (softirq \
             for loopback traffic, or other processes on the machine; see the load average): {}.",
            shared.join("; ")
        ));
    }
    let unstored: Vec<String> = runs
        .iter()
        .filter(|r| r.stored_on() < r.nodes)
        .map(|r| {
            format!(
                "{} round {} ({} of {})",
                r.side.name(),
                r.round + 1,
                r.stored_on(),
                r.nodes
            )
        })
        .collect();
    if !unstored.is_empty() {
        notes.push(format!(
            "Runs after which some nodes had not stored the object (their HEAD was not a hit): {}.",
            unstored.join(", ")
        ));
    }
    notes
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capitalizes() {
        assert_eq!(capitalized("during x"), "During x");
        assert_eq!(capitalized(""), "");
    }
}
