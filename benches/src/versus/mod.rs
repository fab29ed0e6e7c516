//! fleetcache against nginx on the same machine: the options and set-up
//! every such comparison shares, rounds that alternate which server goes
//! first with one timed load-generator run per server per round, and the
//! report: medians, ratios fleetcache / nginx against optional targets,
//! every run, and what limited each server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::load::{self, LoadGenerator};
use crate::meter::{Meter, RSS_SAMPLE_INTERVAL};
use crate::objects::{self, Object};
use crate::process::{self, SBIN_DIRS, Server, Tool};
use crate::procfs::{self, Machine};
use crate::servers::{self, FleetcacheAddrs, HttpsListener, Nginx};

mod report;

pub use report::{
    Instead, Measured, Metric, Row, Run, Target, markdown_table, print_closing, verdict_line,
};

/// The two servers, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Fleetcache,
    Nginx,
}

impl Which {
    pub fn name(self) -> &'static str {
        match self {
            Which::Fleetcache => "fleetcache",
            Which::Nginx => "nginx",
        }
    }
}

/// The options every fleetcache-vs-nginx comparison has (flattened into
/// its clap arguments).
#[derive(Debug, clap::Args)]
pub struct Common {
    /// The fleetcache binary [default: `fleetcache` next to this executable].
    #[arg(long, value_name = "PATH")]
    pub fleetcache: Option<PathBuf>,
    /// Rounds per scenario; each round runs both servers.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: u32,
    /// Seconds of untimed load per server before each scenario (0: none).
    #[arg(long, default_value_t = 1, value_name = "SECS")]
    pub warmup_secs: u64,
    /// CPU the servers are pinned to.
    #[arg(long, default_value_t = 0)]
    pub server_cpu: usize,
    /// CPU the load generator is pinned to.
    #[arg(long, default_value_t = 1)]
    pub client_cpu: usize,
}

impl Common {
    /// These options as flags of a reproducing command line (the CPUs and
    /// the binary only when not the defaults).
    pub fn flags(&self) -> String {
        format!(
            " --rounds {} --warmup-secs {}{}",
            self.rounds,
            self.warmup_secs,
            crate::common_flags(self.fleetcache.as_deref(), self.server_cpu, self.client_cpu)
        )
    }
}

/// fleetcache, nginx and the load generator, resolved.
#[derive(Debug)]
pub struct Tools {
    pub fleetcache: PathBuf,
    pub nginx: Nginx,
    /// The load generator's version line.
    pub client_version: String,
}

impl Tools {
    /// Finds nginx, `client` (whose version `version` reads) and taskset,
    /// or fails naming the packages to install; and the fleetcache binary
    /// (`common.fleetcache`, else next to this executable), or fails saying
    /// how to `build` it.
    pub fn find(
        common: &Common,
        build: &str,
        client: Tool,
        version: fn(&Path) -> String,
    ) -> Result<Self> {
        let [nginx, client, _taskset] = process::require_each([
            Tool::new("nginx", "nginx", SBIN_DIRS),
            client,
            Tool::new("taskset", "util-linux", &[]),
        ])?;
        Ok(Self {
            fleetcache: servers::fleetcache_binary(common.fleetcache.as_deref(), build)?,
            nginx: Nginx::probe(nginx)?,
            client_version: version(&client),
        })
    }

    /// Starts fleetcache (with `https`, if given) on `common.server_cpu`,
    /// data and log in `stage`, and ingests the stage's objects.
    pub fn start_fleetcache(
        &self,
        common: &Common,
        stage: &Stage,
        addrs: FleetcacheAddrs,
        https: Option<HttpsListener<'_>>,
    ) -> Result<Server> {
        eprintln!(
            "starting {} on CPU {}",
            self.fleetcache.display(),
            common.server_cpu
        );
        let server = servers::start_fleetcache(
            &self.fleetcache,
            common.server_cpu,
            addrs,
            &stage.path("fc-data"),
            None,
            https,
            stage.path("fleetcache.log"),
        )?;
        stage.ingest(addrs.admin)?;
        Ok(server)
    }

    /// Starts nginx with `conf` on `common.server_cpu`, log in `stage`;
    /// ready when plain HTTP on `ready` serves the small object.
    pub fn start_nginx(
        &self,
        common: &Common,
        stage: &Stage,
        conf: &Path,
        ready: SocketAddr,
    ) -> Result<Server> {
        eprintln!(
            "starting {} on CPU {}",
            self.nginx.path.display(),
            common.server_cpu
        );
        self.nginx.start(
            "nginx",
            common.server_cpu,
            conf,
            ready,
            &stage.small.path(),
            stage.path("nginx.log"),
        )
    }

