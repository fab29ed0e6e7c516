//! One timed load-generator run (`wrk`, `h2load`) against a server, with
//! what it cost the server (CPU time and peak memory of its process group,
//! its core's busy and interrupt time) and the client (its CPU time).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::interrupt;
use crate::load::{self, LoadGenerator, LoadReport};
use crate::process::Server;
use crate::procfs::{self, RssSampler};

/// How often the server's VmRSS is sampled during a run.
pub const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// What one timed run measured.
#[derive(Debug, Clone)]
pub struct Sample {
    pub load: LoadReport,
    /// utime + stime of the server's process group during the run, seconds.
    pub cpu_secs: f64,
    /// Time the server's core was busy with anything (server, kernel, other
    /// processes), seconds.
    pub server_core_busy_secs: f64,
    /// Of that, irq + softirq time, seconds.
    pub server_core_irq_secs: f64,
    /// The load generator's utime + stime, seconds.
    pub client_cpu_secs: f64,
    /// Peak VmRSS of the server's process group, summed over its processes
    /// (one for fleetcache and nginx; Varnish's manager and cache process),
    /// bytes.
    pub peak_rss: u64,
}

/// What a timed run needs besides the server and the load generator.
#[derive(Debug, Clone)]
pub struct Meter {
    /// Where the load generator's output goes.
    pub scratch: PathBuf,
    /// Clock ticks per second of `/proc` times.
    pub clk_tck: u64,
    /// The core the server is pinned to.
    pub server_cpu: usize,
}

impl Meter {
    /// One timed run of `generator` against `server` at `url`; fails if
    /// the server died, answered anything but 2xx/3xx, or nothing was read.
    pub fn measure(
        &self,
        server: &mut Server,
        url: &str,
        generator: &dyn LoadGenerator,
    ) -> Result<Sample> {
        let clk_tck = self.clk_tck as f64;
        interrupt::check()?;
        server.check_alive()?;
        let sampler = RssSampler::start(
            server.pid(),
            RSS_SAMPLE_INTERVAL,
            Duration::from_secs(generator.secs() + 120),
        );
        let client_before = procfs::waited_children_cpu_ticks()?;
        let core_before = procfs::core_ticks(self.server_cpu)?;
        let before = server.cpu_ticks()?;
        let (report, _) = load::run(generator, url, generator.secs(), &self.scratch)?;
        let after = server.cpu_ticks()?;
        let core = procfs::core_ticks(self.server_cpu)?.since(core_before);
        let client_after = procfs::waited_children_cpu_ticks()?;
        let peak_rss = sampler.finish()?;
        server.check_alive()?;
        if report.non_2xx > 0 {
            bail!("{} responses were not 2xx/3xx", report.non_2xx);
        }
        if report.bytes_read <= 0.0 {
            // Zero *completed* requests is fine for a huge object in a short
            // run; zero bytes is not.
            bail!("{} read nothing", generator.program());
        }
        Ok(Sample {
            load: report,
            cpu_secs: after.saturating_sub(before) as f64 / clk_tck,
            server_core_busy_secs: core.busy as f64 / clk_tck,
            server_core_irq_secs: core.irq as f64 / clk_tck,
            client_cpu_secs: client_after.saturating_sub(client_before) as f64 / clk_tck,
            peak_rss,
        })
    }
}
