//! fleetcache against nginx (and Varnish) on the same machine: the options
//! and set-up every such comparison shares, rounds that rotate which server
//! goes first with one timed load-generator run per server per round, and
//! the report: medians, ratios of fleetcache to each other server against
//! optional targets, every run, and what limited each server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::load::{self, LoadGenerator};
use crate::meter::{Meter, RSS_SAMPLE_INTERVAL};
use crate::objects::{self, Object};
use crate::origin::{Origin, READY_PATH};
use crate::process::{self, SBIN_DIRS, Server, Tool};
use crate::procfs::{self, Machine};
use crate::servers::{self, FleetcacheAddrs, HttpsListener, Nginx, Varnish};

mod report;

pub use report::{
    Instead, Measured, Metric, Row, Run, Target, markdown_table, print_closing, verdict_line,
};

/// The servers, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Fleetcache,
    Nginx,
    Varnish,
}

impl Which {
    /// Every server, in table order.
    pub const ALL: [Which; 3] = [Which::Fleetcache, Which::Nginx, Which::Varnish];

    pub fn name(self) -> &'static str {
        match self {
            Which::Fleetcache => "fleetcache",
            Which::Nginx => "nginx",
            Which::Varnish => "varnish",
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
    /// Rounds per scenario; each round runs every server once.
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

/// fleetcache, nginx, Varnish if the comparison has it, and the load
/// generator, resolved.
#[derive(Debug)]
pub struct Tools {
    pub fleetcache: PathBuf,
    pub nginx: Nginx,
    /// Only when found with [`Tools::find_with_varnish`].
    pub varnish: Option<Varnish>,
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
        Self::find_servers(common, build, client, version, false)
    }

    /// [`Tools::find`], and `varnishd` too (one message names everything
    /// missing).
    pub fn find_with_varnish(
        common: &Common,
        build: &str,
        client: Tool,
        version: fn(&Path) -> String,
    ) -> Result<Self> {
        Self::find_servers(common, build, client, version, true)
    }

    fn find_servers(
        common: &Common,
        build: &str,
        client: Tool,
        version: fn(&Path) -> String,
        with_varnish: bool,
    ) -> Result<Self> {
        let mut wanted = vec![
            Tool::new("nginx", "nginx", SBIN_DIRS),
            client,
            Tool::new("taskset", "util-linux", &[]),
        ];
        if with_varnish {
            wanted.push(Varnish::TOOL);
        }
        let (nginx, client, varnishd) = match process::require(&wanted)?.as_slice() {
            [nginx, client, _taskset] => (nginx.clone(), client.clone(), None),
            [nginx, client, _taskset, varnishd] => {
                (nginx.clone(), client.clone(), Some(varnishd.clone()))
            }
            _ => bail!("tool lookup returned the wrong count"),
        };
        Ok(Self {
            fleetcache: servers::fleetcache_binary(common.fleetcache.as_deref(), build)?,
            nginx: Nginx::probe(nginx)?,
            varnish: varnishd.map(Varnish::probe),
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

    /// Starts Varnish (`varnishd -F`, `storage` as its `-s`) on
    /// `common.server_cpu` in front of `backend`, its files under `stage`;
    /// ready when the backend's [`READY_PATH`] comes through.
    pub fn start_varnish(
        &self,
        common: &Common,
        stage: &Stage,
        storage: &str,
        listen: SocketAddr,
        backend: &Origin,
    ) -> Result<Server> {
        let varnish = self
            .varnish
            .as_ref()
            .context("varnishd was not looked for (Tools::find_with_varnish)")?;
        eprintln!(
            "starting {} on CPU {} (-s {storage}, backend {})",
            varnish.path.display(),
            common.server_cpu,
            backend.addr
        );
        varnish.start(
            common.server_cpu,
            &stage.path("varnish"),
            storage,
            listen,
            backend.addr,
            READY_PATH,
        )
    }

    /// nginx's, Varnish's (if any) and the load generator's versions.
    pub fn versions(&self) -> String {
        match &self.varnish {
            Some(varnish) => format!(
                "{}; {}; {}",
                self.nginx.version, varnish.version, self.client_version
            ),
            None => format!("{}; {}", self.nginx.version, self.client_version),
        }
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
             scenario; each round runs every server once, the order rotated by one place each \
             round (with two servers: alternating which goes first). Server CPU is utime + \
             stime of the server's process group from `/proc/<pid>/stat` over each {client} run \
             ({} ticks/s, {}); RSS is VmRSS summed over the process group, sampled every {} ms.",
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

/// A temp dir with the two objects every server serves: `small` (also in
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
    /// Run against this server only (a protocol the others cannot serve);
    /// `None`: every side.
    pub only: Option<Which>,
}

/// fleetcache and nginx, with where each one's URLs start.
pub fn sides<'a>(
    fleetcache: (&'a mut Server, String),
    nginx: (&'a mut Server, String),
) -> [Side<'a>; 2] {
    [
        Side::new(Which::Fleetcache, fleetcache),
        Side::new(Which::Nginx, nginx),
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

impl<'a> Side<'a> {
    /// `which`, running as `server`, its URLs starting with `base`.
    pub fn new(which: Which, (server, base): (&'a mut Server, String)) -> Self {
        Self {
            which,
            server,
            base,
        }
    }
}

/// Warms each (scenario, side) pair up once, then runs `common.rounds`
/// rounds in which every pair makes one timed run (see [`round_order`] for
/// the order: each side goes first, and last, as often as the others).
/// Several scenarios in one call share their rounds: protocols compared
/// with each other are measured minutes apart at most, under the same
/// conditions. The runs per scenario.
pub fn alternate(
    meter: &Meter,
    sides: &mut [Side<'_>],
    scenarios: &[Scenario<'_>],
    common: &Common,
) -> Result<Vec<Vec<Run>>> {
    let paths: Vec<String> = scenarios.iter().map(|s| s.object.path()).collect();
    let only: Vec<Option<Which>> = scenarios.iter().map(|s| s.only).collect();
    let which: Vec<Which> = sides.iter().map(|side| side.which).collect();
    if common.warmup_secs > 0 {
        for (index, side) in round_order(&only, &which, 0) {
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
        for (index, side) in round_order(&only, &which, round) {
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

/// The (scenario index, side index) pairs of round `round` (from 0), for
/// scenarios that run on the sides `only` says (one entry per scenario,
/// see [`Scenario::only`]) and `sides` in table order: the scenarios in
/// order, reversed every other round; within each, the sides that run it
/// rotated left by one place per round. Over as many rounds as there are
/// sides, each side runs first, and last, once per scenario; with two sides
/// each round is the previous one reversed.
fn round_order(only: &[Option<Which>], sides: &[Which], round: u32) -> Vec<(usize, usize)> {
    let round = round as usize;
    let mut scenarios: Vec<usize> = (0..only.len()).collect();
    if round % 2 == 1 {
        scenarios.reverse();
    }
    let mut order = Vec::new();
    for index in scenarios {
        let mut running: Vec<usize> = (0..sides.len())
            .filter(|&side| only[index].is_none_or(|only| only == sides[side]))
            .collect();
        if !running.is_empty() {
            let by = round % running.len();
            running.rotate_left(by);
        }
        order.extend(running.into_iter().map(|side| (index, side)));
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Which = Which::Fleetcache;
    const N: Which = Which::Nginx;
    const V: Which = Which::Varnish;

    /// The servers of a round, in order.
    fn servers(only: &[Option<Which>], sides: &[Which], round: u32) -> Vec<(usize, Which)> {
        round_order(only, sides, round)
            .into_iter()
            .map(|(scenario, side)| (scenario, sides[side]))
            .collect()
    }

    #[test]
    fn three_sides_rotate() {
        let sides = [F, N, V];
        let rounds: Vec<_> = (0..4).map(|r| servers(&[None], &sides, r)).collect();
        assert_eq!(rounds[0], [(0, F), (0, N), (0, V)]);
        assert_eq!(rounds[1], [(0, N), (0, V), (0, F)]);
        assert_eq!(rounds[2], [(0, V), (0, F), (0, N)]);
        assert_eq!(rounds[3], rounds[0]);
    }

    #[test]
    fn two_sides_reverse_every_other_round() {
        // Two protocols of one object, the second fleetcache's alone.
        let only = [None, None, Some(F)];
        let sides = [F, N];
        let first = servers(&only, &sides, 0);
        assert_eq!(first, [(0, F), (0, N), (1, F), (1, N), (2, F)]);
        let mut reversed = first.clone();
        reversed.reverse();
        assert_eq!(servers(&only, &sides, 1), reversed);
        assert_eq!(servers(&only, &sides, 2), first);
    }
}
