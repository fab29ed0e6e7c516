//! `https-vs-nginx`: fleetcache against nginx over HTTPS (TLS 1.2/1.3,
//! HTTP/1.1 and HTTP/2 by ALPN), serving the same objects with the same
//! self-signed ECDSA P-256 certificate, on loopback, servers pinned to one
//! core and `h2load` to another.
//!
//! ```sh
//! cargo build --release -p fleetcache-gateway -p fleetcache-benches
//! target/release/https-vs-nginx --rounds 5
//! ```
//!
//! Scenarios, each over HTTP/1.1 (`h2load --h1`) and HTTP/2: (a) a 4 KiB
//! object, hot hits, 64 connections (HTTP/2: 10 streams each); (b) a
//! 256 MiB object, 4 connections. Each round runs both servers,
//! alternating which goes first. Reports medians across rounds, server CPU
//! time per request / per GiB (utime + stime from `/proc/<pid>/stat`), and
//! the ratios fleetcache / nginx, as a Markdown table. HTTP/3 rows are
//! there and say why they are not measured ([`H3_NOT_MEASURED`]). Progress
//! goes to stderr, the report to stdout.

mod summary;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use fleetcache_benches::h2load::{self, H2loadArgs};
use fleetcache_benches::https::{Protocol, SelfSigned};
use fleetcache_benches::objects::{self, Object};
use fleetcache_benches::process::{self, Tool};
use fleetcache_benches::servers::{FleetcacheAddrs, HttpsListener, Nginx};
use fleetcache_benches::versus::{self, Common, Conditions, Stage, Tools};

const PROGRAM: &str = "https-vs-nginx";
const SMALL_SIZE: u64 = 4 * 1024;
const LARGE_SIZE: u64 = 256 * 1024 * 1024;
const BUILD: &str = "cargo build --release -p fleetcache-gateway -p fleetcache-benches";

/// The protocols measured, in table order.
///
/// HTTP/3 hook: fleetcache serves HTTP/3 on the HTTPS port (UDP), but
/// nothing here can load it or serve it for comparison (see
/// [`H3_NOT_MEASURED`]). With an h2load built with HTTP/3 (`--npn-list=h3`,
/// `--alpn-list=h3` from nghttp2 1.55) and an nginx with QUIC (1.25+,
/// `listen … quic`), add it here and the h3 rows of the report fill in.
const PROTOCOLS: [Protocol; 2] = [Protocol::Http1, Protocol::Http2];

/// Why the report's h3 rows are empty.
const H3_NOT_MEASURED: &str = "h3: not measured: fleetcache serves HTTP/3 on the HTTPS port, \
    but Debian's h2load (nghttp2 1.52) is built without HTTP/3 (it links no ngtcp2/nghttp3; \
    asked for `h3` by ALPN it still speaks TCP) and Debian's nginx 1.22 has no QUIC (nginx \
    1.25+)";

/// Compare fleetcache with nginx over HTTPS (loopback, pinned).
#[derive(Debug, Parser)]
#[command(name = PROGRAM)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Seconds per h2load run, 4 KiB scenarios.
    #[arg(long, default_value_t = 5, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    small_secs: u64,
    /// Seconds per h2load run, 256 MiB scenarios.
    #[arg(long, default_value_t = 10, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    large_secs: u64,
    /// Connections, 4 KiB scenarios.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    small_connections: u32,
    /// HTTP/2 streams in flight per connection, 4 KiB scenario (HTTP/1.1
    /// always has one: no pipelining).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    streams: u32,
    /// Connections, 256 MiB scenarios (one request at a time each).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    large_connections: u32,
}

