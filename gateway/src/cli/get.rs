//! `fleetcache get`: a verified download by hash, resumable across nodes.
//!
//! It asks for `?format=bao` and checks every 16 KiB group against the hash
//! as it arrives (bao-tree's decoder, in `fetch.rs`), writing only verified
//! bytes, in order. When a node fails (connection lost, silence, a 5xx,
//! bytes that fail verification) the next `--url` is asked for the rest only
//! (`Range: bytes=<verified>-`, group-aligned), cycling through the list for a
//! bounded number of requests. A node that does not hold the object, refuses
//! the request or sent bad bytes is not asked again in this run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;
use fleetcache_store::Hash;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::client::{Error, runtime};
use super::fetch::{self, Failure, Limiter};
use super::progress::{Counters, Progress};

#[derive(Debug, Args)]
pub(super) struct GetArgs {
    /// The object's BLAKE3 hash (64 hex characters).
    hash: String,
    /// Write to this file (atomically, once every byte is verified) instead of
    /// stdout. Stdout gets verified bytes only, but a failed download leaves
    /// it short.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// A node's public URL. Repeat it to name fallbacks: when a node fails,
    /// the next one is asked for the rest only, cycling through the list.
    #[arg(
        long = "url",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    urls: Vec<String>,
    /// PEM file of CA certificates to trust for `https://` URLs, besides the
    /// system's (like curl's --cacert).
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Read at most RATE bytes per second (a suffix K, M or G multiplies by
    /// 1024, 1024² or 1024³), like curl's --limit-rate.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    limit_rate: Option<u64>,
    /// Requests to make in all before giving up (default: 3 per --url).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    attempts: Option<u32>,
    /// Seconds a node may stay silent, before its answer (a node that misses
    /// fetches the object from its peers first) or within it, before the next
    /// node is tried.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

/// `1000`, `64K`, `16M`, `1G` → bytes per second.
fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, scale) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&text[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&text[..i], 1 << 30),
        _ => (text, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            format!("{text:?} is not a rate: expected bytes per second, e.g. 500K or 16M")
        })
}

pub(super) fn get(args: &GetArgs) -> ExitCode {
    let hash = match args.hash.parse::<Hash>() {
        Ok(hash) => hash,
        Err(err) => {
            eprintln!("fleetcache get: invalid hash {:?}: {err}", args.hash);
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    let result = runtime().and_then(|rt| rt.block_on(get_async(args, hash)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fleetcache get: {err}");
            ExitCode::FAILURE
        }
    }
}

/// One node of the `--url` list and what it did in this run.
struct Node {
    url: String,
    /// Why its last request failed.
    failure: Option<String>,
    /// Not to be asked again in this run.
    dropped: bool,
}

async fn get_async(args: &GetArgs, hash: Hash) -> Result<(), Error> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(args.timeout)));
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let mut tls = crate::origin::tls_client_config(args.cacert.as_deref())?;
    // The connector sets ALPN (h2, http/1.1) itself and refuses a preset one.
    tls.alpn_protocols.clear();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(connector);
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let counters = Counters::new(0);
    let sink = Sink::open(args.output.as_deref())?;
    let to_terminal = args.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let progress = if to_terminal {
        Progress::disabled()
    } else {
        Progress::start(Arc::clone(&counters))
    };
    let mut download = fetch::Download {
        hash,
        size: None,
        verified: 0,
        sink,
        limiter: args.limit_rate.map(Limiter::new),
        stall: Duration::from_secs(args.timeout),
        counters: Arc::clone(&counters),
    };
    let mut nodes: Vec<Node> = args
        .urls
        .iter()
        .map(|url| Node {
            url: url.trim_end_matches('/').to_owned(),
            failure: None,
            dropped: false,
        })
        .collect();
    let attempts = args
        .attempts
        .unwrap_or_else(|| u32::try_from(nodes.len() * 3).unwrap_or(u32::MAX));
    let result = run(&client, &mut download, &mut nodes, attempts, &progress).await;
    progress.finish().await;
    match result {
        Ok(()) => download.sink.commit(),
        Err(Failure::Local(reason)) => Err(reason.into()),
        Err(_) => Err(summary(&hash, &download, &nodes).into()),
    }
}

