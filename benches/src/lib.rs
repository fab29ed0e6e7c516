//! Helpers shared by the benchmark binaries: finding tools and starting
//! servers as pinned child processes, a logging rate-limited origin, driving
//! `wrk` and `h2load`, a stampede of concurrent clients, small blocking
//! HTTP and HTTPS clients, a self-signed certificate, the objects both
//! fleetcache and nginx serve, fleetcache-vs-nginx rounds and their tables,
//! the iroh-blobs reference process, what `/proc` says about CPU and memory,
//! Ctrl-C handling, medians and percentiles.

pub mod h2load;
pub mod h3load;
pub mod http1;
pub mod https;
pub mod interrupt;
pub mod iroh;
pub mod load;
pub mod markdown;
pub mod meter;
pub mod objects;
pub mod origin;
pub mod process;
pub mod procfs;
pub mod servers;
pub mod stampede;
pub mod versus;
pub mod wrk;

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use rand::RngCore as _;

/// A benchmark's `main` after parsing its arguments: installs the Ctrl-C
/// handler, runs `body`, prints its error as `program: error: …` and
/// returns the exit code (130 after an interrupt).
pub fn main_with(program: &'static str, body: impl FnOnce() -> Result<()>) -> ExitCode {
    if let Err(err) = interrupt::install(program) {
        eprintln!("{program}: error: {err:#}");
        return ExitCode::FAILURE;
    }
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{program}: error: {err:#}");
            if interrupt::interrupted() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The part of a reproducing command line for the options every
/// comparison has: an explicit fleetcache binary, and CPUs other than the
/// default servers-on-0, clients-on-1.
pub fn common_flags(fleetcache: Option<&Path>, server_cpu: usize, client_cpu: usize) -> String {
    let mut flags = String::new();
    if let Some(path) = fleetcache {
        flags.push_str(&format!(" --fleetcache {}", path.display()));
    }
    if (server_cpu, client_cpu) != (0, 1) {
        flags.push_str(&format!(
            " --server-cpu {server_cpu} --client-cpu {client_cpu}"
        ));
    }
    flags
}

/// Writes `size` random bytes to `path` (synced to disk) and returns their
/// BLAKE3 hash. Stops early if the benchmark is interrupted.
pub fn write_random_file(path: &Path, size: u64) -> Result<blake3::Hash> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut hasher = blake3::Hasher::new();
    let mut rng = rand::rng();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        interrupt::check()?;
        let n = usize::try_from(left.min(buf.len() as u64))?;
        rng.fill_bytes(&mut buf[..n]);
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    out.get_ref()
        .sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok(hasher.finalize())
}

/// Median of the finite values (mean of the middle two for an even count); `None` if
/// there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// Nearest-rank percentile (`p` in 0..=100) of the finite values; `None`
/// if there are none.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::{median, percentile};

    #[test]
    fn common_flags_only_when_not_default() {
        assert_eq!(super::common_flags(None, 0, 1), "");
        assert_eq!(
            super::common_flags(Some(std::path::Path::new("/x/fc")), 1, 0),
            " --fleetcache /x/fc --server-cpu 1 --client-cpu 0"
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[f64::NAN, 4.0], 50.0), Some(4.0));
    }
}
