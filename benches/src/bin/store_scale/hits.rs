//! Hits, timed: the same wrk load against a node on the large store and one
//! on the small store, pinned to the same core, alternating; server CPU per
//! request from `/proc`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fleetcache_benches::load;
use fleetcache_benches::meter::{Meter, Sample};
use fleetcache_benches::process::Server;
use fleetcache_benches::servers::FleetcacheAddrs;
use fleetcache_benches::wrk::{self, WrkArgs, WrkScript};
use fleetcache_benches::{http1, interrupt};
use rand::seq::index;

use crate::objects;
use crate::startup::{Launch, READY_POLL, order};

/// One kind of load: which hashes it cycles through.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub(crate) label: String,
    pub(crate) generator: WrkScript,
}

/// A timed series: one load against one node.
#[derive(Debug)]
pub(crate) struct Series {
    pub(crate) label: String,
    /// Which node (index into the nodes).
    pub(crate) node: usize,
    pub(crate) load: usize,
    /// Series of one phase run their rounds together, before the next phase's.
    pub(crate) phase: usize,
    pub(crate) samples: Vec<Sample>,
}

/// Writes `/blake3/<hash>` of each of `hashes`, one a line, and a wrk
/// script cycling through them; returns the script's path.
fn write_load(scratch: &Path, name: &str, hashes: &[blake3::Hash]) -> Result<PathBuf> {
    let mut list = String::with_capacity(hashes.len() * 72);
    for hash in hashes {
        let _ = writeln!(list, "/blake3/{}", hash.to_hex());
    }
    let list_path = scratch.join(format!("{name}.txt"));
    std::fs::write(&list_path, list).with_context(|| format!("writing {}", list_path.display()))?;
    let script = scratch.join(format!("{name}.lua"));
    std::fs::write(&script, wrk::cycle_script(&list_path))
        .with_context(|| format!("writing {}", script.display()))?;
    Ok(script)
}

/// The hashes the loads cycle through.
#[derive(Debug)]
pub(crate) struct HashSets {
    /// The first objects, held by both stores.
    pub(crate) hot: Vec<blake3::Hash>,
    /// Objects picked at random from all of the large store's, in random
    /// order; empty for no spread load.
    pub(crate) spread: Vec<blake3::Hash>,
}

impl HashSets {
    /// The first `hot` objects, and `spread` random ones of the first `large`.
    pub(crate) fn pick(hot: u64, spread: u64, large: u64, threads: usize) -> Result<Self> {
        let hot_indexes: Vec<u64> = (0..hot).collect();
        let picked = index::sample(
            &mut rand::rng(),
            usize::try_from(large)?,
            usize::try_from(spread.min(large))?,
        );
        let spread_indexes: Vec<u64> = picked.into_iter().map(|i| i as u64).collect();
        Ok(HashSets {
            hot: objects::hashes_of(&hot_indexes, threads),
            spread: objects::hashes_of(&spread_indexes, threads),
        })
    }
}

/// The loads: the hot hashes, and the spread ones if there are any.
pub(crate) fn loads(scratch: &Path, wrk: &WrkArgs, sets: &HashSets) -> Result<Vec<Load>> {
    let mut loads = vec![Load {
        label: format!("hot: {} hashes", sets.hot.len()),
        generator: WrkScript {
            wrk: wrk.clone(),
            script: write_load(scratch, "hot", &sets.hot)?,
        },
    }];
    if !sets.spread.is_empty() {
        loads.push(Load {
            label: format!("spread: {} random hashes", sets.spread.len()),
            generator: WrkScript {
                wrk: wrk.clone(),
                script: write_load(scratch, "spread", &sets.spread)?,
            },
        });
    }
    Ok(loads)
}

/// A node serving one store for the hit runs.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) label: String,
    pub(crate) server: Server,
    pub(crate) addrs: FleetcacheAddrs,
}

impl Node {
    pub(crate) fn start(launch: &Launch, label: &str, dir: &Path, log: &str) -> Result<Self> {
        let (mut server, addrs) = launch.spawn(dir, log)?;
        server.wait_ready_polling(addrs.admin, "/readyz", READY_POLL)?;
        let node = Node {
            label: label.to_owned(),
            server,
            addrs,
        };
        node.check(&[0, objects::FILE_EVERY - 1])?;
        Ok(node)
    }

