//! Running `wrk` pinned to a core, with a deadline, and reading its report.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long past its own `-d` a wrk run may take before it is killed.
const WRK_GRACE: Duration = Duration::from_secs(30);

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

impl WrkArgs {
    /// The argv, starting with `taskset`.
    pub fn argv(&self, url: &str) -> Vec<String> {
        let mut argv = vec![
            "taskset".to_owned(),
            "-c".to_owned(),
            self.cpu.to_string(),
            "wrk".to_owned(),
            "-t1".to_owned(),
            format!("-c{}", self.connections),
            format!("-d{}s", self.secs),
            format!("--timeout={}s", self.timeout_secs),
        ];
        if self.latency {
            argv.push("--latency".to_owned());
        }
        argv.push(url.to_owned());
        argv
    }
}

/// wrk's version line, without the copyright.
pub fn version(wrk: &Path) -> String {
    crate::process::version_line(wrk, "-v")
        .split(" Copyright")
        .next()
        .unwrap_or("unknown")
        .to_owned()
}

/// What we take from wrk's report.
#[derive(Debug, Clone, Default)]
pub struct WrkReport {
    /// Completed requests ("N requests in ...").
    pub requests: u64,
    /// The measured duration ("... in 5.00s, ...").
    pub duration_secs: f64,
    /// Bytes read ("..., 2.50GB read"), headers included.
    pub bytes_read: f64,
    pub requests_per_sec: f64,
    /// Bytes per second ("Transfer/sec").
    pub transfer_per_sec: f64,
    /// Latency percentiles in microseconds, as (percent, µs), if `--latency`.
    pub latency_us: Vec<(f64, f64)>,
    /// Sum of the "Socket errors" counts.
    pub socket_errors: u64,
    /// "Non-2xx or 3xx responses".
    pub non_2xx: u64,
}

impl WrkReport {
    pub fn latency_at(&self, percent: f64) -> Option<f64> {
        self.latency_us
            .iter()
            .find(|(p, _)| (p - percent).abs() < 1e-9)
            .map(|(_, us)| *us)
    }
}

/// Runs wrk against `url`, killing it if it outlives its duration by
/// [`WRK_GRACE`]. Output goes to files in `scratch` (no pipe can fill up).
pub fn run(args: &WrkArgs, url: &str, scratch: &Path) -> Result<(WrkReport, String)> {
    let argv = args.argv(url);
    let out_path = scratch.join("wrk.out");
    let err_path = scratch.join("wrk.err");
    let stdout = std::fs::File::create(&out_path)
        .with_context(|| format!("creating {}", out_path.display()))?;
    let stderr = std::fs::File::create(&err_path)
        .with_context(|| format!("creating {}", err_path.display()))?;
    let mut child = crate::process::orphan_proof(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {}", argv.join(" ")))?;
    let deadline = Instant::now() + Duration::from_secs(args.secs) + WRK_GRACE;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if crate::interrupt::interrupted() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("interrupted");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "wrk did not finish within {}s + {WRK_GRACE:?}; killed it",
                args.secs
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    if !status.success() {
        bail!("`{}` failed ({status}):\n{out}{err}", argv.join(" "));
    }
    let report = parse(&out).with_context(|| format!("parsing wrk output:\n{out}{err}"))?;
    Ok((report, out))
}

/// Parses wrk 4.x's text report.
pub fn parse(out: &str) -> Result<WrkReport> {
    let mut report = WrkReport::default();
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
                report.latency_us.push((pct, duration_us(value.trim())?));
                continue;
            }
            in_distribution = false;
        }
        if let Some(rest) = trimmed.strip_prefix("Requests/sec:") {
            report.requests_per_sec = rest.trim().parse().context("Requests/sec")?;
            saw_rps = true;
        } else if let Some(rest) = trimmed.strip_prefix("Transfer/sec:") {
            report.transfer_per_sec = bytes(rest.trim())?;
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
            report.duration_secs = duration_us(dur.trim())? / 1e6;
            let read = read.trim().strip_suffix("read").context("no 'read'")?;
            report.bytes_read = bytes(read.trim())?;
            saw_requests = true;
        }
    }
    if !(saw_requests && saw_rps && saw_transfer) {
        bail!("missing the request count, Requests/sec or Transfer/sec line");
    }
    Ok(report)
}

/// "530.12us", "1.20ms", "2.00s", "1.00m", "1.00h" → microseconds.
fn duration_us(text: &str) -> Result<f64> {
    let units: [(&str, f64); 5] = [
        ("us", 1.0),
        ("ms", 1e3),
        ("s", 1e6),
        ("m", 60e6),
        ("h", 3600e6),
    ];
    for (suffix, scale) in units {
        if let Some(number) = text.strip_suffix(suffix)
            && let Ok(value) = number.parse::<f64>()
        {
            return Ok(value * scale);
        }
    }
    bail!("unrecognised duration {text:?}")
}

/// "500.00MB", "1.23KB", "12.00B" → bytes. wrk's units are binary (1024).
fn bytes(text: &str) -> Result<f64> {
    let units: [(&str, f64); 6] = [
        ("KB", 1024.0),
        ("MB", 1024.0 * 1024.0),
        ("GB", 1024.0 * 1024.0 * 1024.0),
        ("TB", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("PB", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("B", 1.0),
    ];
    for (suffix, scale) in units {
        if let Some(number) = text.strip_suffix(suffix)
            && let Ok(value) = number.parse::<f64>()
        {
            return Ok(value * scale);
        }
    }
    bail!("unrecognised byte count {text:?}")
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
    fn rejects_garbage() {
        assert!(parse("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }
}
