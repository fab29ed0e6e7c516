//! `fleetcache put`: upload a file to a node's admin API (`get` is in
//! `get.rs`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::Args;
use futures_util::StreamExt;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::progress::{Counters, Progress};

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

pub(super) type Error = Box<dyn std::error::Error + Send + Sync>;

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
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
    let counters = Counters::new(size);
    let counter = Arc::clone(&counters);
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).map(move |chunk| {
        chunk.map(|bytes| {
            counter
                .done
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
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
    let progress = Progress::start(counters);
    let response = client.request(request).await;
    progress.finish().await;
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
