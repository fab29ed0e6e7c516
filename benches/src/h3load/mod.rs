//! `h3load`: a small HTTP/3 load generator, in the spirit of `h2load -t1 -c N
//! -m M -D SECS`, for want of an h2load built with HTTP/3 here.
//!
//! One thread (a current-thread tokio runtime, so pinning the process with
//! `taskset` pins all of it), `-c` QUIC connections, each on its own UDP
//! socket (as h2load's HTTP/3 clients and browsers have; `--shared-socket`
//! puts them all on one) with a receive buffer as large as
//! `net.core.rmem_max` allows, and `-m` request loops each: every loop GETs the URL,
//! reads the whole body (counted as it arrives, never copied) and checks
//! the status is 200 and Content-Length and body are `--length` bytes; a
//! wrong answer or a failed stream ends the run with an error. The clock
//! starts before the connections are made, as h2load's does; at the end of
//! the duration requests still in flight are abandoned (their bytes so far
//! count, as in h2load's traffic, the requests do not). `--warmup` runs the
//! same load untimed first on the same connections.
//!
//! The benchmarks run it as a hidden subcommand of their own binary
//! ([`SUBCOMMAND`], see [`main`]) under `taskset`, like h2load, and read the
//! one JSON line it prints ([`H3loadArgs`] is its [`LoadGenerator`]).

pub mod client;

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::load::{self, LoadGenerator, LoadReport};
use client::{Connection, SendRequest, Suite};

/// The hidden subcommand of a benchmark binary that runs the generator.
pub const SUBCOMMAND: &str = "h3load";

/// What the generator is built on, for reports (the workspace pins these).
pub const VERSION: &str = "h3load (quinn 0.11, h3 0.0.8, h3-quinn 0.0.10, rustls 0.23 with ring)";

/// How long connections get to close at the end.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The generator's command line.
#[derive(Debug, Parser)]
#[command(
    name = "h3load",
    about = "HTTP/3 load: N connections × M concurrent GETs each of one URL for a fixed time"
)]
pub struct Cli {
    /// QUIC connections.
    #[arg(short = 'c', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,
    /// Requests in flight per connection (HTTP/3 streams).
    #[arg(short = 'm', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub streams: u32,
    /// Seconds of measured load.
    #[arg(short = 'D', long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,
    /// Seconds of untimed load first, on the same connections.
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    pub warmup: u64,
    /// The certificate (PEM) to trust; nothing else is.
    #[arg(long, value_name = "PEM")]
    pub ca: PathBuf,
    /// The name to ask for (SNI) and verify the certificate against.
    #[arg(long, default_value = crate::https::SERVER_NAME)]
    pub server_name: String,
    /// The TLS 1.3 cipher suite to offer (only this one).
    #[arg(long, value_enum, default_value_t = Suite::Aes128Gcm)]
    pub suite: Suite,
    /// All connections on one UDP socket (one quinn endpoint) instead of
    /// one each.
    #[arg(long)]
    pub shared_socket: bool,
    /// The body length every response must have.
    #[arg(long, value_name = "BYTES")]
    pub length: u64,
    /// `https://host:port/path`; host:port is where to send UDP.
    pub url: String,
}

