//! `fleet-stampede`: a cold stampede on a fleet of three fleetcache nodes
//! (origin mode, joined into one swarm with fleet certificates) next to
//! three nginx `proxy_cache` nodes with `proxy_cache_lock on`, all six in
//! front of the same rate-limited origin, on loopback.
//!
//! ```sh
//! cargo build --release -p fleetcache-gateway && \
//!   cargo run --release -p fleetcache-benches --bin fleet-stampede -- --rounds 5
//! ```
//!
//! Each run asks for one object (64 MiB, the origin sending at most 32 MB/s
//! per connection) under a URL no node has seen, from 150 clients at the
//! same moment, spread evenly over the three nodes of one side. It counts
//! the requests for that URL that reached the origin (nginx's nodes do not
//! know each other, so each fetches once; a fleet can fetch once in all)
//! and times each client's first and last body byte; every client compares
//! every byte with the origin's. Before each fleetcache run, every node's
//! admin `/peers` must show the other nodes up.
//!
//! Each round runs both sides, the order alternating (fleetcache first in
//! odd rounds); the report gives medians across rounds and the ratio
//! fleetcache / nginx. It asserts nothing. Progress goes to stderr, the
//! Markdown report to stdout.

mod cluster;
mod fleet;
mod report;
mod round;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use fleetcache_benches::origin::{Origin, OriginSpec};
use fleetcache_benches::process::{self, SBIN_DIRS, Tool};
use fleetcache_benches::procfs::{self, Machine};
use fleetcache_benches::servers::{self, Nginx};
use fleetcache_benches::stampede::Check;
use fleetcache_benches::write_random_file;
use fleetcache_config::ByteSize;

use crate::round::Stampede;

const PROGRAM: &str = "fleet-stampede";
const BUILD: &str = "cargo build --release -p fleetcache-gateway";
/// The object; each run asks for it under a fresh query string.
const OBJECT_PATH: &str = "/cold/object.bin";
/// The origin rate-limits what is under this prefix.
const OBJECT_DIR: &str = "/cold/";

/// A cold stampede on three fleetcache nodes vs three nginx proxy_cache nodes.
#[derive(Debug, Parser)]
#[command(name = PROGRAM)]
struct Args {
    /// The fleetcache binary [default: `fleetcache` next to this executable].
    #[arg(long, value_name = "PATH")]
    fleetcache: Option<PathBuf>,
    /// Rounds; each round runs both sides once.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rounds: u32,
    /// Nodes per side.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=16))]
    nodes: u32,
    /// Clients per run, spread evenly over the nodes (client i asks node
    /// i mod nodes).
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u32).range(1..=10000))]
    clients: u32,
    /// Size of the object, e.g. 64MiB or 8MiB.
    #[arg(long, default_value = "64MiB", value_name = "SIZE", value_parser = parse_size)]
    object_size: ByteSize,
    /// The origin's rate limit per connection, bytes per second, e.g. 32MB
    /// (nginx `limit_rate`; it overshoots somewhat, the report gives the
    /// measured time).
    #[arg(long, default_value = "32MB", value_name = "SIZE", value_parser = parse_rate)]
    origin_rate: ByteSize,
    /// CPU every node of both sides is pinned to.
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// CPU the clients and the origin are pinned to.
    #[arg(long, default_value_t = 1)]
    client_cpu: usize,
}

fn parse_size(text: &str) -> Result<ByteSize, String> {
    let size: ByteSize = text.parse().map_err(|e| format!("{e}"))?;
    match size.0 {
        0 => Err("the object must not be empty".to_owned()),
        n if n > 4 << 30 => Err("at most 4GiB: every client compares it from memory".to_owned()),
        _ => Ok(size),
    }
}

fn parse_rate(text: &str) -> Result<ByteSize, String> {
    let rate: ByteSize = text.parse().map_err(|e| format!("{e}"))?;
    if rate.0 < 1024 {
        return Err("at least 1KiB per second".to_owned());
    }
    Ok(rate)
}

impl Args {
    fn nodes(&self) -> usize {
        self.nodes as usize
    }

