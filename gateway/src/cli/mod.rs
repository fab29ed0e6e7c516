//! The `fleetcache` command line: `serve`, `put`, `get`, `fsck`, `cert`, `config print`.
//!
//! Exit codes follow sysexits: 0 success, 1 a runtime failure (or fsck found
//! damage), 64 bad usage or configuration.

mod cert;
mod client;
mod fetch;
mod get;
mod open_files;
mod progress;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use fleetcache_config::{Config, LogFormat, Sources};

use crate::node::Node;

/// Exit code for bad usage or configuration (EX_USAGE).
const EXIT_USAGE: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "fleetcache",
    version,
    about = "Peer-to-peer content-addressed edge cache"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node (with no config file: the embedded defaults, loopback only).
    Serve(NodeArgs),
    /// Upload a file to a node's admin API and print its BLAKE3 hash.
    Put(client::PutArgs),
    /// Download an object by hash, verifying every 16 KiB as it arrives and
    /// resuming from the next node when one fails.
    Get(get::GetArgs),
    /// Verify every stored object against its hash; quarantine bad ones.
    /// The node must be stopped.
    Fsck(FsckArgs),
    /// Create the fleet CA and node certificates for the swarm's mutual TLS.
    Cert {
        #[command(subcommand)]
        action: cert::CertAction,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the effective configuration (defaults, file, env and flags merged).
    Print(NodeArgs),
}

/// Where the configuration comes from; each flag overrides its config key.
#[derive(Debug, Args)]
struct NodeArgs {
    /// TOML config file; without one, the embedded defaults apply.
    #[arg(long, short = 'c', env = "FLEETCACHE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Public HTTP address (http.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Admin HTTP address (admin.listen).
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
    /// Swarm QUIC address (swarm.listen).
    #[arg(long, value_name = "ADDR")]
    swarm_listen: Option<String>,
    /// HTTPS (TCP) and HTTP/3 (UDP) address (http.tls.listen).
    #[arg(long, value_name = "ADDR")]
    tls_listen: Option<String>,
    /// PEM certificate chain for HTTPS (http.tls.cert_file).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<String>,
    /// PEM private key of --tls-cert (http.tls.key_file).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<String>,
    /// Data directory (store.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// A peer to join, HOST:PORT; repeat for more (swarm.peers).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    peers: Vec<String>,
    /// Directory with ca.pem, node.pem and node.key from `fleetcache cert node`
    /// (swarm.cert_dir).
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<String>,
    /// The default origin, http(s)://HOST[:PORT]: any path but /blake3/ is
    /// cached in front of it (the [[origin]] entry without a host).
    #[arg(long, value_name = "URL")]
    origin: Option<String>,
}

#[derive(Debug, Args)]
struct FsckArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Only report; do not quarantine anything.
    #[arg(long)]
    dry_run: bool,
}

/// Runs the command line with the process's arguments and environment.
pub fn main() -> ExitCode {
    run(std::env::args_os())
}

/// Runs the command line with the given arguments.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return match err.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(EXIT_USAGE),
            };
        }
    };
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Put(args) => client::put(&args),
        Command::Get(args) => get::get(&args),
        Command::Fsck(args) => fsck(&args),
        Command::Cert { action } => cert::run(&action),
        Command::Config {
            action: ConfigAction::Print(args),
        } => match load_config(&args) {
            Ok(config) => {
                print!("{}", config.to_toml());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
    }
}

/// Loads the layered configuration, or prints why not and returns exit 64.
fn load_config(args: &NodeArgs) -> Result<Config, ExitCode> {
    let mut flags: Vec<(&str, String)> = [
        ("http.listen", &args.listen),
        ("admin.listen", &args.admin_listen),
        ("swarm.listen", &args.swarm_listen),
        ("http.tls.listen", &args.tls_listen),
        ("http.tls.cert_file", &args.tls_cert),
        ("http.tls.key_file", &args.tls_key),
        ("store.data_dir", &args.data_dir),
        ("swarm.cert_dir", &args.cert_dir),
        ("origin", &args.origin),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.clone().map(|v| (key, v)))
    .collect();
    if !args.peers.is_empty() {
        // A list key takes comma-separated items, as from the environment.
        flags.push(("swarm.peers", args.peers.join(",")));
    }
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("FLEETCACHE_"))
        .collect();
    fleetcache_config::load(Sources {
        file: args.config.as_deref(),
        env,
        flags,
    })
    .map_err(|err| {
        eprintln!("fleetcache: {err}");
        ExitCode::from(EXIT_USAGE)
    })
}

