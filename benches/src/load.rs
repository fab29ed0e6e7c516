//! Load generators (`wrk`, `h2load`): what every one of them reports, and
//! running one pinned to a core, with a deadline, its output in files.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long past its own duration a load generator may take before it is
/// killed.
const GRACE: Duration = Duration::from_secs(30);

/// What we take from a load generator's report.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Completed requests.
    pub requests: u64,
    /// The measured duration.
    pub duration_secs: f64,
    /// Bytes read, headers included (after TLS: what HTTP carried).
    pub bytes_read: f64,
    pub requests_per_sec: f64,
    /// Bytes per second.
    pub transfer_per_sec: f64,
    /// Latency percentiles in microseconds, as (percent, µs), if the
    /// generator gives them.
    pub latency_us: Vec<(f64, f64)>,
    /// Mean latency in microseconds, if the generator gives it.
    pub latency_mean_us: Option<f64>,
    /// Requests that failed at the socket level (connect, read, write,
    /// timeout, stream errors).
    pub socket_errors: u64,
    /// Responses other than 2xx or 3xx.
    pub non_2xx: u64,
    /// What was negotiated, e.g. `TLSv1.3 TLS_AES_128_GCM_SHA256 h2`, if
    /// the generator says.
    pub negotiated: Option<String>,
    /// UDP datagrams dropped machine-wide for want of receive-buffer room
    /// during the run, if the generator (a QUIC one) counted them.
    pub udp_drops: Option<u64>,
}

impl LoadReport {
    /// The latency at `percent`, µs, if the generator gave that percentile.
    pub fn latency_at(&self, percent: f64) -> Option<f64> {
        self.latency_us
            .iter()
            .find(|(p, _)| (p - percent).abs() < 1e-9)
            .map(|(_, us)| *us)
    }
}

/// A configured load generator: its command line and how to read its
/// report.
pub trait LoadGenerator: std::fmt::Debug {
    /// The program's name, for messages and reports (`wrk`, `h2load`).
    fn program(&self) -> &'static str;
    /// Seconds a run lasts.
    fn secs(&self) -> u64;
    /// The argv of a `secs`-second run against `url`, starting with
    /// `taskset` (pinned to the client core).
    fn argv(&self, url: &str, secs: u64) -> Vec<String>;
    /// Parses the program's standard output; fails on anything that makes
    /// the run unusable (including a protocol other than the one asked for).
    fn parse(&self, out: &str) -> Result<LoadReport>;

    /// The command line of a timed run, for the report.
    fn command(&self, url: &str) -> String {
        self.argv(url, self.secs()).join(" ")
    }
}

/// The start of a load generator's argv: `taskset -c CPU PROGRAM`.
pub fn pinned_argv(cpu: usize, program: &str) -> Vec<String> {
    vec![
        "taskset".to_owned(),
        "-c".to_owned(),
        cpu.to_string(),
        program.to_owned(),
    ]
}

/// Runs `generator` for `secs` seconds against `url`, killing it if it
/// outlives that by [`GRACE`]. Output goes to files in `scratch` (no pipe
/// can fill up). Returns the parsed report and the raw output.
pub fn run(
    generator: &dyn LoadGenerator,
    url: &str,
    secs: u64,
    scratch: &Path,
) -> Result<(LoadReport, String)> {
    let argv = generator.argv(url, secs);
    let name = generator.program();
    let out_path = scratch.join(format!("{name}.out"));
    let err_path = scratch.join(format!("{name}.err"));
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
    let deadline = Instant::now() + Duration::from_secs(secs) + GRACE;
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
            bail!("{name} did not finish within {secs}s + {GRACE:?}; killed it");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    if !status.success() {
        bail!("`{}` failed ({status}):\n{out}{err}", argv.join(" "));
    }
    let mut report = generator
        .parse(&out)
        .with_context(|| format!("parsing {name} output:\n{out}{err}"))?;
    if report.requests == 0 {
        // Both print a zero mean when nothing completed (a huge object in
        // a short run): there is no mean.
        report.latency_mean_us = None;
    }
    Ok((report, out))
}

/// "530.12us", "1.20ms", "2.00s", "1.00m", "1.00h" → microseconds.
pub(crate) fn duration_us(text: &str) -> Result<f64> {
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

/// "500.00MB", "1.23KB", "12.00B" → bytes. wrk and h2load use binary units
/// (1024).
pub(crate) fn bytes(text: &str) -> Result<f64> {
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
