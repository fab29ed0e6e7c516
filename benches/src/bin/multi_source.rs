//! `multi-source`: one cold fetch from one holder against one from two holders at
//! once, each holder's link capped with `tbf`, across real hosts (network namespaces,
//! made by `deploy/local/fleet`).
//!
//! ```sh
//! cargo build --release -p fleetcache-gateway -p fleetcache-benches
//! sudo target/release/multi-source --size 64MiB --rounds 5 --rate 100mbit
//! ```
//!
//! A fleet of three nodes: node-1 and node-2 hold objects, node-3 fetches them. Per
//! round, alternating the order, two fresh random objects (so node-3's cache is cold
//! for each): one stored on a single holder (node-1 and node-2 in turn), one on both.
//! While the objects are stored the links are uncapped; then both holders' links are
//! capped at `--rate` both ways and node-3 is asked for the object over HTTP (its own
//! link is not capped), timed from the request to the last byte, the bytes hashed
//! against the hash. The report gives medians, the ratio two holders / one holder
//! (the target is 1.8×: two links, less the overheads) and each holder's share of
//! the two-holder fetches from node-3's per-peer byte counters. Needs root, `ip`,
//! `nft`, `tc` and `curl`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use fleetcache_benches::{http1, main_with, median, write_random_file};

/// One cold fetch from one holder vs from two holders at once, links capped with tbf.
#[derive(Debug, Parser)]
#[command(name = "multi-source")]
struct Args {
    /// Object size, e.g. 64MiB.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    size: u64,
    /// Rounds (each fetches one object from one holder and one from two); medians
    /// are reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Each holder's link cap, as `tc` takes it (bit, kbit, mbit, gbit).
    #[arg(long, default_value = "100mbit")]
    rate: String,
    /// The fleetcache binary (default: target/release/fleetcache).
    #[arg(long)]
    fleetcache: Option<PathBuf>,
    /// First three octets of the fleet's /24 (see deploy/local/fleet).
    #[arg(long, default_value = "198.18.9")]
    net: String,
}

fn parse_size(text: &str) -> Result<u64, String> {
    text.parse::<fleetcache_config::ByteSize>()
        .map(|s| s.0)
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    main_with("multi-source", || run(&args))
}

/// The fleet made by `deploy/local/fleet`, taken down (and its state deleted) on drop.
struct Fleet {
    script: PathBuf,
    dir: tempfile::TempDir,
    binary: PathBuf,
    net: String,
    token: String,
}

