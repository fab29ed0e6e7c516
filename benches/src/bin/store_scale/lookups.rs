//! `Store::get` in this process, timed: the store's own share of a hit,
//! without HTTP, sockets or the node's runtime.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fleetcache_benches::interrupt;
use fleetcache_store::{Hash, Store};

use crate::objects;
use crate::startup::{Subject, order};

/// How long each timed series of lookups runs, at least.
const TIMED: Duration = Duration::from_secs(1);

/// One series of lookups: a store and the hashes it cycles through.
#[derive(Debug)]
pub(crate) struct LookupSeries {
    pub(crate) label: String,
    pub(crate) subject: usize,
    hashes: Vec<Hash>,
    /// Nanoseconds per `Store::get`, one per round.
    pub(crate) ns_per_get: Vec<f64>,
}

impl LookupSeries {
    pub(crate) fn new(label: String, subject: usize, hashes: &[blake3::Hash]) -> Self {
        LookupSeries {
            label,
            subject,
            hashes: hashes.iter().map(|&h| Hash::from(h)).collect(),
            ns_per_get: Vec::new(),
        }
    }
}

/// Per round, for each series in alternating order: open its store, one
/// untimed pass over its hashes, then passes for at least [`TIMED`], close.
/// Every lookup must find its object.
pub(crate) fn run(subjects: &[Subject], series: &mut [LookupSeries], rounds: u32) -> Result<()> {
    eprintln!("\nStore::get in process: {rounds} rounds, alternating");
    for round in 0..rounds {
        for index in order(series.len(), round) {
            interrupt::check()?;
            let s = &mut series[index];
            let store = Store::open(objects::options(&subjects[s.subject].dir))
                .with_context(|| format!("opening {}", subjects[s.subject].label))?;
            pass(&store, &s.hashes)?;
            let started = Instant::now();
            let mut gets = 0u64;
            while started.elapsed() < TIMED {
                pass(&store, &s.hashes)?;
                gets += s.hashes.len() as u64;
            }
            let ns = started.elapsed().as_nanos() as f64 / gets as f64;
            store.close()?;
            eprintln!("  {}: {ns:.0} ns per get", s.label);
            s.ns_per_get.push(ns);
        }
    }
    Ok(())
}

fn pass(store: &Store, hashes: &[Hash]) -> Result<()> {
    for hash in hashes {
        if store.get(hash)?.is_none() {
            bail!("{hash} not found");
        }
    }
    Ok(())
}