    /// nginx's and the load generator's versions.
    pub fn versions(&self) -> String {
        format!("{}; {}", self.nginx.version, self.client_version)
    }
}

/// The conditions of a benchmark, for its report: the machine, the clock
/// `/proc` times count in, and the load average around the whole run (how
/// busy the shared machine was; the benchmark itself keeps about two cores
/// busy).
#[derive(Debug)]
pub struct Conditions {
    pub machine: Machine,
    pub clk_tck: u64,
    pub clk_source: &'static str,
    pub load_before: String,
    pub load_after: String,
}

impl Conditions {
    /// Reads them at the start, warning when the CPUs in `common` do not
    /// exist or are the same.
    pub fn detect(common: &Common) -> Self {
        let machine = Machine::detect();
        for cpu in [common.server_cpu, common.client_cpu] {
            if cpu >= machine.nproc.max(1) {
                eprintln!(
                    "warning: CPU {cpu} requested but nproc is {}; taskset may fail",
                    machine.nproc
                );
            }
        }
        if common.server_cpu == common.client_cpu {
            eprintln!(
                "warning: servers and the load generator share CPU {}",
                common.server_cpu
            );
        }
        let (clk_tck, clk_source) = procfs::clock_ticks_per_second();
        Self {
            machine,
            clk_tck,
            clk_source,
            load_before: procfs::load_average(),
            load_after: String::new(),
        }
    }

    /// Reads the load average at the end.
    pub fn finish(&mut self) {
        self.load_after = procfs::load_average();
    }

    /// "Machine: …, Linux …. {versions}."
    pub fn machine_line(&self, versions: &str) -> String {
        let m = &self.machine;
        format!(
            "Machine: nproc {}, {}, Linux {}. {versions}.",
            m.nproc, m.cpu_model, m.kernel
        )
    }

    /// How the numbers were taken, with `client` the load generator.
    pub fn method(&self, common: &Common, client: &str) -> String {
        format!(
            "Servers pinned to CPU {}, {client} (`-t1`) to CPU {}. Medians of {} rounds per \
             scenario; each round runs both servers, alternating which goes first. Server CPU is \
             utime + stime from `/proc/<pid>/stat` over each {client} run ({} ticks/s, {}); RSS \
             is VmRSS sampled every {} ms.",
            common.server_cpu,
            common.client_cpu,
            common.rounds,
            self.clk_tck,
            self.clk_source,
            RSS_SAMPLE_INTERVAL.as_millis()
        )
    }

    /// The report's sentence about the load average.
    pub fn load_sentence(&self) -> String {
        format!(
            "Load average (1/5/15 min) before: {}, after: {}. Numbers from a busy machine are \
             noisy; CPU per request is the steadiest of them.",
            self.load_before, self.load_after
        )
    }

    /// The meter for timed runs with the servers on `common.server_cpu`.
    pub fn meter(&self, common: &Common, scratch: &Path) -> Meter {
        Meter {
            scratch: scratch.to_owned(),
            clk_tck: self.clk_tck,
            server_cpu: common.server_cpu,
        }
    }
}

/// A temp dir with the two objects both servers serve: `small` (also in
/// memory, to compare byte for byte) and `large` under `root`, and a
/// scratch dir for the load generator's output. Removed on drop: keep it
/// alive until the servers are gone.
#[derive(Debug)]
pub struct Stage {
    pub dir: TempDir,
    pub root: PathBuf,
    pub scratch: PathBuf,
    pub small: Object,
    pub small_bytes: Vec<u8>,
    pub large: Object,
}

impl Stage {
    pub fn create(program: &str, small: u64, large: u64) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{program}-"))
            .tempdir()
            .context("creating the temp dir")?;
        let root = dir.path().join("www");
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch)?;
        eprintln!("creating objects in {}", dir.path().display());
        let small = objects::create(&root, small)?;
        let large = objects::create(&root, large)?;
        let small_bytes = std::fs::read(&small.file)?;
        Ok(Self {
            dir,
            root,
            scratch,
            small,
            small_bytes,
            large,
        })
    }

    /// A path in the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `POST /blobs` of both objects to fleetcache's admin listener.
    pub fn ingest(&self, admin: SocketAddr) -> Result<()> {
        for object in [&self.small, &self.large] {
            objects::ingest(admin, object)
                .with_context(|| format!("ingesting {} bytes", object.size))?;
        }
        Ok(())
    }

    /// A directory for nginx's config and temp files.
    pub fn nginx_prefix(&self) -> Result<PathBuf> {
        let prefix = self.path("nginx");
        std::fs::create_dir_all(&prefix)
            .with_context(|| format!("creating {}", prefix.display()))?;
        Ok(prefix)
    }

    /// Removes the temp dir, reporting failure.
    pub fn close(self) -> Result<()> {
        self.dir.close().context("removing the temp dir")
    }
}