    /// Fetches objects `indexes` and compares their bytes.
    fn check(&self, indexes: &[u64]) -> Result<()> {
        let mut expected = Vec::new();
        for &i in indexes {
            let hash = objects::hash_of(i, &mut expected);
            let path = format!("/blake3/{}", hash.to_hex());
            let (head, body) = http1::fetch(self.addrs.public, "GET", &path, None)?;
            if head.status != 200 || body != expected {
                bail!(
                    "{}: GET {path} gave {} and {} bytes, not 200 and object {i}'s {} bytes",
                    self.label,
                    head.status,
                    body.len(),
                    expected.len()
                );
            }
        }
        Ok(())
    }

    fn base(&self) -> String {
        format!("http://{}/", self.addrs.public)
    }
}

/// Which (load, node) pairs run, in three phases so that the hot comparison
/// is not between a node that has served the spread load and one that has
/// not: first the hot load on both nodes; then every other load on the large
/// store's node (index 0); then, if there was one, the hot load on both again,
/// which shows what serving the spread did to the large node's hits.
pub(crate) fn plan(loads: &[Load], nodes: &[Node]) -> Vec<Series> {
    let mut series = Vec::new();
    let mut add = |load_index: usize, node_index: usize, phase: usize, label: String| {
        series.push(Series {
            label,
            node: node_index,
            load: load_index,
            phase,
            samples: Vec::new(),
        });
    };
    let hot = &loads[0];
    for (node_index, node) in nodes.iter().enumerate() {
        add(0, node_index, 0, format!("{}, {}", node.label, hot.label));
    }
    for (load_index, load) in loads.iter().enumerate().skip(1) {
        add(
            load_index,
            0,
            1,
            format!("{}, {}", nodes[0].label, load.label),
        );
    }
    if loads.len() > 1 {
        for (node_index, node) in nodes.iter().enumerate() {
            let label = format!(
                "{}, {} after the large node's other loads",
                node.label, hot.label
            );
            add(0, node_index, 2, label);
        }
    }
    series
}

/// Phase by phase (`plan` lists the series in phase order): warms the phase's
/// series up once, then `rounds` rounds of one timed run each, the order
/// reversed every other round.
pub(crate) fn run(
    meter: &Meter,
    nodes: &mut [Node],
    loads: &[Load],
    series: &mut [Series],
    rounds: u32,
    warmup_secs: u64,
) -> Result<()> {
    for load in loads {
        eprintln!(
            "{}: {rounds} rounds of `{}`",
            load.label,
            fleetcache_benches::load::LoadGenerator::command(&load.generator, "URL")
        );
    }
    for (number, phase) in series.chunk_by_mut(|a, b| a.phase == b.phase).enumerate() {
        if warmup_secs > 0 {
            for s in phase.iter() {
                eprintln!("\n{}: warming up ({warmup_secs}s)", s.label);
                let node = &mut nodes[s.node];
                load::run(
                    &loads[s.load].generator,
                    &node.base(),
                    warmup_secs,
                    &meter.scratch,
                )
                .with_context(|| format!("warming up {}", s.label))?;
                node.server.check_alive()?;
            }
        }
        for round in 0..rounds {
            eprintln!("phase {}, round {}/{rounds}", number + 1, round + 1);
            for index in order(phase.len(), round) {
                interrupt::check()?;
                measure(meter, nodes, loads, &mut phase[index], round)?;
            }
        }
    }
    Ok(())
}

/// One timed run of series `s`, added to its samples.
fn measure(
    meter: &Meter,
    nodes: &mut [Node],
    loads: &[Load],
    s: &mut Series,
    round: u32,
) -> Result<()> {
    let node = &mut nodes[s.node];
    let base = node.base();
    let sample = meter
        .measure(&mut node.server, &base, &loads[s.load].generator)
        .with_context(|| format!("{}, round {}", s.label, round + 1))?;
    eprintln!(
        "  {}: {:.0} req/s, {:.2} µs CPU/request, p99 {}",
        s.label,
        sample.load.requests_per_sec,
        cpu_us_per_request(&sample).unwrap_or(f64::NAN),
        sample
            .load
            .latency_at(99.0)
            .map_or("–".to_owned(), |us| format!("{:.2} ms", us / 1e3))
    );
    s.samples.push(sample);
    Ok(())
}

/// Server CPU time per completed request, µs.
pub(crate) fn cpu_us_per_request(sample: &Sample) -> Option<f64> {
    (sample.load.requests > 0).then(|| sample.cpu_secs * 1e6 / sample.load.requests as f64)
}
