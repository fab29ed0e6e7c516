//! `store-scale`: does a store of a million objects start and serve hits as
//! a store of a thousand does?
//!
//! ```sh
//! cargo build --release -p fleetcache-gateway -p fleetcache-benches
//! target/release/store-scale --objects 1000000 --rounds 5
//! ```
//!
//! Builds (or, with `--data-dir`, reuses) a store of `--objects` objects
//! through the store crate's API, mostly 1–16 KiB objects kept inline in the
//! index and one in 64 of 16–64 KiB in files, and a store of the first
//! `--small-objects` of the same objects. Then, alternating the two stores:
//! `Store::open` in this process; a real `fleetcache serve` timed from spawn
//! to `/readyz` 200, after a clean stop and after SIGKILL; and hits: one
//! node per store pinned to the server CPU, `wrk -t1 -c64` pinned to the
//! client CPU cycling through the hashes of the first `--hot` objects (held
//! by both stores), and over `--spread` random hashes of the large store.
//! Server CPU per request is utime + stime from `/proc/<pid>/stat`. Progress
//! goes to stderr, a Markdown report to stdout.

mod hits;
mod lookups;
mod objects;
mod report;
mod startup;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use fleetcache_benches::process::{self, Tool};
use fleetcache_benches::servers;
use fleetcache_benches::versus::{Common, Conditions};
use fleetcache_benches::wrk::{self, WrkArgs};

use crate::lookups::LookupSeries;
use crate::startup::{Launch, Subject};

const PROGRAM: &str = "store-scale";
const BUILD: &str = "cargo build --release -p fleetcache-gateway -p fleetcache-benches";

/// Start-up and hit cost of a large store against a small one.
#[derive(Debug, Parser)]
#[command(name = PROGRAM)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Objects in the large store.
    #[arg(long, default_value_t = 1_000_000)]
    objects: u64,
    /// Objects in the small store (the first of the large store's).
    #[arg(long, default_value_t = 1_000)]
    small_objects: u64,
    /// Where the large store lives: reused if it holds this benchmark's store
    /// of `--objects` objects, built there (and kept) if the directory is new
    /// or empty [default: a temp dir, removed at the end].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Concurrent ingests while building.
    #[arg(long, default_value_t = 64)]
    build_threads: usize,
    /// Store::open runs, and node start-ups, per store.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=1000))]
    opens: u32,
    /// Hashes the hot load cycles through (the first objects, in both stores).
    #[arg(long, default_value_t = 1_000)]
    hot: u64,
    /// Random hashes of the large store the spread load cycles through (0: no
    /// spread load).
    #[arg(long, default_value_t = 100_000)]
    spread: u64,
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    secs: u64,
    /// wrk connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Only write the hot and spread hash lists and their wrk scripts into
    /// DIR (to profile a node by hand), then exit.
    #[arg(long, value_name = "DIR")]
    scripts_only: Option<PathBuf>,
}

impl Args {
    fn reproduce(&self) -> String {
        let mut line = format!(
            "{BUILD} && target/release/{PROGRAM}{} --objects {} --small-objects {} --opens {} \
             --hot {} --spread {} --secs {} --connections {}",
            self.common.flags(),
            self.objects,
            self.small_objects,
            self.opens,
            self.hot,
            self.spread,
            self.secs,
            self.connections,
        );
        if let Some(dir) = &self.data_dir {
            line.push_str(&format!(" --data-dir {}", dir.display()));
        }
        line
    }

