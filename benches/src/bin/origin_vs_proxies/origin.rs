//! The origin all three caches sit in front of: a separate single-process
//! nginx serving the test objects from a temp dir, every answer with
//! `Cache-Control: max-age=3600`, the cold object's directory rate-limited
//! per connection, and every request logged so the benchmark counts what
//! reached the origin instead of timing it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use fleetcache_benches::http1;
use fleetcache_benches::process::Server;
use fleetcache_benches::servers::Nginx;
use fleetcache_benches::write_random_file;

/// The hot object (4 KiB).
pub(crate) const HOT_PATH: &str = "/hot/object.bin";
/// The cold object; each run asks for it under a fresh query string, so a
/// fresh cache key.
pub(crate) const COLD_PATH: &str = "/cold/object.bin";
/// What readiness probes ask for (through the caches too).
pub(crate) const READY_PATH: &str = "/ready.txt";

/// The objects the origin serves.
#[derive(Debug)]
pub(crate) struct Objects {
    pub(crate) hot: Vec<u8>,
    pub(crate) cold_size: u64,
    pub(crate) cold_hash: blake3::Hash,
}

impl Objects {
    /// Writes the objects under `root`.
    pub(crate) fn create(root: &Path, hot_size: u64, cold_size: u64) -> Result<Self> {
        for dir in ["hot", "cold"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        std::fs::write(root.join(READY_PATH.trim_start_matches('/')), b"ready\n")?;
        let hot_file = root.join(HOT_PATH.trim_start_matches('/'));
        write_random_file(&hot_file, hot_size)?;
        let hot = std::fs::read(&hot_file)?;
        let cold_hash =
            write_random_file(&root.join(COLD_PATH.trim_start_matches('/')), cold_size)?;
        Ok(Self {
            hot,
            cold_size,
            cold_hash,
        })
    }
}

/// The running origin.
#[derive(Debug)]
pub(crate) struct Origin {
    /// Killed when the origin is dropped.
    _server: Server,
    pub(crate) addr: SocketAddr,
    access_log: PathBuf,
    /// Bytes per second per connection for the cold object.
    pub(crate) rate: u64,
}

impl Origin {
    /// Writes the origin's config under `prefix` and starts it on `cpu`.
    pub(crate) fn start(
        nginx: &Nginx,
        cpu: usize,
        prefix: &Path,
        root: &Path,
        addr: SocketAddr,
        rate: u64,
    ) -> Result<Self> {
        std::fs::create_dir_all(prefix)?;
        let access_log = prefix.join("access.log");
        let body = format!(
            r#"    log_format bench '$request_uri $status $body_bytes_sent';
    access_log "{log}" bench;
    etag on;

    server {{
        listen {addr};
        root "{root}";
        add_header Cache-Control "max-age=3600";
        location /cold/ {{
            limit_rate {rate};
        }}
    }}
"#,
            log = access_log.display(),
            root = root.display(),
        );
        let conf = Nginx::write_conf(prefix, "origin-vs-proxies: the origin", &body)?;
        let log = prefix.join("nginx.log");
        let server = nginx.start("origin nginx", cpu, &conf, addr, READY_PATH, log)?;
        Ok(Self {
            _server: server,
            addr,
            access_log,
            rate,
        })
    }

    /// How many requests for exactly `uri` (path and query) the origin has
    /// logged so far.
    pub(crate) fn requests_for(&self, uri: &str) -> Result<usize> {
        let text = std::fs::read_to_string(&self.access_log)
            .with_context(|| format!("reading {}", self.access_log.display()))?;
        Ok(count_requests(&text, uri))
    }

    /// The count for `uri` once it stops changing: nginx logs a request when
    /// its last byte is sent, which can be a moment after a cache's clients
    /// have theirs. Polls until it has been the same for `quiet`, at most
    /// `limit`.
    pub(crate) fn settled_requests_for(
        &self,
        uri: &str,
        quiet: Duration,
        limit: Duration,
    ) -> Result<usize> {
        let deadline = Instant::now() + limit;
        let mut count = self.requests_for(uri)?;
        let mut since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.requests_for(uri)?;
            if now != count {
                count = now;
                since = Instant::now();
            } else if count > 0 && since.elapsed() >= quiet {
                break;
            }
        }
        Ok(count)
    }

    /// Fetches `uri` straight from the origin, checks its length and
    /// returns how long the whole body took: the rate limit's real effect.
    pub(crate) fn time_alone(&self, uri: &str, size: u64) -> Result<Duration> {
        let start = Instant::now();
        let mut sink = LengthSink(0);
        let head = http1::exchange(self.addr, "GET", uri, None, &mut sink)?;
        let took = start.elapsed();
        ensure!(
            head.status == 200,
            "origin answered {} for {uri}",
            head.status
        );
        ensure!(
            sink.0 == size,
            "origin sent {} bytes for {uri}, expected {size}",
            sink.0
        );
        Ok(took)
    }
}

/// Counts bytes written to it.
#[derive(Debug)]
struct LengthSink(u64);

impl std::io::Write for LengthSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Lines of the `bench` log format (`$request_uri $status $bytes`) whose
/// URI is exactly `uri`.
fn count_requests(log: &str, uri: &str) -> usize {
    log.lines()
        .filter(|line| line.split_whitespace().next() == Some(uri))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_exact_uris_only() {
        let log = "/cold/object.bin?run=1-nginx 200 67108864\n\
                   /cold/object.bin?run=1-nginx 200 67108864\n\
                   /cold/object.bin?run=1-nginx2 200 67108864\n\
                   /hot/object.bin 200 4096\n\
                   \n";
        assert_eq!(count_requests(log, "/cold/object.bin?run=1-nginx"), 2);
        assert_eq!(count_requests(log, "/hot/object.bin"), 1);
        assert_eq!(count_requests(log, "/cold/object.bin"), 0);
        assert_eq!(count_requests("", "/hot/object.bin"), 0);
    }

    #[test]
    fn length_sink_counts() -> std::io::Result<()> {
        let mut sink = LengthSink(0);
        std::io::Write::write_all(&mut sink, &[0; 10])?;
        std::io::Write::write_all(&mut sink, &[0; 5])?;
        assert_eq!(sink.0, 15);
        Ok(())
    }
}
