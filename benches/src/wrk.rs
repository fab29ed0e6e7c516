//! `wrk` as a [`LoadGenerator`]: its command line and its report.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::load::{self, LoadGenerator, LoadReport};

/// One wrk invocation.
#[derive(Debug, Clone)]
pub struct WrkArgs {
    pub cpu: usize,
    pub connections: u32,
    pub secs: u64,
    pub latency: bool,
    /// wrk's `--timeout`: responses slower than this count as socket-error
    /// timeouts and are left out of the latency statistics.
    pub timeout_secs: u64,
}

impl LoadGenerator for WrkArgs {
    fn program(&self) -> &'static str {
        "wrk"
    }

    fn secs(&self) -> u64 {
        self.secs
    }

    fn argv(&self, url: &str, secs: u64) -> Vec<String> {
        let mut argv = load::pinned_argv(self.cpu, self.program());
        argv.extend([
            "-t1".to_owned(),
            format!("-c{}", self.connections),
            format!("-d{secs}s"),
            format!("--timeout={}s", self.timeout_secs),
        ]);
        if self.latency {
            argv.push("--latency".to_owned());
        }
        argv.push(url.to_owned());
        argv
    }

    fn parse(&self, out: &str) -> Result<LoadReport> {
        parse(out)
    }
}

/// wrk running a Lua script (`-s`) that picks each request's path, e.g.
/// [`cycle_script`]: the URL then gives only the scheme, host and port.
#[derive(Debug, Clone)]
pub struct WrkScript {
    pub wrk: WrkArgs,
    pub script: PathBuf,
}

impl LoadGenerator for WrkScript {
    fn program(&self) -> &'static str {
        "wrk"
    }

    fn secs(&self) -> u64 {
        self.wrk.secs
    }

    fn argv(&self, url: &str, secs: u64) -> Vec<String> {
        let mut argv = self.wrk.argv(url, secs);
        let url = argv.pop().unwrap_or_default();
        argv.push("-s".to_owned());
        argv.push(self.script.display().to_string());
        argv.push(url);
        argv
    }

    fn parse(&self, out: &str) -> Result<LoadReport> {
        parse(out)
    }
}