/// A scenario as [`alternate_all`] runs it.
#[derive(Debug, Clone, Copy)]
pub struct Scenario<'a> {
    pub label: &'a str,
    pub object: &'a Object,
    pub generator: &'a dyn LoadGenerator,
    /// Run against this server only (a protocol the other cannot serve);
    /// `None`: both.
    pub only: Option<Which>,
}

/// fleetcache and nginx, with where each one's URLs start.
pub fn sides<'a>(
    fleetcache: (&'a mut Server, String),
    nginx: (&'a mut Server, String),
) -> [Side<'a>; 2] {
    [
        Side {
            which: Which::Fleetcache,
            server: fleetcache.0,
            base: fleetcache.1,
        },
        Side {
            which: Which::Nginx,
            server: nginx.0,
            base: nginx.1,
        },
    ]
}

/// [`alternate`] for each scenario in turn; the runs per scenario.
pub fn alternate_all(
    meter: &Meter,
    sides: &mut [Side<'_>],
    scenarios: &[Scenario<'_>],
    common: &Common,
) -> Result<Vec<Vec<Run>>> {
    let mut runs = Vec::new();
    for scenario in scenarios {
        runs.extend(alternate(
            meter,
            sides,
            std::slice::from_ref(scenario),
            common,
        )?);
    }
    Ok(runs)
}

/// One server under test and where its URLs start (`http://127.0.0.1:8080`).
#[derive(Debug)]
pub struct Side<'a> {
    pub which: Which,
    pub server: &'a mut Server,
    pub base: String,
}

/// Warms each (scenario, side) pair up once, then runs `common.rounds`
/// rounds in which every pair makes one timed run, in the order of
/// `scenarios` and `sides`, reversed every other round (so that each goes
/// first as often as last). Several scenarios in one call share their
/// rounds: protocols compared with each other are measured minutes apart
/// at most, under the same conditions. The runs per scenario.
pub fn alternate(
    meter: &Meter,
    sides: &mut [Side<'_>],
    scenarios: &[Scenario<'_>],
    common: &Common,
) -> Result<Vec<Vec<Run>>> {
    let paths: Vec<String> = scenarios.iter().map(|s| s.object.path()).collect();
    let pairs = pairs(scenarios, sides);
    if common.warmup_secs > 0 {
        for &(index, side) in &pairs {
            let (scenario, side) = (&scenarios[index], &mut sides[side]);
            eprintln!(
                "\n{}, {}: warming up ({}s)",
                scenario.label,
                side.which.name(),
                common.warmup_secs
            );
            let url = format!("{}{}", side.base, paths[index]);
            load::run(scenario.generator, &url, common.warmup_secs, &meter.scratch)
                .with_context(|| format!("{}: warming up {}", scenario.label, side.server.name))?;
            side.server.check_alive()?;
        }
    }
    for scenario in scenarios {
        eprintln!(
            "{}: {} rounds of `{}`",
            scenario.label,
            common.rounds,
            scenario.generator.command("URL")
        );
    }
    let mut runs = vec![Vec::new(); scenarios.len()];
    for round in 0..common.rounds {
        eprintln!("round {}/{}", round + 1, common.rounds);
        let mut order = pairs.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for (index, side) in order {
            let (scenario, side) = (&scenarios[index], &mut sides[side]);
            let url = format!("{}{}", side.base, paths[index]);
            let sample = meter
                .measure(side.server, &url, scenario.generator)
                .with_context(|| {
                    format!(
                        "{}, round {}, {}",
                        scenario.label,
                        round + 1,
                        side.which.name()
                    )
                })?;
            let run = Run {
                round,
                server: side.which,
                sample,
            };
            if scenarios.len() > 1 {
                eprintln!("  {}:", scenario.label);
            }
            eprintln!("  {}", run.summary());
            runs[index].push(run);
        }
    }
    Ok(runs)
}

/// The (scenario index, side index) pairs to run, scenario by scenario.
fn pairs(scenarios: &[Scenario<'_>], sides: &[Side<'_>]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for (index, scenario) in scenarios.iter().enumerate() {
        for (side_index, side) in sides.iter().enumerate() {
            if scenario.only.is_none_or(|only| only == side.which) {
                pairs.push((index, side_index));
            }
        }
    }
    pairs
}