fn serve(args: &NodeArgs) -> ExitCode {
    let config = match load_config(args) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let Err(err) = init_tracing(&config) {
        eprintln!("fleetcache: invalid config: log.level: {err}");
        return ExitCode::from(EXIT_USAGE);
    }
    let files = open_files::raise_open_files();
    if files.before != files.now {
        tracing::info!(from = ?files.before, to = ?files.now, "raised the open-file limit");
    }
    if !files.enough_for(config.http.max_connections) {
        tracing::warn!(
            limit = ?files.now,
            max_connections = config.http.max_connections,
            "the open-file limit is below http.max_connections plus 1024: connections \
             beyond it are refused; raise the hard limit (ulimit -Hn, LimitNOFILE=) \
             or lower http.max_connections"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fleetcache")
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("fleetcache: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // Handlers first: a SIGTERM right after the start-up line (an
        // orchestrator, a test) must drain the node, not kill it.
        let signals = Signals::install();
        let node = match Node::start(&config).await {
            Ok(node) => node,
            Err(err) => {
                eprintln!("fleetcache: {err}");
                tracing::error!("start-up failed: {err}");
                return if err.is_config() {
                    ExitCode::from(EXIT_USAGE)
                } else {
                    ExitCode::FAILURE
                };
            }
        };
        let signal = signals.wait(&node).await;
        tracing::info!("{signal}: shutting down");
        if node.shutdown().await {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}

/// SIGTERM, SIGINT and SIGHUP, caught from the moment they are installed
/// (SIGHUP's default would kill the node).
struct Signals(Option<[tokio::signal::unix::Signal; 3]>);

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(term), Ok(int), Ok(hup)) => Signals(Some([term, int, hup])),
            _ => Signals(None),
        }
    }

    /// Waits for SIGTERM or SIGINT; every SIGHUP meanwhile reloads the
    /// node's certificates.
    async fn wait(self, node: &Node) -> &'static str {
        let Some([mut term, mut int, mut hup]) = self.0 else {
            // Without signal handlers the only way out is a kill; say so.
            tracing::warn!("could not install signal handlers");
            return std::future::pending().await;
        };
        loop {
            tokio::select! {
                _ = term.recv() => return "SIGTERM",
                _ = int.recv() => return "SIGINT",
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading certificates");
                    if let Err(err) = node.reload_certificates() {
                        tracing::warn!("SIGHUP: keeping the current certificates: {err}");
                    }
                }
            }
        }
    }
}

fn init_tracing(config: &Config) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .map_err(|err| format!("{:?}: {err}", config.log.level))?;
    // Colour only for a person at a terminal: journald, `kubectl logs` and
    // files get plain text (and `NO_COLOR` turns it off everywhere).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        // On a failed log write the subscriber would report it with `eprintln!`,
        // which panics when stderr itself is the broken pipe (a log collector that
        // went away): the node would exit 101 instead of draining.
        .log_internal_errors(false);
    let result = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // Already initialised (tests running several nodes) is fine.
    let _ = result;
    Ok(())
}

fn fsck(args: &FsckArgs) -> ExitCode {
    let config = match load_config(&args.node) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let report = match fleetcache_store::fsck(&config.store.data_dir, !args.dry_run) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("fleetcache fsck: {err}");
            return ExitCode::FAILURE;
        }
    };
    print_fsck(&config.store.data_dir, &report, args.dry_run);
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_fsck(data_dir: &Path, report: &fleetcache_store::FsckReport, dry_run: bool) {
    println!(
        "fsck {}: {} objects checked, {} ok; {} URL records checked",
        data_dir.display(),
        report.checked,
        report.ok,
        report.records_checked
    );
    for (hash, reason) in &report.corrupt {
        println!("corrupt {hash}: {reason}");
    }
    for hash in &report.missing {
        println!("missing {hash}: index entry without its data file");
    }
    for path in &report.orphan_files {
        println!("orphan {}: file not in the index", path.display());
    }
    for problem in &report.index_problems {
        println!("index: {problem}");
    }
    for record in &report.dangling_records {
        println!(
            "record {}: points to missing object {}",
            String::from_utf8_lossy(&record.key),
            record.blob
        );
    }
    for (key, reason) in &report.corrupt_records {
        println!("record {}: {reason}", String::from_utf8_lossy(key));
    }
    if report.is_clean() {
        println!("clean");
    } else if dry_run {
        println!("problems found (dry run: nothing changed)");
    } else {
        println!(
            "problems found: {} objects quarantined under {}, {} records removed",
            report.quarantined,
            data_dir.join("quarantine").display(),
            report.records_removed
        );
    }
}
