//! `http-vs-nginx`: fleetcache against nginx serving the same files from
//! disk, on loopback, servers pinned to one core and `wrk` to another.
//!
//! ```sh
//! cargo build --release -p fleetcache-gateway -p fleetcache-benches
//! target/release/http-vs-nginx --rounds 5
//! ```
//!
//! Scenarios: (a) a 4 KiB object, hot hits, 64 connections; (b) a 256 MiB
//! object, 16 connections. Each round runs both servers, alternating which
//! goes first. Reports medians across rounds, CPU time per request / per GiB
//! (server utime + stime from `/proc/<pid>/stat`), peak VmRSS, and the
//! ratios fleetcache / nginx against the targets, as a Markdown table.
//! Progress goes to stderr, the report to stdout.

mod http1;
mod interrupt;
mod objects;
mod procfs;
mod report;
mod servers;
mod summary;
mod wrk;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::objects::Object;
use crate::procfs::{Machine, RssSampler};
use crate::report::{Run, Which};
use crate::servers::{FleetcacheAddrs, Server};
use crate::wrk::WrkArgs;

const SMALL_SIZE: u64 = 4 * 1024;
const LARGE_SIZE: u64 = 256 * 1024 * 1024;
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
const BUILD: &str = "cargo build --release -p fleetcache-gateway -p fleetcache-benches";

/// Compare fleetcache with nginx serving the same files (loopback, pinned).
#[derive(Debug, Parser)]
#[command(name = "http-vs-nginx")]
struct Args {
    /// The fleetcache binary [default: `fleetcache` next to this executable].
    #[arg(long, value_name = "PATH")]
    fleetcache: Option<PathBuf>,
    /// Rounds per scenario; each round runs both servers.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rounds: u32,
    /// Seconds per wrk run for both scenarios (overrides the two below).
    #[arg(long, value_name = "SECS")]
    secs: Option<u64>,
    /// Seconds per wrk run, 4 KiB scenario.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    small_secs: u64,
    /// Seconds per wrk run, 256 MiB scenario.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    large_secs: u64,
    /// Seconds of untimed wrk per server before each scenario (0: none).
    #[arg(long, default_value_t = 1, value_name = "SECS")]
    warmup_secs: u64,
    /// CPU the servers are pinned to.
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// CPU wrk is pinned to.
    #[arg(long, default_value_t = 1)]
    client_cpu: usize,
}

impl Args {
    fn small_secs(&self) -> u64 {
        self.secs.unwrap_or(self.small_secs).max(1)
    }

    fn large_secs(&self) -> u64 {
        self.secs.unwrap_or(self.large_secs).max(1)
    }

    /// The command line that reproduces this run.
    fn reproduce(&self) -> String {
        let mut cmd = format!(
            "{BUILD} && target/release/http-vs-nginx --rounds {} --small-secs {} --large-secs {} --warmup-secs {}",
            self.rounds,
            self.small_secs(),
            self.large_secs(),
            self.warmup_secs
        );
        if let Some(path) = &self.fleetcache {
            cmd.push_str(&format!(" --fleetcache {}", path.display()));
        }
        if (self.server_cpu, self.client_cpu) != (0, 1) {
            cmd.push_str(&format!(
                " --server-cpu {} --client-cpu {}",
                self.server_cpu, self.client_cpu
            ));
        }
        cmd
    }
}

