//! `swarm-transfer`: node→node verified transfer over loopback QUIC, against raw quinn,
//! iroh-blobs and raw BLAKE3 measured in the same run.
//!
//! ```sh
//! cargo build --release -p fleetcache-benches
//! cargo build --release --manifest-path benches/iroh-reference/Cargo.toml --target-dir target
//! target/release/swarm-transfer --size 1GiB --rounds 5
//! ```
//!
//! Per round, alternating the order:
//! - **raw quinn**: one bidirectional stream, the server writes the object's bytes from
//!   memory, the client reads and drops them (the fleet's TLS, quinn's default transport
//!   settings);
//! - **swarm fetch**: node B locates the object on node A (HAVE, size proof) and fetches
//!   it with every 16 KiB group verified, A reading and checking its store files;
//! - **fill**: B's gateway fills the object into its store (triggered by HEAD), i.e. the
//!   fetch plus writing it into the store, syncing it and indexing it;
//! - **pull**: curl GETs the object from a fresh node B, which fills it from A and
//!   streams it to curl as it arrives: the whole miss path a user sees;
//! - **iroh-fs / iroh-mem**: iroh-blobs 0.104 fetching the same size between two
//!   endpoints on loopback into a fresh file store / memory store (the
//!   `iroh-reference` child process, see `fleetcache_benches::iroh`; skipped with a
//!   note when it is not built);
//! - **blake3**: one core hashing `size` bytes in memory.
//!
//! Then a fan-out: four nodes fetch the object from A at once.
//! Reports medians and ratios against raw quinn and iroh-blobs' file store, in MB/s
//! and in the whole machine's busy CPU time per GiB over the same interval (every
//! process, curl and the iroh child included; on two shared cores the rates follow
//! from what each path costs, and the cost moves far less run to run); progress on
//! stderr, report on stdout.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
use fleetcache_benches::iroh::{IROH_BUILD, IrohReference, IrohStore};
use fleetcache_benches::median;
use fleetcache_benches::procfs::{self, CoreTicks};
use fleetcache_config::Sources;
use fleetcache_gateway::Node;
use fleetcache_store::{Hash, Store, StoreOptions};
use fleetcache_swarm::{FleetCa, NodeCert, NodeIdentity, Swarm, SwarmOptions};
use rand::RngCore;

const COMMAND: &str = "cargo build --release -p fleetcache-benches && \
                       target/release/swarm-transfer";

/// What is measured each round, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    Quinn,
    Fetch,
    Fill,
    Pull,
    IrohFile,
    IrohMemory,
    Blake3,
}

impl Measure {
    const ALL: [Measure; 7] = [
        Measure::Quinn,
        Measure::Fetch,
        Measure::Fill,
        Measure::Pull,
        Measure::IrohFile,
        Measure::IrohMemory,
        Measure::Blake3,
    ];

    /// The name `--only` takes and the progress lines show.
    fn name(self) -> &'static str {
        match self {
            Measure::Quinn => "quinn",
            Measure::Fetch => "fetch",
            Measure::Fill => "fill",
            Measure::Pull => "pull",
            Measure::IrohFile => "iroh-fs",
            Measure::IrohMemory => "iroh-mem",
            Measure::Blake3 => "blake3",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Measure::Quinn => "raw quinn, one stream, no verification",
            Measure::Fetch => "swarm fetch, every group verified (A checks on read, B on receipt)",
            Measure::Fill => "fill into B's store (fetch + write + sync + index)",
            Measure::Pull => "curl through B (fill from A + store + HTTP to curl)",
            Measure::IrohFile => {
                "iroh-blobs into its file store (verified, committed, not fsynced)"
            }
            Measure::IrohMemory => "iroh-blobs into its memory store",
            Measure::Blake3 => "raw blake3, one core, in memory",
        }
    }
}

/// Node→node transfer against raw quinn, iroh-blobs and raw BLAKE3.
#[derive(Debug, Parser)]
#[command(name = "swarm-transfer")]
struct Args {
    /// Object size, e.g. 1GiB or 256MiB.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    size: u64,
    /// Rounds; medians are reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Run only this path (quinn, fetch, fill, pull, iroh-fs, iroh-mem, blake3), e.g.
    /// under a profiler.
    #[arg(long)]
    only: Option<String>,
    /// Nodes fetching at once in the fan-out scenario (0 skips it).
    #[arg(long, default_value_t = 4)]
    fan_out: usize,
}

