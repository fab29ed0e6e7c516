//! `origin-vs-proxies`: fleetcache's origin mode next to nginx `proxy_cache`
//! (with `proxy_cache_lock on`) and Varnish, all three in front of the same
//! origin (a separate nginx serving files from a temp dir), on loopback.
//!
//! ```sh
//! cargo build --release -p fleetcache-gateway && \
//!   cargo run --release -p fleetcache-benches --bin origin-vs-proxies -- --rounds 3
//! ```
//!
//! 1. Hot hits: a 4 KiB object the origin marks `max-age=3600`, stored by
//!    each cache first (checked), then `wrk -t1 -c64` pinned to the client
//!    core against each cache pinned to the server core: requests/s and the
//!    cache's CPU time per request (its process group's utime + stime).
//! 2. Cold object: 64 MiB from an origin rate-limited per connection (a few
//!    seconds for the whole body), asked for by 100 clients at once under a
//!    fresh URL each run: time to first body byte p50/p99 across the
//!    clients, and how many requests reached the origin.
//!
//! Runs alternate fleetcache, nginx, varnish within each round; the report
//! gives medians across rounds and fleetcache's ratio to each. It asserts
//! nothing. Progress goes to stderr, the Markdown report to stdout.

mod caches;
mod cold;
mod hot;
mod objects;
mod report;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use fleetcache_benches::meter::Meter;
use fleetcache_benches::origin::{Origin, OriginSpec};
use fleetcache_benches::process::{self, SBIN_DIRS, Tool};
use fleetcache_benches::procfs::{self, Machine};
use fleetcache_benches::servers::{self, Nginx, Varnish};
use fleetcache_benches::stampede::Check;
use fleetcache_benches::wrk::{self, WrkArgs};

use crate::caches::Binaries;
use crate::cold::Cold;
use crate::objects::{COLD_DIR, HOT_PATH, Objects};

const PROGRAM: &str = "origin-vs-proxies";
const BUILD: &str = "cargo build --release -p fleetcache-gateway";
const HOT_SIZE: u64 = 4 * 1024;
const MIB: u64 = 1024 * 1024;

/// fleetcache's origin mode vs nginx proxy_cache vs Varnish, same origin.
#[derive(Debug, Parser)]
#[command(name = PROGRAM)]
struct Args {
    /// The fleetcache binary [default: `fleetcache` next to this executable].
    #[arg(long, value_name = "PATH")]
    fleetcache: Option<PathBuf>,
    /// Rounds per measure; each round runs fleetcache, nginx, varnish.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rounds: u32,
    /// Only one of the two measures.
    #[arg(long, value_enum)]
    only: Option<Measure>,
    /// Seconds per timed wrk run (hot hits).
    #[arg(long, default_value_t = 5, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    hot_secs: u64,
    /// Seconds of untimed wrk per cache before the hot rounds (0: none).
    #[arg(long, default_value_t = 1, value_name = "SECS")]
    warmup_secs: u64,
    /// wrk connections (hot hits).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    connections: u32,
    /// Concurrent clients for the cold object.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
    clients: u32,
    /// Size of the cold object, MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    cold_mib: u64,
    /// The origin's rate limit per connection for the cold object, MiB/s
    /// (nginx `limit_rate`; it overshoots somewhat, the report gives the
    /// measured time).
    #[arg(long, default_value_t = 20, value_name = "MIB_PER_SEC", value_parser = clap::value_parser!(u64).range(1..))]
    origin_rate_mib: u64,
    /// CPU the caches are pinned to.
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// CPU wrk, the cold clients and the origin are pinned to.
    #[arg(long, default_value_t = 1)]
    client_cpu: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Measure {
    Hot,
    Cold,
}

impl Args {
    fn runs(&self, measure: Measure) -> bool {
        self.only.is_none_or(|only| only == measure)
    }

