//! iroh-blobs as a reference for `swarm-transfer`: the `iroh-reference` child
//! process (benches/iroh-reference, a crate outside this workspace so that
//! building the workspace never compiles iroh), driven one line at a time over
//! its stdin and stdout.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, bail};

/// Builds the reference where [`IrohReference::start`] looks for it; run from
/// the workspace root.
pub const IROH_BUILD: &str =
    "cargo build --release --manifest-path benches/iroh-reference/Cargo.toml --target-dir target";

/// Overrides where the reference binary is looked for.
pub const IROH_BINARY_VAR: &str = "FLEETCACHE_IROH_REFERENCE";

const BINARY_NAME: &str = "iroh-reference";

/// Which kind of store a round fetches into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrohStore {
    /// A fresh iroh-blobs file store, as fleetcache's fill writes into its store.
    File,
    /// A fresh in-memory store: the transfer and verification without the disk.
    Memory,
}

impl IrohStore {
    fn command(self) -> &'static str {
        match self {
            Self::File => "fs",
            Self::Memory => "mem",
        }
    }
}

/// A running reference: a provider holding one random blob in its file store
/// and a fetcher, both on loopback. Killed on drop.
#[derive(Debug)]
pub struct IrohReference {
    child: Child,
    commands: ChildStdin,
    replies: BufReader<ChildStdout>,
}

impl IrohReference {
    /// Starts the reference with a blob of `size` bytes, its stores under `dir`,
    /// and waits until the blob is imported. `None`, after saying on stderr how
    /// to build it, if the binary is not there; an error if
    /// `FLEETCACHE_IROH_REFERENCE` names a file that is not.
    pub fn start(size: u64, dir: &Path) -> Result<Option<Self>> {
        let Some(binary) = binary()? else {
            eprintln!(
                "{BINARY_NAME} is not built, so iroh-blobs is not measured; \
                 build it from the workspace root with `{IROH_BUILD}` \
                 (or set {IROH_BINARY_VAR} to its path)"
            );
            return Ok(None);
        };
        // stderr is inherited so the child's own error message reaches the user.
        let mut child = Command::new(&binary)
            .arg("--size")
            .arg(size.to_string())
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let (Some(commands), Some(replies)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("{BINARY_NAME} started without piped stdin and stdout");
        };
        let mut reference = Self {
            child,
            commands,
            replies: BufReader::new(replies),
        };
        let greeting = reference.reply()?;
        if greeting != "ready" {
            bail!("{BINARY_NAME} said {greeting:?} instead of \"ready\"");
        }
        Ok(Some(reference))
    }

    /// One cold fetch of the blob into a fresh `store`; MB/s (10^6 bytes)
    /// from the request to the blob being complete in that store. Blocks
    /// until the round is over.
    pub fn round(&mut self, store: IrohStore) -> Result<f64> {
        writeln!(self.commands, "{}", store.command())
            .and_then(|()| self.commands.flush())
            .with_context(|| format!("sending {BINARY_NAME} a round"))?;
        parse_rate(&self.reply()?)
    }

    /// The child's next line; if there is none it has exited, and its status
    /// says how (its stderr has already gone to ours).
    fn reply(&mut self) -> Result<String> {
        let mut line = String::new();
        let read = self
            .replies
            .read_line(&mut line)
            .with_context(|| format!("reading from {BINARY_NAME}"))?;
        if read == 0 {
            let status = self.child.wait()?;
            bail!("{BINARY_NAME} exited ({status}) before answering");
        }
        Ok(line.trim_end().to_owned())
    }
}

impl Drop for IrohReference {
    fn drop(&mut self) {
        // Errors only mean it has already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$FLEETCACHE_IROH_REFERENCE`, else where [`IROH_BUILD`] puts it, else next to
/// this executable.
fn binary() -> Result<Option<PathBuf>> {
    if let Some(path) = std::env::var_os(IROH_BINARY_VAR) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "{IROH_BINARY_VAR} is {}, which is not a file",
                path.display()
            );
        }
        return Ok(Some(path));
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/release")
        .join(BINARY_NAME);
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(BINARY_NAME)));
    Ok([Some(built), beside_exe]
        .into_iter()
        .flatten()
        .find(|path| path.is_file()))
}

fn parse_rate(line: &str) -> Result<f64> {
    match line.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => bail!("{BINARY_NAME} answered {line:?} instead of a rate in MB/s"),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates_are_positive_numbers() {
        assert_eq!(parse_rate("1234.5").ok(), Some(1234.5));
        assert!(parse_rate("").is_err());
        assert!(parse_rate("ready").is_err());
        assert!(parse_rate("NaN").is_err());
        assert!(parse_rate("-3").is_err());
    }
}