/// Runs the generator with `args` (the subcommand's name first, as argv[0])
/// and prints its JSON report on stdout; the exit code says whether it
/// worked.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = Cli::parse_from(args);
    match run(&cli) {
        Ok(report) => {
            eprintln!("{}", report.summary());
            println!("{}", report.to_json());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("h3load: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// What a run measured (the JSON line).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub connections: u32,
    pub streams: u32,
    /// Completed, checked requests.
    pub requests: u64,
    /// Body bytes received, those of abandoned requests included.
    pub body_bytes: u64,
    pub duration_secs: f64,
    pub latency_mean_us: Option<f64>,
    pub latency_p50_us: Option<f64>,
    pub latency_p99_us: Option<f64>,
    /// `TLSv1.3 <suite> h3`.
    pub negotiated: String,
    /// UDP receive-buffer drops, machine-wide, over the timed phase.
    pub udp_drops: Option<u64>,
    /// The receive buffer the kernel granted each client socket, bytes.
    pub recv_buffer: u64,
}

impl Report {
    fn to_json(&self) -> String {
        serde_json::json!({
            "connections": self.connections,
            "streams": self.streams,
            "requests": self.requests,
            "body_bytes": self.body_bytes,
            "duration_secs": self.duration_secs,
            "latency_mean_us": self.latency_mean_us,
            "latency_p50_us": self.latency_p50_us,
            "latency_p99_us": self.latency_p99_us,
            "negotiated": self.negotiated,
            "udp_drops": self.udp_drops,
            "recv_buffer": self.recv_buffer,
        })
        .to_string()
    }

    fn from_json(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
        let u64_field = |name: &str| {
            value
                .get(name)
                .and_then(serde_json::Value::as_u64)
                .with_context(|| format!("no {name}"))
        };
        let f64_field = |name: &str| value.get(name).and_then(serde_json::Value::as_f64);
        Ok(Self {
            connections: u32::try_from(u64_field("connections")?)?,
            streams: u32::try_from(u64_field("streams")?)?,
            requests: u64_field("requests")?,
            body_bytes: u64_field("body_bytes")?,
            duration_secs: f64_field("duration_secs").context("no duration_secs")?,
            latency_mean_us: f64_field("latency_mean_us"),
            latency_p50_us: f64_field("latency_p50_us"),
            latency_p99_us: f64_field("latency_p99_us"),
            negotiated: value
                .get("negotiated")
                .and_then(serde_json::Value::as_str)
                .context("no negotiated")?
                .to_owned(),
            udp_drops: value.get("udp_drops").and_then(serde_json::Value::as_u64),
            recv_buffer: u64_field("recv_buffer")?,
        })
    }

    fn summary(&self) -> String {
        let secs = self.duration_secs.max(f64::MIN_POSITIVE);
        format!(
            "h3load: {} conns × {} streams, {:.2}s: {} requests ({:.0}/s), {} body bytes ({:.1} MB/s), {}, \
             UDP receive-buffer drops {}, SO_RCVBUF {}",
            self.connections,
            self.streams,
            self.duration_secs,
            self.requests,
            self.requests as f64 / secs,
            self.body_bytes,
            self.body_bytes as f64 / secs / 1e6,
            self.negotiated,
            self.udp_drops
                .map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
            self.recv_buffer,
        )
    }
}

/// Where the URL points.
#[derive(Debug, Clone)]
struct Target {
    addr: SocketAddr,
    uri: http::Uri,
}

fn target(url: &str) -> Result<Target> {
    let uri: http::Uri = url.parse().with_context(|| format!("URL {url:?}"))?;
    ensure!(
        uri.scheme_str() == Some("https"),
        "URL {url:?}: not https://"
    );
    let authority = uri.authority().context("URL without host")?;
    let port = authority.port_u16().unwrap_or(443);
    let addr = (authority.host().trim_matches(['[', ']']), port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to nothing"))?;
    Ok(Target { addr, uri })
}

/// What one request loop did.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    body_bytes: u64,
    latencies_us: Vec<f64>,
}

fn run(cli: &Cli) -> Result<Report> {
    let target = target(&cli.url)?;
    let cert = CertificateDer::from_pem_file(&cli.ca)
        .with_context(|| format!("reading {}", cli.ca.display()))?;
    let config = client::config(cert, cli.suite)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a tokio runtime")?;
    runtime.block_on(async {
        let sockets = if cli.shared_socket {
            1
        } else {
            cli.connections
        };
        let mut endpoints = Vec::new();
        let mut recv_buffer = 0;
        for _ in 0..sockets {
            let (endpoint, granted) = client::endpoint(target.addr, config.clone())?;
            recv_buffer = granted;
            endpoints.push(endpoint);
        }
        let result = load(cli, &endpoints, &target).await;
        for endpoint in &endpoints {
            endpoint.close(quinn::VarInt::from_u32(0x100), b"done");
        }
        for endpoint in &endpoints {
            let _ = tokio::time::timeout(CLOSE_WAIT, endpoint.wait_idle()).await;
        }
        result.map(|report| Report {
            recv_buffer: recv_buffer as u64,
            ..report
        })
    })
}

/// Connects (connection `i` on endpoint `i` modulo their number), warms up
/// if asked, then runs the timed load.
async fn load(cli: &Cli, endpoints: &[quinn::Endpoint], target: &Target) -> Result<Report> {
    let started = Instant::now();
    let drops_before = crate::procfs::udp_receive_buffer_drops();
    let mut opening = tokio::task::JoinSet::new();
    for (i, endpoint) in (0..cli.connections as usize).zip(endpoints.iter().cycle()) {
        let endpoint = endpoint.clone();
        let (addr, name) = (target.addr, cli.server_name.clone());
        opening.spawn(async move { (i, Connection::open(&endpoint, addr, &name).await) });
    }
    let mut connections = Vec::new();
    while let Some(opened) = opening.join_next().await {
        let (i, connection) = opened.context("a connect task failed")?;
        connections.push(connection.with_context(|| format!("connection {i}"))?);
    }
    let mut measured_from = started;
    let mut drops_from = drops_before;
    if cli.warmup > 0 {
        let deadline = Instant::now() + Duration::from_secs(cli.warmup);
        phase(cli, &connections, target, deadline)
            .await
            .context("warming up")?;
        measured_from = Instant::now();
        drops_from = crate::procfs::udp_receive_buffer_drops();
    }
    let deadline = measured_from + Duration::from_secs(cli.duration);
    let tallies = phase(cli, &connections, target, deadline).await;
    let duration_secs = measured_from.elapsed().as_secs_f64();
    let drops_after = crate::procfs::udp_receive_buffer_drops();
    for connection in &connections {
        connection.close();
    }
    let tallies = tallies?;
    let mut latencies: Vec<f64> = Vec::new();
    let (mut requests, mut body_bytes) = (0, 0);
    for tally in tallies {
        requests += tally.requests;
        body_bytes += tally.body_bytes;
        latencies.extend(tally.latencies_us);
    }
    let latency_mean_us =
        (!latencies.is_empty()).then(|| latencies.iter().sum::<f64>() / latencies.len() as f64);
    Ok(Report {
        connections: cli.connections,
        streams: cli.streams,
        requests,
        body_bytes,
        duration_secs,
        latency_mean_us,
        latency_p50_us: crate::percentile(&latencies, 50.0),
        latency_p99_us: crate::percentile(&latencies, 99.0),
        negotiated: client::negotiated(cli.suite),
        udp_drops: drops_from
            .zip(drops_after)
            .map(|(before, after)| after.saturating_sub(before)),
        recv_buffer: 0,
    })
}

/// `streams` request loops on every connection until `deadline`; their
/// tallies, or the first error.
async fn phase(
    cli: &Cli,
    connections: &[Connection],
    target: &Target,
    deadline: Instant,
) -> Result<Vec<Tally>> {
    let deadline = tokio::time::Instant::from_std(deadline);
    let mut loops = tokio::task::JoinSet::new();
    for connection in connections {
        for _ in 0..cli.streams {
            let send = connection.send.clone();
            let uri = target.uri.clone();
            loops.spawn(request_loop(send, uri, cli.length, deadline));
        }
    }
    let mut tallies = Vec::new();
    while let Some(done) = loops.join_next().await {
        match done.context("a request task failed")? {
            Ok(tally) => tallies.push(tally),
            // Dropping the set aborts the other loops.
            Err(err) => return Err(err),
        }
    }
    Ok(tallies)
}

/// GETs `uri` on `send` one request after another until `deadline`,
/// abandoning the one in flight then.
async fn request_loop(
    mut send: SendRequest,
    uri: http::Uri,
    length: u64,
    deadline: tokio::time::Instant,
) -> Result<Tally> {
    let mut tally = Tally::default();
    loop {
        let started = Instant::now();
        if tokio::time::Instant::from_std(started) >= deadline {
            return Ok(tally);
        }
        let request = client::get_checked(&mut send, &uri, length, &mut tally.body_bytes);
        match tokio::time::timeout_at(deadline, request).await {
            Err(_elapsed) => return Ok(tally),
            Ok(Err(err)) => {
                return Err(err.context(format!(
                    "GET {uri} (after {} good responses on this stream)",
                    tally.requests
                )));
            }
            Ok(Ok(())) => {
                tally.requests += 1;
                tally
                    .latencies_us
                    .push(started.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
}

/// One `h3load` invocation, run by re-executing a benchmark binary that
/// has the [`SUBCOMMAND`].
#[derive(Debug, Clone)]
pub struct H3loadArgs {
    /// The binary with the subcommand (the running benchmark).
    pub exe: PathBuf,
    pub cpu: usize,
    /// Connections (`-c`).
    pub clients: u32,
    /// Requests in flight per connection (`-m`).
    pub streams: u32,
    pub secs: u64,
    /// The certificate to trust (PEM).
    pub ca: PathBuf,
    /// The body length of every response.
    pub length: u64,
    pub suite: Suite,
}

impl LoadGenerator for H3loadArgs {
    fn program(&self) -> &'static str {
        "h3load"
    }

    fn secs(&self) -> u64 {
        self.secs
    }

    fn argv(&self, url: &str, secs: u64) -> Vec<String> {
        let mut argv = load::pinned_argv(self.cpu, &self.exe.to_string_lossy());
        let suite = clap::ValueEnum::to_possible_value(&self.suite)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        argv.extend([
            SUBCOMMAND.to_owned(),
            format!("-c{}", self.clients),
            format!("-m{}", self.streams),
            format!("-D{secs}"),
            format!("--suite={suite}"),
            format!("--length={}", self.length),
            format!("--ca={}", self.ca.display()),
            url.to_owned(),
        ]);
        argv
    }

    fn parse(&self, out: &str) -> Result<LoadReport> {
        let line = out
            .lines()
            .rev()
            .find(|line| line.trim_start().starts_with('{'))
            .context("no JSON report line")?;
        let report = Report::from_json(line)?;
        ensure!(
            report.negotiated.split_whitespace().last() == Some(client::ALPN),
            "h3load negotiated {:?}, not h3",
            report.negotiated
        );
        if (report.connections, report.streams) != (self.clients, self.streams) {
            bail!(
                "h3load ran {} × {}, not {} × {}",
                report.connections,
                report.streams,
                self.clients,
                self.streams
            );
        }
        let secs = report.duration_secs.max(f64::MIN_POSITIVE);
        let mut latency_us = Vec::new();
        for (percent, value) in [(50.0, report.latency_p50_us), (99.0, report.latency_p99_us)] {
            if let Some(us) = value {
                latency_us.push((percent, us));
            }
        }
        Ok(LoadReport {
            requests: report.requests,
            duration_secs: report.duration_secs,
            bytes_read: report.body_bytes as f64,
            requests_per_sec: report.requests as f64 / secs,
            transfer_per_sec: report.body_bytes as f64 / secs,
            latency_us,
            latency_mean_us: report.latency_mean_us,
            socket_errors: 0,
            non_2xx: 0,
            negotiated: Some(report.negotiated),
            udp_drops: report.udp_drops,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> H3loadArgs {
        H3loadArgs {
            exe: PathBuf::from("/x/https-vs-nginx"),
            cpu: 1,
            clients: 64,
            streams: 10,
            secs: 5,
            ca: PathBuf::from("/t/cert.pem"),
            length: 4096,
            suite: Suite::Aes256Gcm,
        }
    }

    fn report() -> Report {
        Report {
            connections: 64,
            streams: 10,
            requests: 100_000,
            body_bytes: 409_600_000,
            duration_secs: 5.0,
            latency_mean_us: Some(3200.5),
            latency_p50_us: Some(3000.0),
            latency_p99_us: None,
            negotiated: client::negotiated(Suite::Aes256Gcm),
            udp_drops: Some(7),
            recv_buffer: 8 << 20,
        }
    }

    #[test]
    fn argv_pins_and_names_everything() {
        assert_eq!(
            args().command("https://127.0.0.1:8443/blake3/ab"),
            "taskset -c 1 /x/https-vs-nginx h3load -c64 -m10 -D5 --suite=aes256-gcm \
             --length=4096 --ca=/t/cert.pem https://127.0.0.1:8443/blake3/ab"
        );
    }

    #[test]
    fn the_command_line_parses_back() -> Result<()> {
        let argv = args().argv("https://127.0.0.1:8443/x", 3);
        // argv: taskset -c 1 EXE h3load …; the subcommand is the parser's argv[0].
        let cli = Cli::try_parse_from(&argv[4..])?;
        assert_eq!((cli.connections, cli.streams, cli.duration), (64, 10, 3));
        assert_eq!((cli.length, cli.suite), (4096, Suite::Aes256Gcm));
        assert_eq!(cli.ca, PathBuf::from("/t/cert.pem"));
        assert_eq!(cli.warmup, 0);
        let target = target(&cli.url)?;
        assert_eq!(target.addr, "127.0.0.1:8443".parse()?);
        assert_eq!(target.uri.path(), "/x");
        assert!(super::target("http://127.0.0.1:1/").is_err());
        Ok(())
    }

    #[test]
    fn reports_round_trip_into_load_reports() -> Result<()> {
        let json = report().to_json();
        assert_eq!(Report::from_json(&json)?, report());
        let out = format!("something else\n{json}\n");
        let load = args().parse(&out)?;
        assert_eq!(load.requests, 100_000);
        assert!((load.requests_per_sec - 20_000.0).abs() < 1e-9);
        assert!((load.transfer_per_sec - 81_920_000.0).abs() < 1e-6);
        assert_eq!(load.latency_mean_us, Some(3200.5));
        assert_eq!(load.latency_at(50.0), Some(3000.0));
        assert_eq!(load.latency_at(99.0), None);
        assert_eq!(
            load.negotiated.as_deref(),
            Some("TLSv1.3 TLS_AES_256_GCM_SHA384 h3")
        );
        assert_eq!(load.udp_drops, Some(7));
        Ok(())
    }

    #[test]
    fn refuses_other_runs_and_garbage() {
        let other = Report {
            streams: 1,
            ..report()
        };
        assert!(args().parse(&other.to_json()).is_err());
        let h2 = Report {
            negotiated: "TLSv1.3 TLS_AES_256_GCM_SHA384 h2".to_owned(),
            ..report()
        };
        assert!(args().parse(&h2.to_json()).is_err());
        assert!(args().parse("h3load: error: QUIC handshake").is_err());
    }
}
