//! The origin caches sit in front of in the comparisons: a separate
//! single-process nginx serving files from a temp dir, every answer with
//! `Cache-Control: max-age=3600`, one directory rate-limited per
//! connection, and every request logged so a benchmark counts what reached
//! the origin instead of timing it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use crate::http1;
use crate::process::Server;
use crate::servers::Nginx;

/// What readiness probes ask for (through the caches too); the origin
/// writes it into its root.
pub const READY_PATH: &str = "/ready.txt";

/// How the origin is set up.
#[derive(Debug, Clone, Copy)]
pub struct OriginSpec<'a> {
    /// The directory its files are served from.
    pub root: &'a Path,
    /// The URL path prefix (a directory, `/cold/`) whose answers are sent at
    /// most `rate` bytes per second per connection (nginx `limit_rate`).
    pub limited: &'a str,
    /// Bytes per second per connection under `limited`.
    pub rate: u64,
    /// The benchmark, for the config's header comment.
    pub written_by: &'a str,
}

/// The running origin.
#[derive(Debug)]
pub struct Origin {
    /// Killed when the origin is dropped.
    server: Server,
    pub addr: SocketAddr,
    access_log: PathBuf,
    /// Bytes per second per connection under the limited prefix.
    pub rate: u64,
}

impl Origin {
    /// Writes the origin's config under `prefix` and starts it pinned to
    /// `cpu`, listening on `addr`.
    pub fn start(
        nginx: &Nginx,
        cpu: usize,
        prefix: &Path,
        addr: SocketAddr,
        spec: OriginSpec<'_>,
    ) -> Result<Self> {
        std::fs::create_dir_all(prefix)?;
        let ready = spec.root.join(READY_PATH.trim_start_matches('/'));
        std::fs::write(&ready, b"ready\n")
            .with_context(|| format!("writing {}", ready.display()))?;
        let access_log = prefix.join("access.log");
        let body = origin_conf(&access_log, addr, spec);
        let conf = Nginx::write_conf(prefix, &format!("{}: the origin", spec.written_by), &body)?;
        let log = prefix.join("nginx.log");
        let server = nginx.start("origin nginx", cpu, &conf, addr, READY_PATH, log)?;
        Ok(Self {
            server,
            addr,
            access_log,
            rate: spec.rate,
        })
    }

    /// utime + stime of the origin's process group, clock ticks.
    pub fn cpu_ticks(&self) -> Result<u64> {
        self.server.cpu_ticks()
    }

    /// How many requests for exactly `uri` (path and query) the origin has
    /// logged so far.
    pub fn requests_for(&self, uri: &str) -> Result<usize> {
        let text = std::fs::read_to_string(&self.access_log)
            .with_context(|| format!("reading {}", self.access_log.display()))?;
        Ok(count_requests(&text, uri))
    }

    /// The count for `uri` once it stops changing: nginx logs a request when
    /// its last byte is sent, which can be a moment after a cache's clients
    /// have theirs. Polls until it has been the same for `quiet`, at most
    /// `limit`.
    pub fn settled_requests_for(
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
    pub fn time_alone(&self, uri: &str, size: u64) -> Result<Duration> {
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

/// The origin's `http` block: a log line per request (`$request_uri $status
/// $body_bytes_sent`), ETags, `max-age=3600`, `limit_rate` under the
/// limited prefix.
fn origin_conf(access_log: &Path, addr: SocketAddr, spec: OriginSpec<'_>) -> String {
    format!(
        r#"    log_format bench '$request_uri $status $body_bytes_sent';
    access_log "{log}" bench;
    etag on;

    server {{
        listen {addr};
        root "{root}";
        add_header Cache-Control "max-age=3600";
        location {limited} {{
            limit_rate {rate};
        }}
    }}
"#,
        log = access_log.display(),
        root = spec.root.display(),
        limited = spec.limited,
        rate = spec.rate,
    )
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

    #[test]
    fn the_config_limits_only_its_prefix() {
        let spec = OriginSpec {
            root: Path::new("/tmp/www"),
            limited: "/cold/",
            rate: 32_000_000,
            written_by: "test",
        };
        let addr: SocketAddr = ([127, 0, 0, 1], 4321).into();
        let conf = origin_conf(Path::new("/tmp/o/access.log"), addr, spec);
        assert!(conf.contains("listen 127.0.0.1:4321;"));
        assert!(conf.contains("root \"/tmp/www\";"));
        assert!(conf.contains("location /cold/ {\n            limit_rate 32000000;"));
        assert!(conf.contains("access_log \"/tmp/o/access.log\" bench;"));
    }
}