/// The external programs, resolved.
#[derive(Debug)]
struct Tools {
    fleetcache: PathBuf,
    nginx: PathBuf,
    nginx_has_e: bool,
    nginx_version: String,
    wrk_version: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(err) = interrupt::install() {
        eprintln!("http-vs-nginx: {err:#}");
        return ExitCode::FAILURE;
    }
    let tools = match find_tools(&args) {
        Ok(tools) => tools,
        Err(err) => {
            eprintln!("http-vs-nginx: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(&args, &tools) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("http-vs-nginx: error: {err:#}");
            if interrupt::interrupted() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Looks `name` up on PATH (and, for nginx, the sbin directories a non-root
/// PATH often lacks).
fn which(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// First line of a tool's version output (stdout or stderr, any exit code).
fn version_line(program: &Path, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .and_then(|out| {
            let text = [out.stdout, out.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn find_tools(args: &Args) -> Result<Tools> {
    let nginx = which("nginx", &["/usr/sbin", "/usr/local/sbin", "/sbin"]);
    let wrk = which("wrk", &[]);
    let taskset = which("taskset", &[]);
    let mut missing = Vec::new();
    if nginx.is_none() {
        missing.push(("nginx", "nginx"));
    }
    if wrk.is_none() {
        missing.push(("wrk", "wrk"));
    }
    if taskset.is_none() {
        missing.push(("taskset", "util-linux"));
    }
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|(n, _)| *n).collect();
        let packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
        bail!(
            "missing on PATH: {}\ninstall (Debian/Ubuntu): sudo apt-get install -y {}{}",
            names.join(", "),
            packages.join(" "),
            if names.contains(&"nginx") {
                "\n(nginx-light is enough in place of nginx)"
            } else {
                ""
            }
        );
    }
    let fleetcache = match &args.fleetcache {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("locating this executable")?
            .parent()
            .context("this executable has no parent directory")?
            .join("fleetcache"),
    };
    if !fleetcache.is_file() {
        bail!(
            "no fleetcache binary at {}\nbuild it next to this one with `{BUILD}`, or pass --fleetcache PATH",
            fleetcache.display()
        );
    }
    let (Some(nginx), Some(wrk)) = (nginx, wrk) else {
        bail!("nginx or wrk vanished");
    };
    let help = Command::new(&nginx)
        .arg("-h")
        .output()
        .with_context(|| format!("running {} -h", nginx.display()))?;
    let help = String::from_utf8_lossy(&[help.stdout, help.stderr].concat()).into_owned();
    Ok(Tools {
        nginx_has_e: help.contains("-e filename"),
        nginx_version: version_line(&nginx, "-v"),
        wrk_version: version_line(&wrk, "-v")
            .split(" Copyright")
            .next()
            .unwrap_or("unknown")
            .to_owned(),
        fleetcache,
        nginx,
    })
}

/// A benchmark scenario: which object, which wrk invocation.
#[derive(Debug)]
struct Scenario {
    label: &'static str,
    object: Object,
    wrk: WrkArgs,
}

fn run(args: &Args, tools: &Tools) -> Result<()> {
    let machine = Machine::detect();
    let load_before = procfs::load_average();
    let (clk_tck, clk_source) = procfs::clock_ticks_per_second();
    for cpu in [args.server_cpu, args.client_cpu] {
        if cpu >= machine.nproc.max(1) {
            eprintln!(
                "warning: CPU {cpu} requested but nproc is {}; taskset may fail",
                machine.nproc
            );
        }
    }
    if args.server_cpu == args.client_cpu {
        eprintln!("warning: servers and wrk share CPU {}", args.server_cpu);
    }

    // Declared before the servers, so it is removed after they are killed.
    let dir = tempfile::Builder::new()
        .prefix("http-vs-nginx-")
        .tempdir()
        .context("creating the temp dir")?;
    let root = dir.path().join("www");
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch)?;

    eprintln!("creating objects in {}", dir.path().display());
    let small = objects::create(&root, SMALL_SIZE)?;
    let large = objects::create(&root, LARGE_SIZE)?;
    let small_bytes = std::fs::read(&small.file)?;

    let [public, admin, nginx_addr] = servers::free_ports()?;
    let fc_addrs = FleetcacheAddrs { public, admin };

    eprintln!(
        "starting {} on CPU {}",
        tools.fleetcache.display(),
        args.server_cpu
    );
    let mut fleetcache = servers::start_fleetcache(
        &tools.fleetcache,
        args.server_cpu,
        fc_addrs,
        &dir.path().join("fc-data"),
        dir.path().join("fleetcache.log"),
    )?;
    for object in [&small, &large] {
        objects::ingest(fc_addrs.admin, object)
            .with_context(|| format!("ingesting {} bytes", object.size))?;
    }

    let nginx_prefix = dir.path().join("nginx");
    std::fs::create_dir_all(&nginx_prefix)?;
    let conf = servers::write_nginx_conf(&nginx_prefix, &root, nginx_addr)?;
    eprintln!(
        "starting {} on CPU {}",
        tools.nginx.display(),
        args.server_cpu
    );
    let mut nginx = servers::start_nginx(
        &tools.nginx,
        tools.nginx_has_e,
        args.server_cpu,
        &nginx_prefix,
        &conf,
        nginx_addr,
        &small.path(),
        dir.path().join("nginx.log"),
    )?;

    eprintln!("checking both servers return the same bytes");
    objects::check("fleetcache", fc_addrs.public, &small, Some(&small_bytes))?;
    objects::check("nginx", nginx_addr, &small, Some(&small_bytes))?;
    objects::check("fleetcache", fc_addrs.public, &large, None)?;
    objects::check("nginx", nginx_addr, &large, None)?;

    let scenarios = [
        Scenario {
            label: "4 KiB hot hits",
            object: small,
            wrk: WrkArgs {
                cpu: args.client_cpu,
                connections: 64,
                secs: args.small_secs(),
                latency: true,
                timeout_secs: 10,
            },
        },
        Scenario {
            label: "256 MiB",
            object: large,
            wrk: WrkArgs {
                cpu: args.client_cpu,
                connections: 16,
                secs: args.large_secs(),
                latency: false,
                timeout_secs: 120,
            },
        },
    ];

    let meter = Meter {
        scratch: scratch.clone(),
        clk_tck,
        server_cpu: args.server_cpu,
    };
    let mut results: Vec<Vec<Run>> = Vec::new();
    for scenario in &scenarios {
        let mut targets = [
            (Which::Fleetcache, &mut fleetcache, fc_addrs.public),
            (Which::Nginx, &mut nginx, nginx_addr),
        ];
        let path = scenario.object.path();
        if args.warmup_secs > 0 {
            eprintln!(
                "\n{}: warming up ({}s each)",
                scenario.label, args.warmup_secs
            );
            let warm = WrkArgs {
                secs: args.warmup_secs,
                ..scenario.wrk.clone()
            };
            for (_, server, addr) in targets.iter_mut() {
                let url = format!("http://{addr}{path}");
                wrk::run(&warm, &url, &scratch)
                    .with_context(|| format!("warming up {}", server.name))?;
                server.check_alive()?;
            }
        }
        eprintln!(
            "{}: {} rounds of `{}`",
            scenario.label,
            args.rounds,
            scenario.wrk.argv("URL").join(" ")
        );
        let mut runs = Vec::new();
        for round in 0..args.rounds {
            eprintln!("round {}/{}", round + 1, args.rounds);
            if round % 2 == 1 {
                targets.reverse();
            }
            for (which, server, addr) in targets.iter_mut() {
                let url = format!("http://{addr}{path}");
                let run = meter
                    .measure(round, *which, server, &url, &scenario.wrk)
                    .with_context(|| {
                        format!("{}, round {}, {}", scenario.label, round + 1, which.name())
                    })?;
                eprintln!("  {}", run.summary());
                runs.push(run);
            }
            if round % 2 == 1 {
                targets.reverse();
            }
        }
        results.push(runs);
    }

    let load = summary::Load {
        before: load_before,
        after: procfs::load_average(),
    };
    let clock = (clk_tck, clk_source);
    summary::print_report(args, tools, &machine, &load, clock, &scenarios, &results);
    drop(fleetcache);
    drop(nginx);
    dir.close().context("removing the temp dir")?;
    Ok(())
}

/// What a timed run needs besides the server and the wrk arguments.
#[derive(Debug)]
struct Meter {
    scratch: PathBuf,
    clk_tck: u64,
    server_cpu: usize,
}

impl Meter {
    /// One timed wrk run against one server.
    fn measure(
        &self,
        round: u32,
        which: Which,
        server: &mut Server,
        url: &str,
        wrk_args: &WrkArgs,
    ) -> Result<Run> {
        let Meter {
            scratch,
            clk_tck,
            server_cpu,
        } = self;
        let (clk_tck, server_cpu) = (*clk_tck, *server_cpu);
        interrupt::check()?;
        server.check_alive()?;
        let pid = server.pid();
        let sampler = RssSampler::start(
            pid,
            RSS_SAMPLE_INTERVAL,
            Duration::from_secs(wrk_args.secs + 120),
        );
        let client_before = procfs::waited_children_cpu_ticks()?;
        let core_before = procfs::core_ticks(server_cpu)?;
        let before = procfs::cpu_ticks(pid)?;
        let (wrk, _) = wrk::run(wrk_args, url, scratch)?;
        let after = procfs::cpu_ticks(pid)?;
        let core = procfs::core_ticks(server_cpu)?.since(core_before);
        let client_after = procfs::waited_children_cpu_ticks()?;
        let peak_rss = sampler.finish()?;
        server.check_alive()?;
        if wrk.non_2xx > 0 {
            bail!("{} responses were not 2xx/3xx", wrk.non_2xx);
        }
        if wrk.bytes_read <= 0.0 {
            // Zero *completed* requests is fine for 256 MiB in a short run;
            // zero bytes is not.
            bail!("wrk read nothing");
        }
        Ok(Run {
            round,
            server: which,
            wrk,
            cpu_secs: after.saturating_sub(before) as f64 / clk_tck as f64,
            server_core_busy_secs: core.busy as f64 / clk_tck as f64,
            server_core_irq_secs: core.irq as f64 / clk_tck as f64,
            client_cpu_secs: client_after.saturating_sub(client_before) as f64 / clk_tck as f64,
            peak_rss,
        })
    }
}