    fn check(&self) -> Result<()> {
        if self.small_objects == 0 || self.small_objects > self.objects {
            bail!("--small-objects must be between 1 and --objects");
        }
        if self.hot == 0 || self.hot > self.small_objects {
            bail!("--hot must be between 1 and --small-objects (both stores hold the hot objects)");
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    fleetcache_benches::main_with(PROGRAM, || {
        args.check()?;
        run(&args)
    })
}

fn run(args: &Args) -> Result<()> {
    let common = &args.common;
    let wrk_args = WrkArgs {
        cpu: common.client_cpu,
        connections: args.connections,
        secs: args.secs.max(1),
        latency: true,
        timeout_secs: 10,
    };
    if let Some(dir) = &args.scripts_only {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let sets = hits::HashSets::pick(args.hot, args.spread, args.objects, threads)?;
        for load in hits::loads(dir, &wrk_args, &sets)? {
            println!(
                "{}: {}",
                load.label,
                fleetcache_benches::load::LoadGenerator::command(
                    &load.generator,
                    "http://127.0.0.1:PORT/"
                )
            );
        }
        return Ok(());
    }
    let [wrk_path, _taskset] = process::require_each([
        Tool::new("wrk", "wrk", &[]),
        Tool::new("taskset", "util-linux", &[]),
    ])?;
    let binary = servers::fleetcache_binary(common.fleetcache.as_deref(), BUILD)?;
    let versions = wrk::version(&wrk_path);
    let mut conditions = Conditions::detect(common);
    let temp = tempfile::Builder::new()
        .prefix(&format!("{PROGRAM}-"))
        .tempdir()
        .context("creating the temp dir")?;
    let scratch = temp.path().join("scratch");
    std::fs::create_dir_all(&scratch)?;
    let large_dir = match &args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => temp.path().join("large"),
    };
    let small_dir = temp.path().join("small");
    let threads = std::thread::available_parallelism().map_or(2, usize::from);

    let large = objects::ensure(&large_dir, args.objects, args.build_threads)?;
    let small = objects::ensure(&small_dir, args.small_objects, args.build_threads)?;
    let subjects = [
        Subject {
            label: format!("{} objects", args.objects),
            dir: large_dir,
        },
        Subject {
            label: format!("{} objects", args.small_objects),
            dir: small_dir,
        },
    ];

    let mut timings = startup::store_opens(&subjects, args.opens)?;
    eprintln!("\npicking the hashes");
    let sets = hits::HashSets::pick(args.hot, args.spread, args.objects, threads)?;
    let mut lookups = vec![
        LookupSeries::new(format!("{}, hot", subjects[0].label), 0, &sets.hot),
        LookupSeries::new(format!("{}, hot", subjects[1].label), 1, &sets.hot),
    ];
    if !sets.spread.is_empty() {
        lookups.push(LookupSeries::new(
            format!("{}, spread", subjects[0].label),
            0,
            &sets.spread,
        ));
    }
    lookups::run(&subjects, &mut lookups, common.rounds)?;
    let launch = Launch {
        binary: binary.clone(),
        cpu: common.server_cpu,
        scratch: scratch.clone(),
    };
    startup::serve_starts(&launch, &subjects, args.opens, &mut timings)?;

    let loads = hits::loads(&scratch, &wrk_args, &sets)?;
    let mut nodes = Vec::new();
    for (index, subject) in subjects.iter().enumerate() {
        eprintln!("starting a node on the store of {}", subject.label);
        nodes.push(hits::Node::start(
            &launch,
            &subject.label,
            &subject.dir,
            &format!("hits-{index}.log"),
        )?);
    }
    let mut series = hits::plan(&loads, &nodes);
    let meter = conditions.meter(common, &scratch);
    hits::run(
        &meter,
        &mut nodes,
        &loads,
        &mut series,
        common.rounds,
        common.warmup_secs,
    )?;
    conditions.finish();
    drop(nodes);

    report::print(&report::Report {
        command: args.reproduce(),
        machine: conditions.machine_line(&versions),
        method: conditions.method(common, "wrk"),
        load: conditions.load_sentence(),
        built: [large, small],
        subjects: &subjects,
        timings: &timings,
        lookups: &lookups,
        series: &series,
        opens: args.opens,
        rounds: common.rounds,
    });
    temp.close().context("removing the temp dir")
}