fn parse_size(text: &str) -> Result<u64, String> {
    text.parse::<fleetcache_config::ByteSize>()
        .map(|s| s.0)
        .map_err(|e| e.to_string())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&args))
}

struct Fleet {
    ca: FleetCa,
    issued: usize,
}

impl Fleet {
    fn issue(&mut self) -> Result<NodeCert> {
        self.issued += 1;
        Ok(self.ca.issue_node(&format!("bench-{}", self.issued))?)
    }

    fn identity(&mut self) -> Result<NodeIdentity> {
        Ok(self.issue()?.identity()?)
    }
}

fn open_store(dir: &Path, capacity: u64) -> Result<Store> {
    Ok(Store::open(StoreOptions {
        data_dir: dir.to_owned(),
        capacity,
        high_watermark: 0.99,
        low_watermark: 0.98,
        memory_cache: 0,
    })?)
}

fn swarm(fleet: &mut Fleet, store: Store, peers: &[SocketAddr]) -> Result<Swarm> {
    Ok(Swarm::start(SwarmOptions {
        listen: "127.0.0.1:0".parse()?,
        identity: fleet.identity()?,
        peers: peers.iter().map(ToString::to_string).collect(),
        store,
        peer_timeout: Duration::from_secs(5),
        ping_interval: Duration::from_millis(200),
        resolve_interval: Duration::from_secs(30),
        max_uploads: 64,
    })?)
}

