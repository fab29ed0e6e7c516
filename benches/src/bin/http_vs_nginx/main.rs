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

mod objects;
mod report;
mod summary;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use fleetcache_benches::meter::Meter;
use fleetcache_benches::process::{self, SBIN_DIRS, Server, Tool};
use fleetcache_benches::procfs::{self, Machine};
use fleetcache_benches::servers::{self, FleetcacheAddrs, Nginx};
use fleetcache_benches::wrk::{self, WrkArgs};

use crate::objects::Object;
use crate::report::{Run, Which};

const SMALL_SIZE: u64 = 4 * 1024;
const LARGE_SIZE: u64 = 256 * 1024 * 1024;
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
        cmd.push_str(&fleetcache_benches::common_flags(
            self.fleetcache.as_deref(),
            self.server_cpu,
            self.client_cpu,
        ));
        cmd
    }
}

/// The external programs, resolved.
#[derive(Debug)]
struct Tools {
    fleetcache: PathBuf,
    nginx: Nginx,
    wrk_version: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    fleetcache_benches::main_with("http-vs-nginx", || {
        let tools = find_tools(&args)?;
        run(&args, &tools)
    })
}

fn find_tools(args: &Args) -> Result<Tools> {
    let found = process::require(&[
        Tool {
            name: "nginx",
            package: "nginx",
            extra_dirs: SBIN_DIRS,
        },
        Tool {
            name: "wrk",
            package: "wrk",
            extra_dirs: &[],
        },
        Tool {
            name: "taskset",
            package: "util-linux",
            extra_dirs: &[],
        },
    ])?;
    let [nginx, wrk, _taskset] = <[PathBuf; 3]>::try_from(found)
        .map_err(|_| anyhow::anyhow!("tool lookup returned the wrong count"))?;
    let fleetcache = servers::fleetcache_binary(args.fleetcache.as_deref(), BUILD)?;
    Ok(Tools {
        nginx: Nginx::probe(nginx)?,
        wrk_version: wrk::version(&wrk),
        fleetcache,
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

    let [public, admin, nginx_addr] = process::free_ports()?;
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
        None,
        dir.path().join("fleetcache.log"),
    )?;
    for object in [&small, &large] {
        objects::ingest(fc_addrs.admin, object)
            .with_context(|| format!("ingesting {} bytes", object.size))?;
    }

    let nginx_prefix = dir.path().join("nginx");
    std::fs::create_dir_all(&nginx_prefix)?;
    let conf = write_nginx_conf(&nginx_prefix, &root, nginx_addr)?;
    eprintln!(
        "starting {} on CPU {}",
        tools.nginx.path.display(),
        args.server_cpu
    );
    let mut nginx = tools.nginx.start(
        "nginx",
        args.server_cpu,
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
                let run = measure(&meter, round, *which, server, &url, &scenario.wrk)
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

/// One timed wrk run against one server, as a row of the report.
fn measure(
    meter: &Meter,
    round: u32,
    which: Which,
    server: &mut Server,
    url: &str,
    wrk_args: &WrkArgs,
) -> Result<Run> {
    let sample = meter.measure(server, url, wrk_args)?;
    Ok(Run {
        round,
        server: which,
        wrk: sample.wrk,
        cpu_secs: sample.cpu_secs,
        server_core_busy_secs: sample.server_core_busy_secs,
        server_core_irq_secs: sample.server_core_irq_secs,
        client_cpu_secs: sample.client_cpu_secs,
        peak_rss: sample.peak_rss,
    })
}

/// nginx's config: files from disk at the same `/blake3/<hash>` paths.
fn write_nginx_conf(prefix: &Path, root: &Path, listen: SocketAddr) -> Result<PathBuf> {
    let body = format!(
        r#"    access_log off;
    etag on;

    server {{
        listen {listen};
        root "{root}";
        location /blake3/ {{ }}
    }}
"#,
        root = root.display(),
    );
    Nginx::write_conf(prefix, "http-vs-nginx: files from disk", &body)
}