impl Args {
    /// The command line that reproduces this run.
    fn reproduce(&self) -> String {
        format!(
            "{BUILD} && target/release/{PROGRAM}{} --small-secs {} --large-secs {} \
             --small-connections {} --streams {} --large-connections {}",
            self.common.flags(),
            self.small_secs,
            self.large_secs,
            self.small_connections,
            self.streams,
            self.large_connections,
        )
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    fleetcache_benches::main_with(PROGRAM, || {
        let client = Tool::new("h2load", "nghttp2-client", &[]);
        run(
            &args,
            &Tools::find(&args.common, BUILD, client, h2load::version)?,
        )
    })
}

/// A benchmark scenario: which object, over which protocol, which h2load
/// invocation.
#[derive(Debug)]
struct Scenario {
    label: String,
    object: Object,
    h2load: H2loadArgs,
}

impl Scenario {
    fn large(&self) -> bool {
        self.object.size == LARGE_SIZE
    }
}

fn scenarios(args: &Args, stage: &Stage) -> Vec<Scenario> {
    let mut scenarios = Vec::new();
    for (object, what, secs, connections) in [
        (
            &stage.small,
            "4 KiB hot hits",
            args.small_secs,
            args.small_connections,
        ),
        (
            &stage.large,
            "256 MiB",
            args.large_secs,
            args.large_connections,
        ),
    ] {
        for protocol in PROTOCOLS {
            let streams = match protocol {
                Protocol::Http2 if object.size == SMALL_SIZE => args.streams,
                _ => 1,
            };
            let load = if streams > 1 {
                format!("{connections} conns × {streams} streams")
            } else {
                format!("{connections} conns")
            };
            scenarios.push(Scenario {
                label: format!("{what}, {}, {load}", protocol.short()),
                object: object.clone(),
                h2load: H2loadArgs {
                    cpu: args.common.client_cpu,
                    protocol,
                    clients: connections,
                    streams,
                    secs,
                },
            });
        }
    }
    scenarios
}

fn run(args: &Args, tools: &Tools) -> Result<()> {
    let common = &args.common;
    let mut conditions = Conditions::detect(common);
    // Declared before the servers, so it is removed after they are killed.
    let stage = Stage::create(PROGRAM, SMALL_SIZE, LARGE_SIZE)?;
    let cert = SelfSigned::generate(stage.dir.path()).context("making the certificate")?;
    let [public, admin, fc_https, nginx_plain, nginx_https] = process::free_ports()?;
    let fc_addrs = FleetcacheAddrs { public, admin };

    let https = HttpsListener {
        listen: fc_https,
        cert: &cert,
    };
    let mut fleetcache = tools.start_fleetcache(common, &stage, fc_addrs, Some(https))?;
    let listen = (nginx_plain, nginx_https);
    let conf = write_nginx_conf(&tools.nginx, &stage, listen, &cert)?;
    // Ready when its plain listener (unused in the runs) answers.
    let mut nginx = tools.start_nginx(common, &stage, &conf, nginx_plain)?;
    eprintln!("HTTPS: fleetcache on {fc_https}, nginx on {nginx_https}");

    eprintln!("checking both servers return the same bytes over HTTPS, h1 and h2");
    let (small, large) = (&stage.small, &stage.large);
    for protocol in PROTOCOLS {
        for (name, addr) in [("fleetcache", fc_https), ("nginx", nginx_https)] {
            let expect = Some(stage.small_bytes.as_slice());
            objects::check_https(name, &cert, addr, protocol, small, expect)?;
            objects::check_https(name, &cert, addr, protocol, large, None)?;
        }
    }

    let scenarios = scenarios(args, &stage);
    let plans: Vec<versus::Scenario<'_>> = scenarios
        .iter()
        .map(|s| versus::Scenario {
            label: &s.label,
            object: &s.object,
            generator: &s.h2load,
        })
        .collect();
    let mut sides = versus::sides(
        (&mut fleetcache, format!("https://{fc_https}")),
        (&mut nginx, format!("https://{nginx_https}")),
    );
    let meter = conditions.meter(common, &stage.scratch);
    let results = versus::alternate_all(&meter, &mut sides, &plans, common)?;

    conditions.finish();
    summary::print_report(args, tools, &conditions, &scenarios, &results);
    drop(fleetcache);
    drop(nginx);
    stage.close()
}

/// nginx's config: files from disk at the same `/blake3/<hash>` paths,
/// over HTTPS on `listen.1` (and plain HTTP on `listen.0`, only to tell
/// when it is ready).
fn write_nginx_conf(
    nginx: &Nginx,
    stage: &Stage,
    (plain, https): (SocketAddr, SocketAddr),
    cert: &SelfSigned,
) -> Result<PathBuf> {
    let body = format!(
        r#"    access_log off;
    etag on;

    server {{
        listen {plain};
{tls}        root "{root}";
        location /blake3/ {{ }}
    }}
"#,
        tls = nginx.https_listen(https, cert),
        root = stage.root.display(),
    );
    let prefix = stage.nginx_prefix()?;
    Nginx::write_conf(&prefix, "https-vs-nginx: files from disk over HTTPS", &body)
}