async fn wait_up(swarm: &Swarm, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while swarm
        .peers()
        .iter()
        .filter(|p| p.state == fleetcache_swarm::PeerState::Up)
        .count()
        < n
    {
        if Instant::now() > deadline {
            bail!("peers did not come up: {:?}", swarm.peers());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn run(args: &Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let capacity = args.size * 4 + (1 << 30);
    let mut fleet = Fleet {
        ca: FleetCa::generate("bench fleet")?,
        issued: 0,
    };
    eprintln!("ingesting {} bytes into node A…", args.size);
    let store_a = open_store(&dir.path().join("a"), capacity)?;
    let hash = ingest_random(&store_a, args.size)?;
    let runs = |path: Measure| args.only.as_deref().is_none_or(|only| only == path.name());
    let a = swarm(&mut fleet, store_a.clone(), &[])?;
    let a_addr = a.local_addr().context("A has no address")?;
    let b = swarm(
        &mut fleet,
        open_store(&dir.path().join("b"), capacity)?,
        &[a_addr],
    )?;
    wait_up(&b, 1).await?;
    let raw = if runs(Measure::Quinn) {
        // The object's own bytes from memory: a recycled buffer would sit in the
        // CPU's caches, which no real transfer of a large object does.
        let object = Bytes::from(object_bytes(&store_a, hash, args.size)?);
        Some(RawQuinn::start(&mut fleet, object)?)
    } else {
        None
    };
    drop(store_a);
    let mut iroh = if runs(Measure::IrohFile) || runs(Measure::IrohMemory) {
        IrohReference::start(args.size, &dir.path().join("iroh"))?
    } else {
        None
    };

    let mut rates: Vec<(Measure, Vec<Sample>)> =
        Measure::ALL.iter().map(|&p| (p, Vec::new())).collect();
    for round in 0..args.rounds {
        let mut order: Vec<usize> = (0..rates.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for which in order {
            let path = rates[which].0;
            if !runs(path) {
                continue;
            }
            let work = dir.path().join(format!("{}-{round}", path.name()));
            let sample = match (path, &raw, &mut iroh) {
                (Measure::Quinn, Some(raw), _) => raw.transfer().await?,
                (Measure::Fetch, ..) => fetch(&b, hash, args.size).await?,
                (Measure::Fill, ..) => fill(&mut fleet, &work, a_addr, hash, args.size).await?,
                (Measure::Pull, ..) => pull(&mut fleet, &work, a_addr, hash, args.size).await?,
                (Measure::IrohFile, _, Some(iroh)) => iroh_round(iroh, IrohStore::File, args.size)?,
                (Measure::IrohMemory, _, Some(iroh)) => {
                    iroh_round(iroh, IrohStore::Memory, args.size)?
                }
                (Measure::Blake3, ..) => hash_rate(args.size)?,
                // A reference that is not there (iroh-blobs not built).
                _ => continue,
            };
            rates[which].1.push(sample);
        }
        let line: Vec<String> = rates
            .iter()
            .filter_map(|(path, r)| {
                r.last()
                    .map(|s| format!("{} {:.0} ({:.2})", path.name(), s.rate, s.cpu_per_gib))
            })
            .collect();
        eprintln!(
            "round {} (MB/s, machine CPU s/GiB): {}",
            round + 1,
            line.join(", ")
        );
    }
    let median_of = |path: Measure, figure: fn(&Sample) -> f64| {
        rates
            .iter()
            .find(|(p, _)| *p == path)
            .and_then(|(_, r)| median(&r.iter().map(figure).collect::<Vec<_>>()))
            .unwrap_or(0.0)
    };
    let rate = |s: &Sample| s.rate;
    let cpu = |s: &Sample| s.cpu_per_gib;
    let quinn = median_of(Measure::Quinn, rate);
    let quinn_cpu = median_of(Measure::Quinn, cpu);
    let iroh_file = median_of(Measure::IrohFile, rate);
    let ratio = |rate: f64, reference: f64| {
        if reference > 0.0 {
            format!("{:.2}", rate / reference)
        } else {
            "–".to_owned()
        }
    };

    println!(
        "## swarm-transfer: {} MiB node→node over loopback QUIC",
        args.size >> 20
    );
    println!();
    println!(
        "Medians of {} rounds, alternating order. `{COMMAND} --size {}MiB --rounds {}` \
         (iroh-blobs built first with `{IROH_BUILD}`)",
        args.rounds,
        args.size >> 20,
        args.rounds
    );
    println!();
    println!(
        "| path | MB/s | × raw quinn | × iroh-blobs into its file store | \
         machine CPU s per GiB | × raw quinn's | MB/s per round |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    for (path, measured) in &rates {
        if measured.is_empty() {
            continue;
        }
        let path_rate = median_of(*path, rate);
        let path_cpu = median_of(*path, cpu);
        let each: Vec<String> = measured.iter().map(|s| format!("{:.0}", s.rate)).collect();
        println!(
            "| {} | {path_rate:.0} | {} | {} | {path_cpu:.2} | {} | {} |",
            path.description(),
            ratio(path_rate, quinn),
            ratio(path_rate, iroh_file),
            ratio(path_cpu, quinn_cpu),
            each.join(", ")
        );
    }
    println!();
    println!(
        "Machine CPU: busy time of all cores (`/proc/stat`) from the path's start to its \
         clock's stop, per GiB; for iroh-blobs the whole round, its store's set-up included."
    );

    if args.fan_out > 0 {
        fan_out(&mut fleet, dir.path(), capacity, &a, hash, args).await?;
    }
    Ok(())
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

/// One path's figures in one round.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// MB/s.
    rate: f64,
    /// Busy CPU seconds of the whole machine per GiB moved.
    cpu_per_gib: f64,
}

/// A measured interval: wall clock and the machine's busy CPU time.
struct Interval {
    start: Instant,
    ticks: CoreTicks,
}

impl Interval {
    fn begin() -> Result<Interval> {
        Ok(Interval {
            ticks: procfs::machine_ticks()?,
            start: Instant::now(),
        })
    }

    /// `bytes` moved since [`Interval::begin`], at `rate` MB/s when the path
    /// clocks itself (the iroh child), else at the rate of this interval.
    fn end(&self, bytes: u64, rate: Option<f64>) -> Result<Sample> {
        let elapsed = self.start.elapsed();
        let busy = procfs::machine_ticks()?.since(self.ticks).busy;
        let (ticks_per_second, _) = procfs::clock_ticks_per_second();
        let gib = bytes as f64 / f64::from(1u32 << 30);
        Ok(Sample {
            rate: rate.unwrap_or_else(|| mb_per_s(bytes, elapsed)),
            cpu_per_gib: busy as f64 / ticks_per_second as f64 / gib,
        })
    }
}

fn object_bytes(store: &Store, hash: Hash, size: u64) -> Result<Vec<u8>> {
    let blob = store.get(&hash)?.context("A lost the object")?;
    let mut out = Vec::with_capacity(size as usize);
    while (out.len() as u64) < size {
        out.extend_from_slice(&blob.read_verified(out.len() as u64, 64 << 20)?);
    }
    Ok(out)
}

fn ingest_random(store: &Store, size: u64) -> Result<Hash> {
    let mut ingest = store.ingest(None)?;
    let mut buf = vec![0u8; 4 << 20];
    let mut left = size;
    while left > 0 {
        let n = buf.len().min(left as usize);
        rand::rng().fill_bytes(&mut buf[..n]);
        ingest.write(&buf[..n])?;
        left -= n as u64;
    }
    Ok(ingest.finish()?.hash)
}

async fn fetch(b: &Swarm, hash: Hash, size: u64) -> Result<Sample> {
    let interval = Interval::begin()?;
    let located = b
        .locate(hash)
        .await?
        .context("A does not hold the object")?;
    let mut fetch = located.fetch(0..size);
    let mut got = 0u64;
    while let Some(bytes) = fetch.next().await? {
        got += bytes.len() as u64;
    }
    if got != size {
        bail!("fetched {got} of {size} bytes");
    }
    interval.end(size, None)
}

/// A fresh gateway node whose only peer is A.
struct FillNode {
    node: Node,
    http: SocketAddr,
    admin: SocketAddr,
    dir: std::path::PathBuf,
}

impl FillNode {
    async fn start(fleet: &mut Fleet, dir: &Path, a: SocketAddr, size: u64) -> Result<FillNode> {
        let certs = dir.join("certs");
        fleet.issue()?.save(&certs)?;
        let config = fleetcache_config::load(Sources {
            file: None,
            env: Vec::new(),
            flags: vec![
                ("http.listen", "127.0.0.1:0".into()),
                ("admin.listen", "127.0.0.1:0".into()),
                ("swarm.listen", "127.0.0.1:0".into()),
                ("store.data_dir", dir.join("data").display().to_string()),
                ("store.capacity", (size * 2 + (1 << 30)).to_string()),
                ("swarm.cert_dir", certs.display().to_string()),
                ("swarm.peers", a.to_string()),
                ("swarm.ping_interval", "50ms".into()),
                ("log.level", "warn".into()),
            ],
        })?;
        let node = Node::start(&config).await?;
        let http = node.public_addr().context("plaintext listener")?;
        let admin = node.admin_addr();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !http_get(admin, "/peers")
            .await?
            .contains("\"state\": \"up\"")
        {
            if Instant::now() > deadline {
                bail!("fill node never saw A");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(FillNode {
            node,
            http,
            admin,
            dir: dir.to_owned(),
        })
    }

    /// Waits until the node has committed its one peer fill.
    async fn filled(&self, since: Instant) -> Result<()> {
        loop {
            let metrics = http_get(self.admin, "/metrics").await?;
            if metrics.contains("fleetcache_fills_total{result=\"ok\",source=\"peer\"} 1") {
                return Ok(());
            }
            let failed: Vec<&str> = metrics
                .lines()
                .filter(|l| l.starts_with("fleetcache_fills_total") && !l.contains("result=\"ok\""))
                .collect();
            if !failed.is_empty() || since.elapsed() > Duration::from_secs(600) {
                bail!("the fill failed or did not finish: {failed:?}");
            }
            // Each poll is a scrape of the node being measured: not too often.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) -> Result<()> {
        self.node.shutdown().await;
        std::fs::remove_dir_all(&self.dir)?;
        Ok(())
    }
}

/// A fresh gateway node fills the object into its store; the clock stops when it is
/// committed.
async fn fill(
    fleet: &mut Fleet,
    dir: &Path,
    a: SocketAddr,
    hash: Hash,
    size: u64,
) -> Result<Sample> {
    let b = FillNode::start(fleet, dir, a, size).await?;
    let interval = Interval::begin()?;
    let head = http_request(
        b.http,
        &format!("HEAD /blake3/{hash} HTTP/1.1\r\nHost: b\r\n\r\n"),
    )
    .await?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("HEAD on the fill node: {head}");
    }
    b.filled(interval.start).await?;
    let sample = interval.end(size, None)?;
    b.stop().await?;
    Ok(sample)
}

/// curl pulls the object through a fresh gateway node, which fills it from A while it
/// answers; the clock stops at curl's last byte (the fill's commit is awaited after).
async fn pull(
    fleet: &mut Fleet,
    dir: &Path,
    a: SocketAddr,
    hash: Hash,
    size: u64,
) -> Result<Sample> {
    let b = FillNode::start(fleet, dir, a, size).await?;
    let url = format!("http://{}/blake3/{hash}", b.http);
    let interval = Interval::begin()?;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{size_download}",
                &url,
            ])
            .output()
    })
    .await?
    .context("running curl")?;
    let sample = interval.end(size, None)?;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || report != format!("200 {size}") {
        bail!(
            "curl through B: {report} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    b.filled(interval.start).await?;
    b.stop().await?;
    Ok(sample)
}

async fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    http_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"),
    )
    .await
}

async fn http_request(addr: SocketAddr, request: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        // A HEAD response ends with its head.
        if request.starts_with("HEAD") && out.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn hash_rate(size: u64) -> Result<Sample> {
    let chunk = vec![0x5au8; 16 << 20];
    let interval = Interval::begin()?;
    let mut hasher = blake3::Hasher::new();
    let mut left = size;
    while left > 0 {
        let n = chunk.len().min(left as usize);
        hasher.update(&chunk[..n]);
        left -= n as u64;
    }
    std::hint::black_box(hasher.finalize());
    interval.end(size, None)
}

/// A bare quinn server and client with the fleet's TLS and quinn's default transport.
struct RawQuinn {
    client: quinn::Endpoint,
    server_addr: SocketAddr,
}

impl RawQuinn {
    fn start(fleet: &mut Fleet, payload: Bytes) -> Result<RawQuinn> {
        let server_config = fleet.identity()?.quic_server_config()?;
        let server = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse()?)?;
        let server_addr = server.local_addr()?;
        tokio::spawn(async move {
            while let Some(incoming) = server.accept().await {
                let payload = payload.clone();
                tokio::spawn(async move {
                    let Ok(connection) = incoming.await else {
                        return;
                    };
                    while let Ok((mut send, _recv)) = connection.accept_bi().await {
                        for start in (0..payload.len()).step_by(1 << 20) {
                            let end = payload.len().min(start + (1 << 20));
                            if send.write_chunk(payload.slice(start..end)).await.is_err() {
                                return;
                            }
                        }
                        let _ = send.finish();
                        let _ = send.stopped().await;
                    }
                });
            }
        });
        let mut client = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
        client.set_default_client_config(fleet.identity()?.quic_client_config()?);
        Ok(RawQuinn {
            client,
            server_addr,
        })
    }

    async fn transfer(&self) -> Result<Sample> {
        let connection = self
            .client
            .connect(self.server_addr, fleetcache_swarm::FLEET_SERVER_NAME)?
            .await?;
        let interval = Interval::begin()?;
        let (mut send, mut recv) = connection.open_bi().await?;
        send.write_all(b"go").await?;
        send.finish()?;
        let mut got = 0u64;
        while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
            got += chunk.bytes.len() as u64;
        }
        let sample = interval.end(got, None)?;
        connection.close(0u32.into(), b"done");
        Ok(sample)
    }
}

/// One iroh-blobs round; the child clocks the transfer itself.
fn iroh_round(iroh: &mut IrohReference, store: IrohStore, size: u64) -> Result<Sample> {
    let interval = Interval::begin()?;
    let rate = tokio::task::block_in_place(|| iroh.round(store))?;
    interval.end(size, Some(rate))
}

async fn fan_out(
    fleet: &mut Fleet,
    dir: &Path,
    capacity: u64,
    a: &Swarm,
    hash: Hash,
    args: &Args,
) -> Result<()> {
    let a_addr = a.local_addr().context("A has no address")?;
    let mut nodes = Vec::new();
    for i in 0..args.fan_out {
        let store = open_store(&dir.join(format!("fan-{i}")), capacity)?;
        nodes.push(Arc::new(swarm(fleet, store, &[a_addr])?));
    }
    for node in &nodes {
        wait_up(node, 1).await?;
    }
    let sent_before = a.stats().bytes_sent;
    let single = fetch(&nodes[0], hash, args.size).await?.rate;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for node in &nodes {
        let node = node.clone();
        let size = args.size;
        tasks.spawn(async move {
            let begun = Instant::now();
            fetch(&node, hash, size).await.map(|_| begun.elapsed())
        });
    }
    let mut each = Vec::new();
    while let Some(done) = tasks.join_next().await {
        each.push(done??);
    }
    let all = start.elapsed();
    let sent = a.stats().bytes_sent - sent_before;
    let per_node: Vec<String> = each
        .iter()
        .map(|d| format!("{:.2}s", d.as_secs_f64()))
        .collect();
    println!();
    println!(
        "### fan-out: {} nodes fetch the object from A at once",
        args.fan_out
    );
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| one node alone | {single:.0} MB/s |");
    println!(
        "| all {} done in | {:.2} s |",
        args.fan_out,
        all.as_secs_f64()
    );
    println!(
        "| aggregate | {:.0} MB/s ({:.2} × one node alone) |",
        mb_per_s(args.size * args.fan_out as u64, all),
        mb_per_s(args.size * args.fan_out as u64, all) / single
    );
    println!("| each node's time | {} |", per_node.join(", "));
    println!(
        "| bytes A sent (data + proofs) | {:.3} × object per fetch |",
        sent as f64 / (args.size as f64 * (args.fan_out + 1) as f64)
    );
    Ok(())
}
