//! `fleetcache cert ca` and `fleetcache cert node`: the fleet PKI from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use fleetcache_swarm::FleetCa;

use super::EXIT_USAGE;

#[derive(Debug, Subcommand)]
pub(super) enum CertAction {
    /// Create a fleet CA: `ca.pem` (give it to every node) and `ca.key` (keep it
    /// offline; it signs node certificates).
    Ca {
        /// Directory to write into; created if missing. Existing files are never
        /// overwritten.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "fleetcache fleet CA")]
        name: String,
    },
    /// Issue a node certificate signed by the fleet CA: writes `ca.pem`, `node.pem`
    /// and `node.key` — the directory to pass as `--cert-dir`.
    Node {
        /// The CA directory `fleetcache cert ca` wrote.
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The node's name, a DNS name such as `edge-1` or `edge-1.fleet`.
        #[arg(long)]
        name: String,
        /// Directory to write into; created if missing. Existing files are never
        /// overwritten.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

pub(super) fn run(action: &CertAction) -> ExitCode {
    let result = match action {
        CertAction::Ca { out, name } => FleetCa::generate(name)
            .and_then(|ca| ca.save(out))
            .map(|()| format!("fleet CA written to {}", out.display())),
        CertAction::Node { ca, name, out } => FleetCa::load(ca)
            .and_then(|ca| ca.issue_node(name))
            .and_then(|cert| cert.save(out))
            .map(|()| {
                format!(
                    "node certificate for {name} written to {}; run with --cert-dir {}",
                    out.display(),
                    out.display()
                )
            }),
    };
    match result {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("fleetcache: {err}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