/// A wrk Lua script that requests the paths listed in `list` (one a line)
/// in turn, round robin, each connection's requests following the same
/// cycle. The requests are formatted once, when the script loads.
pub fn cycle_script(list: &Path) -> String {
    format!(
        r#"-- Requests the paths in the list in turn (written by fleetcache-benches).
local requests = {{}}
for path in io.lines([==[{list}]==]) do
  requests[#requests + 1] = wrk.format("GET", path)
end
if #requests == 0 then
  error("no paths in the list")
end
local next_index = 0
request = function()
  next_index = next_index % #requests + 1
  return requests[next_index]
end
"#,
        list = list.display()
    )
}

/// wrk's version line, without the copyright.
pub fn version(wrk: &Path) -> String {
    crate::process::version_line(wrk, "-v")
        .split(" Copyright")
        .next()
        .unwrap_or("unknown")
        .to_owned()
}

/// Parses wrk 4.x's text report.
pub fn parse(out: &str) -> Result<LoadReport> {
    let mut report = LoadReport::default();
    let mut saw_requests = false;
    let mut saw_rps = false;
    let mut saw_transfer = false;
    let mut in_distribution = false;
    for line in out.lines() {
        let trimmed = line.trim();
        if trimmed == "Latency Distribution" {
            in_distribution = true;
            continue;
        }
        if in_distribution {
            if let Some((pct, value)) = trimmed.split_once('%')
                && let Ok(pct) = pct.trim().parse::<f64>()
            {
                report
                    .latency_us
                    .push((pct, load::duration_us(value.trim())?));
                continue;
            }
            in_distribution = false;
        }
        if let Some(rest) = trimmed.strip_prefix("Latency ") {
            // Thread Stats: "Latency   530.12us  100.00us   5.00ms   90.00%"
            if let Some(mean) = rest.split_whitespace().next() {
                report.latency_mean_us = Some(load::duration_us(mean)?);
            }
        } else if let Some(rest) = trimmed.strip_prefix("Requests/sec:") {
            report.requests_per_sec = rest.trim().parse().context("Requests/sec")?;
            saw_rps = true;
        } else if let Some(rest) = trimmed.strip_prefix("Transfer/sec:") {
            report.transfer_per_sec = load::bytes(rest.trim())?;
            saw_transfer = true;
        } else if let Some(rest) = trimmed.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for part in rest.split(',') {
                if let Some(n) = part.split_whitespace().nth(1) {
                    report.socket_errors += n.parse::<u64>().context("Socket errors")?;
                }
            }
        } else if let Some(rest) = trimmed.strip_prefix("Non-2xx or 3xx responses:") {
            report.non_2xx = rest.trim().parse().context("Non-2xx")?;
        } else if let Some((n, rest)) = trimmed.split_once(" requests in ") {
            // "600000 requests in 5.00s, 2.50GB read"
            report.requests = n.trim().parse().context("request count")?;
            let (dur, read) = rest.split_once(',').context("no ',' after the duration")?;
            report.duration_secs = load::duration_us(dur.trim())? / 1e6;
            let read = read.trim().strip_suffix("read").context("no 'read'")?;
            report.bytes_read = load::bytes(read.trim())?;
            saw_requests = true;
        }
    }
    if !(saw_requests && saw_rps && saw_transfer) {
        bail!("missing the request count, Requests/sec or Transfer/sec line");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "Running 5s test @ http://127.0.0.1:1/blake3/ab
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   530.12us  100.00us   5.00ms   90.00%
    Req/Sec   120.00k     5.00k  130.00k    80.00%
  Latency Distribution
     50%  500.00us
     75%  600.00us
     90%  700.00us
     99%    1.20ms
  600000 requests in 5.00s, 2.50GB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec: 120000.00
Transfer/sec:    512.00MB
";

    #[test]
    fn parses_a_latency_report() -> Result<()> {
        let r = parse(SMALL)?;
        assert_eq!(r.requests, 600_000);
        assert!((r.duration_secs - 5.0).abs() < 1e-9);
        assert!((r.bytes_read - 2.5 * 1024.0 * 1024.0 * 1024.0).abs() < 1.0);
        assert!((r.requests_per_sec - 120_000.0).abs() < 1e-9);
        assert!((r.transfer_per_sec - 512.0 * 1024.0 * 1024.0).abs() < 1e-6);
        assert_eq!(r.latency_mean_us, Some(530.12));
        assert_eq!(r.latency_at(50.0), Some(500.0));
        assert_eq!(r.latency_at(99.0), Some(1200.0));
        assert_eq!(r.socket_errors, 3);
        assert_eq!(r.non_2xx, 5);
        Ok(())
    }

    #[test]
    fn parses_a_report_without_latency() -> Result<()> {
        let out = "Running 10s test @ http://x/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.50s   200.00ms   1.90s    70.00%
    Req/Sec     1.00      0.50     2.00     80.00%
  80 requests in 10.01s, 20.10GB read
Requests/sec:      7.99
Transfer/sec:      2.01GB
";
        let r = parse(out)?;
        assert_eq!(r.requests, 80);
        assert!(r.latency_us.is_empty());
        assert!((r.duration_secs - 10.01).abs() < 1e-9);
        assert!((r.transfer_per_sec - 2.01 * 1024.0 * 1024.0 * 1024.0).abs() < 1.0);
        Ok(())
    }

    #[test]
    fn scripted_runs_put_the_script_before_the_url() {
        let scripted = WrkScript {
            wrk: WrkArgs {
                cpu: 1,
                connections: 64,
                secs: 5,
                latency: true,
                timeout_secs: 10,
            },
            script: PathBuf::from("/tmp/cycle.lua"),
        };
        let argv = scripted.argv("http://127.0.0.1:8080/", 5).join(" ");
        assert_eq!(
            argv,
            "taskset -c 1 wrk -t1 -c64 -d5s --timeout=10s --latency -s /tmp/cycle.lua \
             http://127.0.0.1:8080/"
        );
        let script = cycle_script(Path::new("/tmp/hashes.txt"));
        assert!(
            script.contains("io.lines([==[/tmp/hashes.txt]==])"),
            "{script}"
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }
}