    /// The command line that reproduces this run.
    fn reproduce(&self) -> String {
        let only = match self.only {
            None => "",
            Some(Measure::Hot) => " --only hot",
            Some(Measure::Cold) => " --only cold",
        };
        let common = fleetcache_benches::common_flags(
            self.fleetcache.as_deref(),
            self.server_cpu,
            self.client_cpu,
        );
        format!(
            "{BUILD} && cargo run --release -p fleetcache-benches --bin {PROGRAM} -- --rounds {} \
             --hot-secs {} --warmup-secs {} --connections {} --clients {} --cold-mib {} \
             --origin-rate-mib {}{only}{common}",
            self.rounds,
            self.hot_secs,
            self.warmup_secs,
            self.connections,
            self.clients,
            self.cold_mib,
            self.origin_rate_mib
        )
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    fleetcache_benches::main_with(PROGRAM, || run(&args, &find_tools(&args)?))
}

/// The external programs, resolved, and their versions.
#[derive(Debug)]
struct Tools {
    bins: Binaries,
    wrk_version: String,
}

fn find_tools(args: &Args) -> Result<Tools> {
    let [nginx, varnishd, wrk, _taskset] = process::require_each([
        Tool::new("nginx", "nginx", SBIN_DIRS),
        Varnish::TOOL,
        Tool::new("wrk", "wrk", &[]),
        Tool::new("taskset", "util-linux", &[]),
    ])?;
    let fleetcache = servers::fleetcache_binary(args.fleetcache.as_deref(), BUILD)?;
    Ok(Tools {
        wrk_version: wrk::version(&wrk),
        bins: Binaries {
            fleetcache,
            nginx: Nginx::probe(nginx)?,
            varnish: Varnish::probe(varnishd),
        },
    })
}

fn run(args: &Args, tools: &Tools) -> Result<()> {
    let machine = Machine::detect();
    let load_before = procfs::load_average();
    let (clk_tck, clk_source) = procfs::clock_ticks_per_second();
    if args.server_cpu == args.client_cpu {
        eprintln!("warning: caches and clients share CPU {}", args.server_cpu);
    }
    // The cold clients run in this process; the caches' core stays theirs.
    process::pin_self(args.client_cpu)?;

    // Declared before the servers, so it is removed after they are killed.
    let dir = tempfile::Builder::new()
        .prefix("origin-vs-proxies-")
        .tempdir()
        .context("creating the temp dir")?;
    let root = dir.path().join("www");
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch)?;
    eprintln!("creating the objects in {}", root.display());
    let objects = Objects::create(&root, HOT_SIZE, args.cold_mib * MIB)?;
    let cold_size = objects.cold_size;

    let [origin_addr] = process::free_ports()?;
    eprintln!("starting the origin (nginx) on CPU {}", args.client_cpu);
    let origin = Origin::start(
        &tools.bins.nginx,
        args.client_cpu,
        &dir.path().join("origin"),
        origin_addr,
        OriginSpec {
            root: &root,
            limited: COLD_DIR,
            rate: args.origin_rate_mib * MIB,
            written_by: PROGRAM,
        },
    )?;
    let mut caches = caches::start_all(&tools.bins, dir.path(), origin_addr, args.server_cpu)?;

    eprintln!("checking each cache stores the hot object");
    hot::check_stored(&caches, &objects.hot)?;

    let mut hot_runs = Vec::new();
    if args.runs(Measure::Hot) {
        let meter = Meter {
            scratch: scratch.clone(),
            clk_tck,
            server_cpu: args.server_cpu,
        };
        let wrk_args = WrkArgs {
            cpu: args.client_cpu,
            connections: args.connections,
            secs: args.hot_secs,
            latency: true,
            timeout_secs: 10,
        };
        hot_runs = hot::run(
            &mut caches,
            &meter,
            &wrk_args,
            args.warmup_secs,
            args.rounds,
        )?;
    }
    let hot_origin_requests = origin.requests_for(HOT_PATH)?;

    let mut cold_runs = Vec::new();
    let mut origin_alone = None;
    if args.runs(Measure::Cold) {
        eprintln!("cold object: timing the origin alone");
        let alone = origin.time_alone(&cold::run_uri(0, "origin-alone"), cold_size)?;
        eprintln!("  origin alone: {:.2} s", alone.as_secs_f64());
        origin_alone = Some(alone);
        let cold = Cold {
            origin: &origin,
            check: Check::LengthAndOneHash {
                len: cold_size,
                hash: objects.cold_hash,
            },
            clients: usize::try_from(args.clients)?,
            limit: alone * 20 + Duration::from_secs(60),
            clk_tck,
        };
        cold_runs = cold.run(&mut caches, args.rounds)?;
    }

    let facts = summary::Facts {
        machine,
        load_before,
        load_after: procfs::load_average(),
        clk_tck,
        clk_source,
        origin_alone,
        origin_rate: origin.rate,
        hot_origin_requests,
    };
    summary::print(args, tools, &facts, &hot_runs, &cold_runs);
    drop(caches);
    drop(origin);
    dir.close().context("removing the temp dir")?;
    Ok(())
}
