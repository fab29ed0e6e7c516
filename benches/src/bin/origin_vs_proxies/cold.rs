//! Measure 2: a cold object from a rate-limited origin, asked for by N
//! clients at once. Each run uses a fresh URL (a new query string, so a new
//! cache key in all three caches), so every run is cold for every cache;
//! the origin's access log says how many requests reached it.

use std::time::Duration;

use anyhow::{Context, Result};
use fleetcache_benches::origin::Origin;
use fleetcache_benches::stampede::{self, Check};
use fleetcache_benches::{interrupt, procfs};

use crate::caches::Running;
use crate::objects::COLD_PATH;
use crate::report::ColdRun;

/// How long the origin's log must stay unchanged before its count is read.
const LOG_QUIET: Duration = Duration::from_millis(300);
/// The longest wait for the origin's log to settle.
const LOG_LIMIT: Duration = Duration::from_secs(10);

/// What every cold run shares.
#[derive(Debug)]
pub(crate) struct Cold<'a> {
    pub(crate) origin: &'a Origin,
    pub(crate) check: Check,
    pub(crate) clients: usize,
    /// How long one run's clients may take in all.
    pub(crate) limit: Duration,
    pub(crate) clk_tck: u64,
}

/// This run's URL: the cold object under a query no cache has seen.
pub(crate) fn run_uri(round: u32, cache: &str) -> String {
    format!("{COLD_PATH}?run={}-{cache}", round + 1)
}

impl Cold<'_> {
    /// `rounds` rounds of one cold run per cache.
    pub(crate) fn run(&self, caches: &mut [Running], rounds: u32) -> Result<Vec<ColdRun>> {
        let mut runs = Vec::new();
        for round in 0..rounds {
            eprintln!("cold object, round {}/{rounds}", round + 1);
            for cache in caches.iter_mut() {
                let run = self.once(round, cache).with_context(|| {
                    format!("cold object, round {}, {}", round + 1, cache.cache.name())
                })?;
                eprintln!("  {}", run.summary());
                runs.push(run);
            }
        }
        Ok(runs)
    }

    fn once(&self, round: u32, cache: &mut Running) -> Result<ColdRun> {
        interrupt::check()?;
        cache.server.check_alive()?;
        let uri = run_uri(round, cache.cache.name());
        let me = std::process::id();
        let (before, client_before) = (cache.server.cpu_ticks()?, procfs::cpu_ticks(me)?);
        let targets = vec![cache.addr; self.clients];
        let timings = stampede::run(&targets, &uri, &self.check, self.limit, crate::PROGRAM)?;
        let (after, client_after) = (cache.server.cpu_ticks()?, procfs::cpu_ticks(me)?);
        cache.server.check_alive()?;
        let origin_requests = self
            .origin
            .settled_requests_for(&uri, LOG_QUIET, LOG_LIMIT)?;
        let (head, _) = cache.fetch("HEAD", &uri)?;
        Ok(ColdRun {
            round,
            cache: cache.cache,
            timings,
            origin_requests,
            stored: head.status == 200 && cache.cache.is_hit(&head),
            cpu_secs: after.saturating_sub(before) as f64 / self.clk_tck as f64,
            client_cpu_secs: client_after.saturating_sub(client_before) as f64
                / self.clk_tck as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_uris_are_fresh_per_round_and_cache() {
        assert_eq!(run_uri(0, "nginx"), "/cold/object.bin?run=1-nginx");
        assert_ne!(run_uri(0, "nginx"), run_uri(1, "nginx"));
        assert_ne!(run_uri(0, "nginx"), run_uri(0, "varnish"));
    }
}
