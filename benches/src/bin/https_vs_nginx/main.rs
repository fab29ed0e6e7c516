//! `https-vs-nginx`: fleetcache against nginx over HTTPS (TLS 1.2/1.3,
//! HTTP/1.1 and HTTP/2 by ALPN), serving the same objects with the same
//! self-signed ECDSA P-256 certificate, on loopback, servers pinned to one
//! core and the load generator to another; and fleetcache alone over
//! HTTP/3 (QUIC on the same port number, UDP).
//!
//! ```sh
//! cargo build --release -p fleetcache-gateway -p fleetcache-benches
//! target/release/https-vs-nginx --rounds 5
//! ```
//!
//! Scenarios, each over HTTP/1.1 (`h2load --h1`), HTTP/2 (`h2load`) and
//! HTTP/3 (`h3load`, this binary's hidden subcommand, see
//! [`fleetcache_benches::h3load`]): (a) a 4 KiB object, hot hits, 64
//! connections (HTTP/2 and HTTP/3: 10 streams each); (b) a 256 MiB object,
//! 4 connections. All protocols of one object share their rounds: each
//! round runs every protocol on every server that speaks it, the order
//! reversed every other round. nginx has no QUIC here ([`NO_QUIC`]), so the
//! h3 rows compare fleetcache with its own HTTP/2 of the same rounds.
//! Reports medians across rounds, server CPU time per request / per GiB
//! (utime + stime from `/proc/<pid>/stat`), and the ratios, as a Markdown
//! table. Progress goes to stderr, the report to stdout.

mod summary;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use fleetcache_benches::h2load::{self, H2loadArgs};
use fleetcache_benches::h3load::{self, H3loadArgs, client::Suite};
use fleetcache_benches::https::{Protocol, SelfSigned};
use fleetcache_benches::load::LoadGenerator;
use fleetcache_benches::objects::{self, Object};
use fleetcache_benches::process::{self, Tool};
use fleetcache_benches::servers::{FleetcacheAddrs, HttpsListener, Nginx};
use fleetcache_benches::versus::{self, Common, Conditions, Stage, Tools, Which};

const PROGRAM: &str = "https-vs-nginx";
const SMALL_SIZE: u64 = 4 * 1024;
const LARGE_SIZE: u64 = 256 * 1024 * 1024;
const BUILD: &str = "cargo build --release -p fleetcache-gateway -p fleetcache-benches";

/// The protocols measured, in table order. HTTP/1.1 and HTTP/2 are loaded
/// by h2load against both servers; HTTP/3 by `h3load` against fleetcache
/// only (Debian's h2load 1.52 has no HTTP/3, Debian's nginx 1.22 no QUIC:
/// with an nginx 1.25+ and `listen … quic` it could join).
const PROTOCOLS: [Protocol; 3] = [Protocol::Http1, Protocol::Http2, Protocol::Http3];

/// What nginx's cells say in the h3 rows.
const NO_QUIC: &str = "no QUIC in this nginx";

/// The TLS 1.3 suite h3load offers: the one h2load negotiates with
/// fleetcache over TCP (nghttp2 lists it first, and rustls servers follow
/// the client's order); the report checks that h2 and h3 used the same.
const H3_SUITE: Suite = Suite::Aes128Gcm;

/// Compare fleetcache with nginx over HTTPS (loopback, pinned).
#[derive(Debug, Parser)]
#[command(name = PROGRAM)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// Seconds per load-generator run, 4 KiB scenarios.
    #[arg(long, default_value_t = 5, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    small_secs: u64,
    /// Seconds per load-generator run, 256 MiB scenarios.
    #[arg(long, default_value_t = 10, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    large_secs: u64,
    /// Connections, 4 KiB scenarios.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    small_connections: u32,
    /// HTTP/2 and HTTP/3 streams in flight per connection, 4 KiB scenario
    /// (HTTP/1.1 always has one: no pipelining).
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
    // The HTTP/3 load generator, re-executed under taskset by the runs.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == h3load::SUBCOMMAND)
    {
        return h3load::main(std::env::args_os().skip(1));
    }
    let args = Args::parse();
    fleetcache_benches::main_with(PROGRAM, || {
        let client = Tool::new("h2load", "nghttp2-client", &[]);
        run(
            &args,
            &Tools::find(&args.common, BUILD, client, h2load::version)?,
        )
    })
}

/// A benchmark scenario: which object, over which protocol, which load
/// generator invocation.
#[derive(Debug)]
struct Scenario {
    label: String,
    object: Object,
    protocol: Protocol,
    generator: Box<dyn LoadGenerator>,
}

impl Scenario {
    fn large(&self) -> bool {
        self.object.size == LARGE_SIZE
    }

    /// The server it runs against, if only one: nginx has no HTTP/3.
    fn only(&self) -> Option<Which> {
        (self.protocol == Protocol::Http3).then_some(Which::Fleetcache)
    }
}

/// The scenarios, grouped by object: each group shares its rounds.
fn scenarios(args: &Args, stage: &Stage, cert: &SelfSigned) -> Result<Vec<Vec<Scenario>>> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut groups = Vec::new();
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
        let mut group = Vec::new();
        for protocol in PROTOCOLS {
            let streams = match protocol {
                Protocol::Http2 | Protocol::Http3 if object.size == SMALL_SIZE => args.streams,
                _ => 1,
            };
            let load = if streams > 1 {
                format!("{connections} conns × {streams} streams")
            } else {
                format!("{connections} conns")
            };
            let cpu = args.common.client_cpu;
            let generator: Box<dyn LoadGenerator> = match protocol {
                Protocol::Http1 | Protocol::Http2 => Box::new(H2loadArgs {
                    cpu,
                    protocol,
                    clients: connections,
                    streams,
                    secs,
                }),
                Protocol::Http3 => Box::new(H3loadArgs {
                    exe: exe.clone(),
                    cpu,
                    clients: connections,
                    streams,
                    secs,
                    ca: cert.cert_file.clone(),
                    length: object.size,
                    suite: H3_SUITE,
                }),
            };
            group.push(Scenario {
                label: format!("{what}, {}, {load}", protocol.short()),
                object: object.clone(),
                protocol,
                generator,
            });
        }
        groups.push(group);
    }
    Ok(groups)
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

    eprintln!("checking both servers return the same bytes over HTTPS, h1 and h2 (h3: fleetcache)");
    let (small, large) = (&stage.small, &stage.large);
    for protocol in PROTOCOLS {
        for (name, addr) in [("fleetcache", fc_https), ("nginx", nginx_https)] {
            if protocol == Protocol::Http3 && name == "nginx" {
                continue;
            }
            let expect = Some(stage.small_bytes.as_slice());
            objects::check_https(name, &cert, addr, protocol, small, expect)?;
            objects::check_https(name, &cert, addr, protocol, large, None)?;
        }
    }

    let groups = scenarios(args, &stage, &cert)?;
    let mut sides = versus::sides(
        (&mut fleetcache, format!("https://{fc_https}")),
        (&mut nginx, format!("https://{nginx_https}")),
    );
    let meter = conditions.meter(common, &stage.scratch);
    let mut results = Vec::new();
    for group in &groups {
        let plans: Vec<versus::Scenario<'_>> = group
            .iter()
            .map(|s| versus::Scenario {
                label: &s.label,
                object: &s.object,
                generator: s.generator.as_ref(),
                only: s.only(),
            })
            .collect();
        results.extend(versus::alternate(&meter, &mut sides, &plans, common)?);
    }

    conditions.finish();
    let scenarios: Vec<Scenario> = groups.into_iter().flatten().collect();
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