/// Asks the nodes in turn until one delivers the rest of the object.
async fn run(
    client: &fetch::HttpClient,
    download: &mut fetch::Download,
    nodes: &mut [Node],
    attempts: u32,
    progress: &Progress,
) -> Result<(), Failure> {
    let mut next = 0;
    let mut wraps_without_progress = 0u32;
    let mut progress_at_wrap = 0;
    for attempt in 0..attempts {
        let Some(k) = (0..nodes.len())
            .map(|d| (next + d) % nodes.len())
            .find(|&k| !nodes[k].dropped)
        else {
            break;
        };
        if attempt > 0 && k < next {
            // Back to the start of the list: pause before asking the same
            // nodes again, longer each round that brought nothing.
            if download.verified == progress_at_wrap {
                wraps_without_progress += 1;
                let pause = Duration::from_millis(250 << wraps_without_progress.min(4));
                tokio::time::sleep(pause).await;
            } else {
                wraps_without_progress = 0;
            }
            progress_at_wrap = download.verified;
        }
        let node = &mut nodes[k];
        if attempt > 0 {
            let start = download.resume_point();
            if start > 0 {
                download.counters.resumes.fetch_add(1, Ordering::Relaxed);
                progress.note(&format!(
                    "fleetcache get: resuming from byte {start} with {}",
                    node.url
                ));
            } else {
                progress.note(&format!("fleetcache get: trying {}", node.url));
            }
        }
        let (reason, drop) = match fetch::attempt(client, &node.url, download).await {
            Ok(()) => return Ok(()),
            Err(Failure::Local(reason)) => return Err(Failure::Local(reason)),
            Err(Failure::Transient(reason)) => (reason, false),
            Err(Failure::Refused(reason)) => (reason, true),
        };
        progress.note(&format!(
            "fleetcache get: {} failed with {} bytes verified: {reason}",
            node.url, download.verified
        ));
        node.failure = Some(reason);
        node.dropped = drop;
        next = k + 1;
    }
    Err(Failure::Transient("no node delivered the object".into()))
}

/// Why the download failed, node by node.
fn summary(hash: &Hash, download: &fetch::Download, nodes: &[Node]) -> String {
    let of_size = download
        .size
        .map(|size| format!(" of {size}"))
        .unwrap_or_default();
    let kept = match download.sink {
        Sink::Stdout(_) => "stdout got the verified bytes only",
        Sink::File { .. } => "nothing written",
    };
    let mut out = format!(
        "no node delivered {hash} ({} bytes verified{of_size}); {kept}",
        download.verified
    );
    for node in nodes {
        let failure = node.failure.as_deref().unwrap_or("not tried");
        out.push_str(&format!("\n  {}: {failure}", node.url));
    }
    out
}

/// Where `get` writes verified bytes, in order: stdout, or a temp file beside
/// the output that is renamed into place once every byte is verified, so a
/// failed download never leaves anything at the output's path.
pub(super) enum Sink {
    Stdout(std::io::StdoutLock<'static>),
    File {
        temp: tempfile::NamedTempFile,
        path: PathBuf,
    },
}

impl Sink {
    fn open(path: Option<&Path>) -> Result<Self, Error> {
        match path {
            None => Ok(Sink::Stdout(std::io::stdout().lock())),
            Some(path) => {
                let dir = match path.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir,
                    _ => Path::new("."),
                };
                let temp = tempfile::Builder::new()
                    .prefix(".fleetcache-get-")
                    .tempfile_in(dir)
                    .map_err(|e| format!("creating a file in {}: {e}", dir.display()))?;
                Ok(Sink::File {
                    temp,
                    path: path.to_owned(),
                })
            }
        }
    }

    pub(super) fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout(out) => out.write_all(data),
            Sink::File { temp, .. } => temp.write_all(data),
        }
    }

    fn commit(self) -> Result<(), Error> {
        match self {
            Sink::Stdout(mut out) => out.flush()?,
            Sink::File { temp, path } => {
                temp.as_file().sync_all()?;
                temp.persist(&path)
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rates_take_binary_suffixes() {
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_rate("64K"), Ok(64 << 10));
        assert_eq!(parse_rate("16m"), Ok(16 << 20));
        assert_eq!(parse_rate("1G"), Ok(1 << 30));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("M").is_err());
        assert!(parse_rate("99999999999999G").is_err());
    }
}
