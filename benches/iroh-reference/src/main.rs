//! `iroh-reference`: the iroh-blobs side of `swarm-transfer`, as a child process.
//!
//! It lives outside the fleetcache workspace so that building the workspace never
//! compiles iroh. One process holds a provider endpoint, serving one random blob
//! from an iroh-blobs file store, and a fetcher endpoint; both are bound to
//! 127.0.0.1 with relays, address lookup and port mapping off, so it runs with no
//! network beyond loopback.
//!
//! Protocol: prints `ready` once the blob is imported, then answers each stdin
//! line `fs` (fetch into a fresh file store) or `mem` (into a fresh memory store)
//! with one line of MB/s. Exits on EOF.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use iroh::endpoint::{PortmapperConfig, presets};
use iroh::protocol::Router;
use iroh::{Endpoint, EndpointAddr, NetReportConfig, RelayMode};
use iroh_blobs::api::Store;
use iroh_blobs::api::blobs::BlobStatus;
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::store::mem::MemStore;
use iroh_blobs::{ALPN, BlobsProtocol, Hash};
use rand::Rng as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};

const USAGE: &str = "usage: iroh-reference --size BYTES --dir DIR";

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("iroh-reference: error: {err:#}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let (size, dir) = parse_args(std::env::args().skip(1))?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let provider = Provider::start(size, &dir).await?;
    let fetcher = loopback_endpoint(Vec::new()).await?;
    println!("ready");

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut round = 0u32;
    while let Some(line) = lines.next_line().await? {
        round += 1;
        let target = match line.trim() {
            "fs" => Target::File(dir.join(format!("fetch-{round}"))),
            "mem" => Target::Memory,
            other => bail!("unknown command {other:?} (expected fs or mem)"),
        };
        let rate = fetch_round(&fetcher, &provider, target).await?;
        println!("{rate:.1}");
    }
    fetcher.close().await;
    provider.shutdown().await
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(u64, PathBuf)> {
    let (mut size, mut dir) = (None, None);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value; {USAGE}"))?;
        match flag.as_str() {
            "--size" => size = Some(value.parse::<u64>().context("--size")?),
            "--dir" => dir = Some(PathBuf::from(value)),
            _ => bail!("unknown argument {flag:?}; {USAGE}"),
        }
    }
    match (size, dir) {
        (Some(size), Some(dir)) if size > 0 => Ok((size, dir)),
        _ => bail!("{USAGE} (BYTES > 0)"),
    }
}

/// An endpoint that can only reach and be reached over IPv4 loopback. The
/// `Minimal` preset brings no relays and no DNS/pkarr address lookup; relays are
/// disabled again explicitly because that is what keeps it offline, and port
/// mapping and the net report's HTTPS probes are off so nothing probes a gateway.
async fn loopback_endpoint(alpns: Vec<Vec<u8>>) -> Result<Endpoint> {
    let endpoint = Endpoint::builder(presets::Minimal)
        .relay_mode(RelayMode::Disabled)
        .clear_address_lookup()
        .portmapper_config(PortmapperConfig::Disabled)
        .net_report_config(NetReportConfig::minimal())
        .clear_ip_transports()
        .bind_addr(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?
        .alpns(alpns)
        .bind()
        .await?;
    Ok(endpoint)
}

struct Provider {
    router: Router,
    addr: EndpointAddr,
    hash: Hash,
    size: u64,
}

impl Provider {
    async fn start(size: u64, dir: &Path) -> Result<Self> {
        let store = FsStore::load(dir.join("provider")).await?;
        let hash = import_random(&store, size, &dir.join("source")).await?;
        let endpoint = loopback_endpoint(vec![ALPN.to_vec()]).await?;
        let socket = *endpoint
            .bound_sockets()
            .first()
            .context("the provider endpoint has no bound socket")?;
        // The fetcher has no address lookup, so it must be told where to dial.
        let addr = EndpointAddr::new(endpoint.id()).with_ip_addr(socket);
        let router = Router::builder(endpoint)
            .accept(ALPN, BlobsProtocol::new(&store, None))
            .spawn();
        Ok(Self {
            router,
            addr,
            hash,
            size,
        })
    }

    /// The router's shutdown also shuts the store down (through `BlobsProtocol`);
    /// shutting it down a second time fails, so the store is left to the router.
    async fn shutdown(self) -> Result<()> {
        self.router.shutdown().await?;
        Ok(())
    }
}

/// Writes `size` random bytes to `source` in pieces (so 1 GiB never sits in
/// memory), imports the file and removes it: the blob then exists only in the
/// provider's store, as fleetcache's node A holds it only in its own.
async fn import_random(store: &FsStore, size: u64, source: &Path) -> Result<Hash> {
    let source_path = source.to_owned();
    tokio::task::spawn_blocking(move || write_random(&source_path, size)).await??;
    let tag = store.blobs().add_path(source).await?;
    std::fs::remove_file(source).with_context(|| format!("removing {}", source.display()))?;
    Ok(tag.hash)
}

fn write_random(path: &Path, size: u64) -> Result<()> {
    use std::io::Write as _;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut buf = vec![0u8; 4 << 20];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64))?;
        rand::rng().fill_bytes(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(())
}

enum Target {
    File(PathBuf),
    Memory,
}

/// One cold fetch into an empty store. The connection is made before the clock
/// starts, as swarm-transfer's raw quinn round does; a fresh one per round so no
/// round inherits another's congestion window. `remote().fetch` is iroh-blobs'
/// own get path: it asks for what the store lacks and verifies every chunk
/// against the BLAKE3 tree as it writes it.
async fn fetch_round(fetcher: &Endpoint, provider: &Provider, target: Target) -> Result<f64> {
    let (store, dir): (Store, Option<PathBuf>) = match target {
        Target::File(dir) => (FsStore::load(&dir).await?.into(), Some(dir)),
        Target::Memory => (MemStore::new().into(), None),
    };
    let connection = fetcher.connect(provider.addr.clone(), ALPN).await?;
    let start = Instant::now();
    store
        .remote()
        .fetch(connection.clone(), provider.hash)
        .await?;
    // The clock includes the store committing the blob's entry to its database,
    // as swarm-transfer's fill includes fleetcache's store commit.
    store.sync_db().await?;
    let status = store.blobs().status(provider.hash).await?;
    let elapsed = start.elapsed();
    connection.close(0u32.into(), b"done");
    if !matches!(status, BlobStatus::Complete { size } if size == provider.size) {
        bail!(
            "after the fetch the blob is {status:?}, not complete at {} bytes",
            provider.size
        );
    }
    store.shutdown().await?;
    if let Some(dir) = dir {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(provider.size as f64 / elapsed.as_secs_f64() / 1e6)
}
