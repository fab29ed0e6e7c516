//! One run: every client of a side asks for the object under a URL no node
//! has seen, at the same moment; the origin's access log says how many of
//! those requests reached it. Each round runs both sides, the order
//! alternating so neither always goes first.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fleetcache_benches::origin::Origin;
use fleetcache_benches::stampede::{self, Check};
use fleetcache_benches::{interrupt, procfs};

use crate::cluster::{self, Cluster};
use crate::report::Run;

/// How long the origin's log must stay unchanged before its count is read.
const LOG_QUIET: Duration = Duration::from_millis(300);
/// The longest wait for the origin's log to settle.
const LOG_LIMIT: Duration = Duration::from_secs(10);

/// This run's URL: the object under a query no node has seen.
pub(crate) fn run_uri(round: u32, side: &str) -> String {
    format!("{}?run={}-{side}", crate::OBJECT_PATH, round + 1)
}

/// The order of the sides (indexes into the clusters) in `round`:
/// fleetcache first in the first round, nginx first in the second, and so on.
pub(crate) fn order(round: u32) -> [usize; 2] {
    if round.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    }
}

/// What every run shares.
#[derive(Debug)]
pub(crate) struct Stampede<'a> {
    pub(crate) origin: &'a Origin,
    pub(crate) check: Check,
    pub(crate) clients: usize,
    /// How long one run's clients may take in all.
    pub(crate) limit: Duration,
    pub(crate) clk_tck: u64,
    /// The CPU the nodes are pinned to.
    pub(crate) server_cpu: usize,
    /// The CPU the clients and the origin are pinned to.
    pub(crate) client_cpu: usize,
}

impl Stampede<'_> {
    /// `rounds` rounds of one run per side.
    pub(crate) fn rounds(&self, clusters: &mut [Cluster; 2], rounds: u32) -> Result<Vec<Run>> {
        let mut runs = Vec::new();
        for round in 0..rounds {
            eprintln!("round {}/{rounds}", round + 1);
            for index in order(round) {
                let cluster = &mut clusters[index];
                let run = self
                    .once(round, cluster)
                    .with_context(|| format!("round {}, {}", round + 1, cluster.side.name()))?;
                eprintln!("  {}", run.summary());
                runs.push(run);
            }
        }
        Ok(runs)
    }

    fn once(&self, round: u32, cluster: &mut Cluster) -> Result<Run> {
        interrupt::check()?;
        cluster.ready_for_run()?;
        let side = cluster.side;
        let uri = run_uri(round, side.name());
        let seen = self.origin.requests_for(&uri)?;
        ensure!(seen == 0, "the origin already saw {uri} {seen} times");
        let targets = cluster.targets(self.clients);
        let before = self.ticks(cluster)?;
        let timings = stampede::run(&targets, &uri, &self.check, self.limit, crate::PROGRAM)?;
        let spent = self.ticks(cluster)?.since(&before);
        cluster.check_alive()?;
        let origin_fetches = self
            .origin
            .settled_requests_for(&uri, LOG_QUIET, LOG_LIMIT)?;
        let stored = cluster.stored(&uri)?;
        let secs = |ticks: u64| ticks as f64 / self.clk_tck as f64;
        Ok(Run {
            round,
            side,
            node_of: cluster::spread(self.clients, cluster.members.len()),
            nodes: cluster.members.len(),
            timings,
            origin_fetches,
            stored,
            cpu_secs: secs(spent.nodes),
            client_cpu_secs: secs(spent.clients),
            origin_cpu_secs: secs(spent.origin),
            server_core_secs: secs(spent.server_core),
            client_core_secs: secs(spent.client_core),
        })
    }

    /// The CPU time counters a run is measured by.
    fn ticks(&self, cluster: &Cluster) -> Result<Ticks> {
        Ok(Ticks {
            nodes: cluster.cpu_ticks()?,
            clients: procfs::cpu_ticks(std::process::id())?,
            origin: self.origin.cpu_ticks()?,
            server_core: procfs::core_ticks(self.server_cpu)?.busy,
            client_core: procfs::core_ticks(self.client_cpu)?.busy,
        })
    }
}

/// CPU time so far, clock ticks: of every node, of the clients (this
/// process), of the origin, and how long each core was busy with anything.
#[derive(Debug, Clone, Copy)]
struct Ticks {
    nodes: u64,
    clients: u64,
    origin: u64,
    server_core: u64,
    client_core: u64,
}

impl Ticks {
    fn since(&self, earlier: &Ticks) -> Ticks {
        Ticks {
            nodes: self.nodes.saturating_sub(earlier.nodes),
            clients: self.clients.saturating_sub(earlier.clients),
            origin: self.origin.saturating_sub(earlier.origin),
            server_core: self.server_core.saturating_sub(earlier.server_core),
            client_core: self.client_core.saturating_sub(earlier.client_core),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_uris_are_fresh_per_round_and_side() {
        assert_eq!(
            run_uri(0, "fleetcache"),
            "/cold/object.bin?run=1-fleetcache"
        );
        assert_ne!(run_uri(0, "nginx"), run_uri(1, "nginx"));
        assert_ne!(run_uri(0, "nginx"), run_uri(0, "fleetcache"));
        assert_ne!(run_uri(0, "origin-alone"), run_uri(0, "nginx"));
    }

    #[test]
    fn sides_alternate() {
        assert_eq!(order(0), [0, 1]);
        assert_eq!(order(1), [1, 0]);
        assert_eq!(order(2), [0, 1]);
    }
}