impl Fleet {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.script);
        command
            .args(args)
            .env("FLEET_DIR", self.dir.path())
            .env("FLEET_PREFIX", "fms-")
            .env("FLEET_NET", &self.net)
            .env("FLEETCACHE_BIN", &self.binary);
        command
    }

    fn run(&self, args: &[&str]) -> Result<String> {
        let out = self
            .command(args)
            .output()
            .with_context(|| format!("running fleet {args:?}"))?;
        if !out.status.success() {
            bail!(
                "fleet {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn admin(&self, node: usize) -> String {
        format!("http://{}.{node}:8081", self.net)
    }

    fn public(&self, node: usize) -> Result<SocketAddr> {
        Ok(format!("{}.{node}:8080", self.net).parse()?)
    }

    /// `curl` against a node's admin listener with the fleet's token.
    fn curl(&self, args: &[&str]) -> Result<String> {
        let auth = format!("authorization: Bearer {}", self.token);
        let out = Command::new("curl")
            .args(["-sS", "--fail", "-H", &auth])
            .args(args)
            .output()
            .context("running curl")?;
        if !out.status.success() {
            bail!(
                "curl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn cap(&self, rate: &str) -> Result<()> {
        for node in ["1", "2"] {
            self.run(&["degrade", node, "0%", rate])?;
        }
        Ok(())
    }

    fn uncap(&self) -> Result<()> {
        for node in ["1", "2"] {
            self.run(&["heal", node])?;
        }
        Ok(())
    }

    /// Verified bytes node-3 has received from each holder.
    fn received(&self) -> Result<[f64; 2]> {
        let metrics = self.curl(&[&format!("{}/metrics", self.admin(3))])?;
        let mut out = [0.0; 2];
        for (i, slot) in out.iter_mut().enumerate() {
            let sample = format!(
                "fleetcache_peer_bytes_received_total{{peer=\"{}.{}:7070\"}} ",
                self.net,
                i + 1
            );
            *slot = metrics
                .lines()
                .find_map(|line| line.strip_prefix(&sample))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0);
        }
        Ok(out)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.command(&["down", "--purge"]).output();
    }
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holders {
    One,
    Two,
}

fn run(args: &Args) -> Result<()> {
    if effective_uid() != Some(0) {
        bail!("needs root (network namespaces, tc): sudo {COMMAND}");
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let binary = args
        .fleetcache
        .clone()
        .unwrap_or_else(|| repo.join("target/release/fleetcache"));
    if !binary.is_file() {
        bail!(
            "no fleetcache binary at {} (cargo build --release -p fleetcache-gateway, or --fleetcache)",
            binary.display()
        );
    }
    let mut fleet = Fleet {
        script: repo.join("deploy/local/fleet"),
        dir: tempfile::tempdir()?,
        binary,
        net: args.net.clone(),
        token: String::new(),
    };
    eprintln!("starting three nodes in network namespaces…");
    fleet.run(&["up", "3"])?;
    fleet.token = std::fs::read_to_string(fleet.dir.path().join("admin-token"))?
        .trim()
        .to_owned();
    let scratch = tempfile::tempdir()?;

    let mut one = Vec::new();
    let mut two = Vec::new();
    let mut shares = Vec::new();
    for round in 0..args.rounds {
        let mut order = [Holders::One, Holders::Two];
        if round % 2 == 1 {
            order.reverse();
        }
        for holders in order {
            let nodes: &[usize] = match holders {
                Holders::One => &[1 + round % 2],
                Holders::Two => &[1, 2],
            };
            let (rate, share) = cold_fetch(&fleet, scratch.path(), args, nodes)?;
            match holders {
                Holders::One => one.push(rate),
                Holders::Two => {
                    two.push(rate);
                    shares.push(share);
                }
            }
        }
        eprintln!(
            "round {}: one holder {:.1} MB/s, two holders {:.1} MB/s ({:.2}×), node-1 sent {:.0} % of the latter",
            round + 1,
            one.last().copied().unwrap_or(0.0),
            two.last().copied().unwrap_or(0.0),
            two.last().copied().unwrap_or(0.0) / one.last().copied().unwrap_or(f64::NAN),
            shares.last().copied().unwrap_or(0.0) * 100.0
        );
    }
    let one_median = median(&one).unwrap_or(0.0);
    let two_median = median(&two).unwrap_or(0.0);
    let share = median(&shares).unwrap_or(0.0);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "## multi-source: one cold {} MiB fetch, holders capped at {} each",
        args.size >> 20,
        args.rate
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Medians of {} rounds, alternating order; three nodes in network namespaces (`deploy/local/fleet`), the holders' links capped with tbf both ways, the requester's not. `sudo {COMMAND} --size {}MiB --rounds {} --rate {}`",
        args.rounds,
        args.size >> 20,
        args.rounds,
        args.rate
    )?;
    writeln!(out)?;
    writeln!(out, "| holders | MB/s | × one holder |")?;
    writeln!(out, "|---|---:|---:|")?;
    writeln!(out, "| one | {one_median:.1} | 1.00 |")?;
    writeln!(
        out,
        "| two at once | {two_median:.1} | {:.2} (target ≥ 1.80) |",
        two_median / one_median
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Link cap: {} = {:.1} MB/s. With two holders node-1 sent {:.0} % of the bytes (median), node-2 the rest.",
        args.rate,
        rate_mb_per_s(&args.rate).unwrap_or(f64::NAN),
        share * 100.0
    )?;
    Ok(())
}

const COMMAND: &str = "target/release/multi-source";

/// A `tc` rate in MB/s.
fn rate_mb_per_s(rate: &str) -> Option<f64> {
    let (digits, unit) = rate.split_at(rate.find(|c: char| !c.is_ascii_digit())?);
    let n: f64 = digits.parse().ok()?;
    let bits = match unit {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => return None,
    };
    Some(n * bits / 8.0 / 1e6)
}

/// Stores a fresh object on `nodes`, caps the holders, and times node-3's cold fetch
/// of it; returns the rate (MB/s) and node-1's share of the bytes.
fn cold_fetch(fleet: &Fleet, scratch: &Path, args: &Args, nodes: &[usize]) -> Result<(f64, f64)> {
    fleet.uncap()?;
    let file = scratch.join("object");
    let hash = write_random_file(&file, args.size)?;
    let data = format!("@{}", file.display());
    for &node in nodes {
        fleet.curl(&[
            "--data-binary",
            &data,
            "-H",
            "content-type: application/octet-stream",
            &format!("{}/blobs", fleet.admin(node)),
        ])?;
    }
    std::fs::remove_file(&file)?;
    fleet.cap(&args.rate)?;
    let before = fleet.received()?;
    let mut sink = Hashing(blake3::Hasher::new(), 0);
    let started = Instant::now();
    let head = http1::exchange(
        fleet.public(3)?,
        "GET",
        &format!("/blake3/{hash}"),
        None,
        &mut sink,
    )?;
    let elapsed = started.elapsed();
    if head.status != 200 || sink.0.finalize() != hash || sink.1 != args.size {
        bail!(
            "node-3 answered {} with {} bytes that do not hash to {hash}",
            head.status,
            sink.1
        );
    }
    let after = fleet.received()?;
    let from = [after[0] - before[0], after[1] - before[1]];
    let share = from[0] / (from[0] + from[1]).max(1.0);
    // Keep the disks small: the object is not needed again.
    fleet.uncap()?;
    for node in [1, 2, 3] {
        let _ = fleet.curl(&[
            "-X",
            "DELETE",
            &format!("{}/blobs/{hash}", fleet.admin(node)),
        ]);
    }
    Ok((mb_per_s(args.size, elapsed), share))
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

/// A sink that hashes and counts what it is given.
struct Hashing(blake3::Hasher, u64);

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
