//! `fleetcache put` and `fleetcache get`: small HTTP clients for a node.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use fleetcache_store::Hash;
use futures_util::StreamExt;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, Args)]
pub(super) struct PutArgs {
    /// The file to upload.
    file: PathBuf,
    /// The node's admin URL.
    #[arg(long, default_value = "http://127.0.0.1:8081", value_name = "URL")]
    admin: String,
    /// File holding the admin bearer token (else FLEETCACHE_ADMIN_TOKEN).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Content-Type to store with the object.
    #[arg(long, value_name = "TYPE")]
    content_type: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct GetArgs {
    /// The object's BLAKE3 hash (64 hex characters).
    hash: String,
    /// Write to this file (atomically, only once verified) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// The node's public URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_name = "URL")]
    url: String,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub(super) fn put(args: &PutArgs) -> ExitCode {
    let result = runtime().and_then(|rt| rt.block_on(put_async(args)));
    match result {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("fleetcache put: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn put_async(args: &PutArgs) -> Result<String, Error> {
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("FLEETCACHE_ADMIN_TOKEN").ok(),
    };
    let file = tokio::fs::File::open(&args.file)
        .await
        .map_err(|e| format!("opening {}: {e}", args.file.display()))?;
    let size = file.metadata().await?.len();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&sent);
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).map(move |chunk| {
        chunk.map(|bytes| {
            counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            Frame::data(bytes)
        })
    });
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/blobs", args.admin.trim_end_matches('/')))
        .header(http::header::CONTENT_LENGTH, size);
    if let Some(token) = token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(content_type) = &args.content_type {
        request = request.header(http::header::CONTENT_TYPE, content_type);
    }
    let request = request.body(StreamBody::new(stream))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let progress = Progress::start(size, Arc::clone(&sent));
    let response = client.request(request).await;
    progress.finish();
    let response = response.map_err(|e| format!("uploading to {}: {e}", args.admin))?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status != StatusCode::CREATED && status != StatusCode::OK {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body).trim()).into());
    }
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    json.get("hash")
        .and_then(|h| h.as_str())
        .map(str::to_owned)
        .ok_or_else(|| "response has no hash".into())
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

async fn get_async(args: &GetArgs, hash: Hash) -> Result<(), Error> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri = format!("{}/blake3/{hash}", args.url.trim_end_matches('/'));
    let response = client
        .get(uri.parse()?)
        .await
        .map_err(|e| format!("fetching {uri}: {e}"))?;
    let status = response.status();
    if status != StatusCode::OK {
        let body = response.into_body().collect().await?.to_bytes();
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body).trim()).into());
    }
    let size = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let received = Arc::new(AtomicU64::new(0));
    let progress = match &args.output {
        Some(_) => Progress::start(size, Arc::clone(&received)),
        None => Progress::disabled(),
    };
    let mut sink = Sink::open(args.output.as_deref())?;
    let mut hasher = blake3::Hasher::new();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("download interrupted: {e}"))?;
        if let Ok(data) = frame.into_data() {
            hasher.update(&data);
            sink.write(&data)?;
            received.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
    }
    progress.finish();
    let actual = Hash::from(hasher.finalize());
    if actual != hash {
        return Err(format!(
            "verification failed: received bytes hash to {actual}, not {hash}; nothing kept"
        )
        .into());
    }
    sink.commit()
}

/// Where `get` writes: stdout, or a temp file renamed into place once the
/// bytes are verified, so a failed download never leaves a wrong file.
enum Sink {
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

    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        match self {
            Sink::Stdout(out) => out.write_all(data)?,
            Sink::File { temp, .. } => temp.write_all(data)?,
        }
        Ok(())
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

/// A one-line progress display on stderr, only when stderr is a terminal.
struct Progress {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Progress {
    fn disabled() -> Self {
        Self { stop: None }
    }

    fn start(total: u64, done: Arc<AtomicU64>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::disabled();
        }
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let start = Instant::now();
            loop {
                let n = done.load(Ordering::Relaxed);
                let pct = n.saturating_mul(100).checked_div(total).unwrap_or(100);
                let rate = n as f64 / start.elapsed().as_secs_f64().max(0.001) / 1e6;
                eprint!(
                    "\r{pct:3}%  {} / {} MB  {rate:.1} MB/s   ",
                    n / 1_000_000,
                    total / 1_000_000
                );
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            eprintln!();
        });
        Self { stop: Some(stop) }
    }

    fn finish(self) {
        if let Some(stop) = self.stop {
            let _ = stop.send(());
        }
    }
}