    /// The command line that reproduces this run.
    fn reproduce(&self) -> String {
        let common = fleetcache_benches::common_flags(
            self.fleetcache.as_deref(),
            self.server_cpu,
            self.client_cpu,
        );
        format!(
            "{BUILD} && cargo run --release -p fleetcache-benches --bin {PROGRAM} -- --rounds {} \
             --nodes {} --clients {} --object-size {} --origin-rate {}{common}",
            self.rounds, self.nodes, self.clients, self.object_size, self.origin_rate,
        )
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    fleetcache_benches::main_with(PROGRAM, || run(&args, &find_tools(&args)?))
}

/// The external programs, resolved.
#[derive(Debug)]
struct Tools {
    fleetcache: PathBuf,
    fleetcache_version: String,
    nginx: Nginx,
}

fn find_tools(args: &Args) -> Result<Tools> {
    let tool = |name, package, extra_dirs| Tool {
        name,
        package,
        extra_dirs,
    };
    let found = process::require(&[
        tool("nginx", "nginx", SBIN_DIRS),
        tool("taskset", "util-linux", &[]),
    ])?;
    let [nginx, _taskset] = <[PathBuf; 2]>::try_from(found)
        .map_err(|_| anyhow::anyhow!("tool lookup returned the wrong count"))?;
    let fleetcache = servers::fleetcache_binary(args.fleetcache.as_deref(), BUILD)?;
    Ok(Tools {
        fleetcache_version: process::version_line(&fleetcache, "--version"),
        fleetcache,
        nginx: Nginx::probe(nginx)?,
    })
}

fn run(args: &Args, tools: &Tools) -> Result<()> {
    let machine = Machine::detect();
    let load_before = procfs::load_average();
    let (clk_tck, clk_source) = procfs::clock_ticks_per_second();
    if args.server_cpu == args.client_cpu {
        eprintln!("warning: nodes and clients share CPU {}", args.server_cpu);
    }
    // The clients run in this process; the nodes' core stays theirs.
    process::pin_self(args.client_cpu)?;

    // Declared before the servers, so it is removed after they are killed.
    let dir = tempfile::Builder::new()
        .prefix("fleet-stampede-")
        .tempdir()
        .context("creating the temp dir")?;
    let root = dir.path().join("www");
    std::fs::create_dir_all(root.join(OBJECT_DIR.trim_matches('/')))?;
    let object_file = root.join(OBJECT_PATH.trim_start_matches('/'));
    eprintln!(
        "creating the {} object in {}",
        args.object_size,
        root.display()
    );
    write_random_file(&object_file, args.object_size.0)?;
    let content = Bytes::from(
        std::fs::read(&object_file)
            .with_context(|| format!("reading {}", object_file.display()))?,
    );

    let [origin_addr] = process::free_ports()?;
    eprintln!("starting the origin (nginx) on CPU {}", args.client_cpu);
    let origin = Origin::start(
        &tools.nginx,
        args.client_cpu,
        &dir.path().join("origin"),
        origin_addr,
        OriginSpec {
            root: &root,
            limited: OBJECT_DIR,
            rate: args.origin_rate.0,
            written_by: PROGRAM,
        },
    )?;

    eprintln!("timing the object straight from the origin");
    let alone = origin.time_alone(&round::run_uri(0, "origin-alone"), args.object_size.0)?;
    eprintln!("  origin alone: {:.2} s", alone.as_secs_f64());

    let mut clusters = [
        fleet::start(&fleet::FleetSpec {
            binary: &tools.fleetcache,
            cpu: args.server_cpu,
            dir: &dir.path().join("fleetcache"),
            origin: origin_addr,
            nodes: args.nodes(),
            capacity: store_capacity(args),
        })?,
        cluster::start_nginx(
            &tools.nginx,
            args.server_cpu,
            &dir.path().join("nginx"),
            origin_addr,
            args.nodes(),
        )?,
    ];

    let stampede = Stampede {
        origin: &origin,
        check: Check::Content(content),
        clients: usize::try_from(args.clients)?,
        limit: alone * 20 + Duration::from_secs(60),
        clk_tck,
        server_cpu: args.server_cpu,
        client_cpu: args.client_cpu,
    };
    let runs = stampede.rounds(&mut clusters, args.rounds)?;

    let facts = summary::Facts {
        machine,
        load_before,
        load_after: procfs::load_average(),
        clk_tck,
        clk_source,
        origin_alone: alone,
    };
    summary::print(args, tools, &facts, &runs);
    drop(clusters);
    drop(origin);
    dir.close().context("removing the temp dir")?;
    Ok(())
}

/// Each node's store: room for every round's object and then some, so
/// nothing is evicted during the benchmark.
fn store_capacity(args: &Args) -> u64 {
    args.object_size
        .0
        .saturating_mul(u64::from(args.rounds) + 2)
        .saturating_add(1 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_the_reproducing_command() {
        let args = Args::parse_from([PROGRAM]);
        assert_eq!(args.rounds, 5);
        assert_eq!(args.nodes, 3);
        assert_eq!(args.clients, 150);
        assert_eq!(args.object_size.0, 64 << 20);
        assert_eq!(args.origin_rate.0, 32_000_000);
        let command = args.reproduce();
        assert!(
            command.ends_with(
                "--bin fleet-stampede -- --rounds 5 --nodes 3 --clients 150 \
                 --object-size 64MiB --origin-rate 32MB"
            ),
            "{command}"
        );
        let args = Args::parse_from([
            PROGRAM,
            "--object-size",
            "8MiB",
            "--rounds",
            "1",
            "--client-cpu",
            "0",
        ]);
        let command = args.reproduce();
        assert!(command.contains("--rounds 1 "), "{command}");
        assert!(command.contains("--object-size 8MiB"), "{command}");
        assert!(
            command.ends_with("--server-cpu 0 --client-cpu 0"),
            "{command}"
        );
    }

    #[test]
    fn sizes_are_checked() {
        assert!(parse_size("0").is_err());
        assert!(parse_size("5GiB").is_err());
        assert_eq!(parse_size("1MB").map(|s| s.0), Ok(1_000_000));
        assert!(parse_rate("100B").is_err());
        assert_eq!(parse_rate("32MB").map(|s| s.0), Ok(32_000_000));
    }
}
