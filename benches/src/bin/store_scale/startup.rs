//! Start-up, timed: `Store::open` in this process, and a real
//! `fleetcache serve` from spawn to `/readyz` 200, after a clean stop
//! (SIGTERM) and after a crash (SIGKILL). The two stores alternate.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fleetcache_benches::interrupt;
use fleetcache_benches::process::{self, Server};
use fleetcache_benches::servers::{self, FleetcacheAddrs};
use fleetcache_store::Store;

use crate::objects;

/// How often `/readyz` is polled while a start-up is timed.
pub(crate) const READY_POLL: Duration = Duration::from_millis(2);
/// How long a node gets to stop after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// One store under test.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    pub(crate) label: String,
    pub(crate) dir: PathBuf,
}

/// Timings of one store, seconds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timings {
    /// `Store::open`.
    pub(crate) open: Vec<f64>,
    /// `Store::close` (flushes and stops the writer).
    pub(crate) close: Vec<f64>,
    /// Spawn to `/readyz` 200, the previous node stopped with SIGTERM.
    pub(crate) serve_clean: Vec<f64>,
    /// Spawn to `/readyz` 200, the previous node killed with SIGKILL.
    pub(crate) serve_crashed: Vec<f64>,
    /// Spawn to `/readyz` 200 after a clean stop, `index.redb` dropped from
    /// the page cache first.
    pub(crate) serve_cold: Vec<f64>,
}

/// `Store::open` then `close`, `times` times per store, alternating which
/// store goes first.
pub(crate) fn store_opens(subjects: &[Subject], times: u32) -> Result<Vec<Timings>> {
    let mut timings = vec![Timings::default(); subjects.len()];
    eprintln!("\nStore::open: {times} times per store, alternating");
    for round in 0..times {
        for index in order(subjects.len(), round) {
            interrupt::check()?;
            let started = Instant::now();
            let store = Store::open(objects::options(&subjects[index].dir))
                .with_context(|| format!("opening {}", subjects[index].label))?;
            let opened = started.elapsed().as_secs_f64();
            let started = Instant::now();
            store.close()?;
            let closed = started.elapsed().as_secs_f64();
            eprintln!(
                "  {}: open {:.2} ms, close {:.2} ms",
                subjects[index].label,
                opened * 1e3,
                closed * 1e3
            );
            timings[index].open.push(opened);
            timings[index].close.push(closed);
        }
    }
    Ok(timings)
}

/// Indexes `0..n`, reversed on odd rounds.
pub(crate) fn order(n: usize, round: u32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// Where and how the nodes run.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) binary: PathBuf,
    pub(crate) cpu: usize,
    pub(crate) scratch: PathBuf,
}

impl Launch {
    /// `fleetcache serve` on `dir` with fresh ports (a store too large to
    /// evict anything), spawned; returns the node and its addresses.
    pub(crate) fn spawn(&self, dir: &Path, log: &str) -> Result<(Server, FleetcacheAddrs)> {
        let [public, admin] = process::free_ports()?;
        let addrs = FleetcacheAddrs { public, admin };
        let mut command =
            servers::fleetcache_command(&self.binary, self.cpu, addrs, dir, None, None);
        command.env("FLEETCACHE_STORE_CAPACITY", objects::CAPACITY_TEXT);
        let server = Server::spawn("fleetcache", command, self.scratch.join(log))?;
        Ok((server, addrs))
    }

    /// Spawns a node on `dir` and times it to `/readyz` 200.
    fn timed_start(&self, dir: &Path, log: &str) -> Result<(Server, f64)> {
        let started = Instant::now();
        let (mut server, addrs) = self.spawn(dir, log)?;
        server.wait_ready_polling(addrs.admin, "/readyz", READY_POLL)?;
        Ok((server, started.elapsed().as_secs_f64()))
    }
}

/// Drops `file`'s pages from the page cache (`posix_fadvise` DONTNEED, as
/// `dd iflag=nocache count=0` does it): the next start reads the index from
/// disk, as after a reboot, without touching any other file's cache.
fn drop_from_page_cache(file: &Path) -> Result<()> {
    let status = std::process::Command::new("dd")
        .arg(format!("if={}", file.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .context("running dd")?;
    if !status.success() {
        anyhow::bail!("dd iflag=nocache on {} failed ({status})", file.display());
    }
    Ok(())
}

/// Per store and round: start (after a clean stop), SIGKILL, start again
/// (after the crash), SIGTERM, drop the index from the page cache, start
/// again (cold), SIGTERM. Stores alternate which goes first.
pub(crate) fn serve_starts(
    launch: &Launch,
    subjects: &[Subject],
    times: u32,
    timings: &mut [Timings],
) -> Result<()> {
    eprintln!(
        "\nfleetcache serve, spawn to /readyz 200 (polled every {} ms): {times} times per store",
        READY_POLL.as_millis()
    );
    for round in 0..times {
        for index in order(subjects.len(), round) {
            interrupt::check()?;
            let subject = &subjects[index];
            let log = format!("start-{index}.log");
            let (server, clean) = launch.timed_start(&subject.dir, &log)?;
            // Dropping the server kills its process group with SIGKILL.
            drop(server);
            let (mut server, crashed) = launch.timed_start(&subject.dir, &log)?;
            server.terminate(STOP_LIMIT)?;
            drop_from_page_cache(&subject.dir.join("index.redb"))?;
            let (mut server, cold) = launch.timed_start(&subject.dir, &log)?;
            let status = server.terminate(STOP_LIMIT)?;
            eprintln!(
                "  {}: {:.1} ms after a clean stop, {:.1} ms after SIGKILL, {:.1} ms with the \
                 index out of the page cache (then stopped: {status})",
                subject.label,
                clean * 1e3,
                crashed * 1e3,
                cold * 1e3
            );
            timings[index].serve_clean.push(clean);
            timings[index].serve_crashed.push(crashed);
            timings[index].serve_cold.push(cold);
        }
    }
    Ok(())
}
