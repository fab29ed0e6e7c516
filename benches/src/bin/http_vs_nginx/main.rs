//! `http-vs-nginx`: fleetcache against nginx serving the same files from
//! disk and Varnish serving them from memory (hits only), on loopback,
//! servers pinned to one core and `wrk` to another.
//!
//! ```sh
//! cargo build --release -p fleetcache-gateway -p fleetcache-benches
//! target/release/http-vs-nginx --rounds 3
//! ```
//!
//! Scenarios: (a) a 4 KiB object, hot hits, 64 connections; (b) a 256 MiB
//! object, 4 connections; (c) the same with 16. Each round runs the three
//! servers, the order rotated by one each round. Varnish (`-s malloc`)
//! sits in front of a backend nginx on the client core and is filled before
//! the runs (see [`varnish`]). Reports medians across rounds, CPU time per
//! request / per GiB (utime + stime of each server's process group from
//! `/proc/<pid>/stat`), peak VmRSS, and the ratios of fleetcache to nginx
//! and to Varnish against the targets, as a Markdown table. Progress goes
//! to stderr, the report to stdout.

mod summary;
mod varnish;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use fleetcache_benches::objects::{self, Object};
use fleetcache_benches::process::{self, Tool};
use fleetcache_benches::servers::{FleetcacheAddrs, Nginx};
use fleetcache_benches::versus::{self, Common, Conditions, Side, Stage, Tools, Which};
use fleetcache_benches::wrk::{self, WrkArgs};

use crate::varnish::Cached;

const PROGRAM: &str = "http-vs-nginx";
const SMALL_SIZE: u64 = 4 * 1024;
const LARGE_SIZE: u64 = 256 * 1024 * 1024;
const BUILD: &str = "cargo build --release -p fleetcache-gateway -p fleetcache-benches";

/// Compare fleetcache with nginx and Varnish serving the same objects
/// (loopback, pinned).
#[derive(Debug, Parser)]
#[command(name = PROGRAM)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Seconds per wrk run for both scenarios (overrides the two below).
    #[arg(long, value_name = "SECS")]
    secs: Option<u64>,
    /// Seconds per wrk run, 4 KiB scenario.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    small_secs: u64,
    /// Seconds per wrk run, 256 MiB scenarios.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    large_secs: u64,
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
        format!(
            "{BUILD} && target/release/{PROGRAM}{} --small-secs {} --large-secs {}",
            self.common.flags(),
            self.small_secs(),
            self.large_secs(),
        )
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    fleetcache_benches::main_with(PROGRAM, || {
        let client = Tool::new("wrk", "wrk", &[]);
        run(
            &args,
            &Tools::find_with_varnish(&args.common, BUILD, client, wrk::version)?,
        )
    })
}

/// A benchmark scenario: which object, which wrk invocation.
#[derive(Debug)]
struct Scenario {
    /// `4 KiB hot hits, 64 conns`.
    label: String,
    object: Object,
    wrk: WrkArgs,
}

impl Scenario {
    fn large(&self) -> bool {
        self.object.size == LARGE_SIZE
    }
}

fn run(args: &Args, tools: &Tools) -> Result<()> {
    let common = &args.common;
    let mut conditions = Conditions::detect(common);
    // Declared before the servers, so it is removed after they are killed.
    let stage = Stage::create(PROGRAM, SMALL_SIZE, LARGE_SIZE)?;
    let [public, admin, nginx_addr, varnish_addr, backend_addr] = process::free_ports()?;
    let fc_addrs = FleetcacheAddrs { public, admin };

    let mut fleetcache = tools.start_fleetcache(common, &stage, fc_addrs, None)?;
    let conf = write_nginx_conf(&stage, nginx_addr)?;
    let mut nginx = tools.start_nginx(common, &stage, &conf, nginx_addr)?;
    let mut varnish = Cached::start(tools, common, &stage, varnish_addr, backend_addr)?;
    let (small, large) = (&stage.small, &stage.large);
    varnish.fill(&[small, large])?;

    eprintln!("checking every server returns the same bytes");
    for (name, addr) in [
        ("fleetcache", fc_addrs.public),
        ("nginx", nginx_addr),
        ("varnish", varnish_addr),
    ] {
        objects::check(name, addr, small, Some(&stage.small_bytes))?;
        objects::check(name, addr, large, None)?;
    }

    let wrk = |connections, secs, latency, timeout_secs| WrkArgs {
        cpu: common.client_cpu,
        connections,
        secs,
        latency,
        timeout_secs,
    };
    let scenarios = [
        (
            small,
            "4 KiB hot hits",
            wrk(64, args.small_secs(), true, 10),
        ),
        (large, "256 MiB", wrk(4, args.large_secs(), false, 120)),
        (large, "256 MiB", wrk(16, args.large_secs(), false, 120)),
    ]
    .map(|(object, what, wrk)| Scenario {
        label: format!("{what}, {} conns", wrk.connections),
        object: object.clone(),
        wrk,
    });
    let plans = scenarios.each_ref().map(|s| versus::Scenario {
        label: &s.label,
        object: &s.object,
        generator: &s.wrk,
        only: None,
    });
    let mut sides = [
        Side::new(
            Which::Fleetcache,
            (&mut fleetcache, format!("http://{}", fc_addrs.public)),
        ),
        Side::new(Which::Nginx, (&mut nginx, format!("http://{nginx_addr}"))),
        Side::new(
            Which::Varnish,
            (&mut varnish.server, format!("http://{varnish_addr}")),
        ),
    ];
    let meter = conditions.meter(common, &stage.scratch);
    let results = versus::alternate_all(&meter, &mut sides, &plans, common)?;
    let misses = varnish.misses_since_fill()?;

    conditions.finish();
    summary::print_report(args, tools, &conditions, &scenarios, &results, misses);
    drop(fleetcache);
    drop(nginx);
    drop(varnish);
    stage.close()
}

/// nginx's config: files from disk at the same `/blake3/<hash>` paths.
fn write_nginx_conf(stage: &Stage, listen: SocketAddr) -> Result<PathBuf> {
    let body = format!(
        r#"    access_log off;
    etag on;

    server {{
        listen {listen};
        root "{root}";
        location /blake3/ {{ }}
    }}
"#,
        root = stage.root.display(),
    );
    Nginx::write_conf(
        &stage.nginx_prefix()?,
        "http-vs-nginx: files from disk",
        &body,
    )
}
