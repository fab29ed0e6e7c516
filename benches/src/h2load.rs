//! `h2load` (nghttp2) as a [`LoadGenerator`]: HTTPS load over HTTP/1.1 or
//! HTTP/2, one thread pinned to the client core, for a fixed duration.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

use crate::https::Protocol;
use crate::load::{self, LoadGenerator, LoadReport};

/// One h2load invocation.
#[derive(Debug, Clone)]
pub struct H2loadArgs {
    pub cpu: usize,
    pub protocol: Protocol,
    /// Connections (`-c`).
    pub clients: u32,
    /// Requests in flight per connection (`-m`): HTTP/2 streams; for
    /// HTTP/1.1 it would be pipelining, so keep it at 1 there.
    pub streams: u32,
    pub secs: u64,
}

impl LoadGenerator for H2loadArgs {
    fn program(&self) -> &'static str {
        "h2load"
    }

    fn secs(&self) -> u64 {
        self.secs
    }

    fn argv(&self, url: &str, secs: u64) -> Vec<String> {
        let mut argv = load::pinned_argv(self.cpu, self.program());
        argv.extend([
            "-t1".to_owned(),
            format!("-c{}", self.clients),
            format!("-m{}", self.streams),
            format!("-D{secs}"),
        ]);
        if self.protocol == Protocol::Http1 {
            argv.push("--h1".to_owned());
        }
        argv.push(url.to_owned());
        argv
    }

    fn parse(&self, out: &str) -> Result<LoadReport> {
        let report = parse(out)?;
        let negotiated = report.negotiated.as_deref().unwrap_or("");
        ensure!(
            negotiated.split_whitespace().last() == Some(self.protocol.alpn()),
            "h2load negotiated {negotiated:?}, not {}",
            self.protocol.alpn()
        );
        Ok(report)
    }
}

/// h2load's version (`h2load nghttp2/1.52.0`).
pub fn version(h2load: &Path) -> String {
    crate::process::version_line(h2load, "--version")
}

/// Parses h2load's text report (nghttp2 1.4x–1.6x).
pub fn parse(out: &str) -> Result<LoadReport> {
    let mut report = LoadReport::default();
    let (mut saw_finished, mut saw_requests, mut saw_traffic) = (false, false, false);
    let mut tls = Vec::new();
    for line in out.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            // "2.03s, 9017.00 req/s, 36.32MB/s"
            let mut parts = rest.split(',').map(str::trim);
            let duration = parts.next().context("no duration")?;
            report.duration_secs = load::duration_us(duration)? / 1e6;
            let rps = parts.next().context("no req/s")?;
            report.requests_per_sec = rps
                .strip_suffix(" req/s")
                .context("no ' req/s'")?
                .parse()
                .context("req/s")?;
            saw_finished = true;
        } else if let Some(rest) = line.strip_prefix("requests: ") {
            // "18034 total, 18674 started, 18034 done, 18034 succeeded, 0 failed, 0 errored, 0 timeout"
            report.requests = counted(rest, "succeeded")?;
            report.socket_errors = counted(rest, "failed")?;
            saw_requests = true;
        } else if let Some(rest) = line.strip_prefix("status codes: ") {
            // "18034 2xx, 0 3xx, 0 4xx, 0 5xx"
            report.non_2xx = counted(rest, "4xx")? + counted(rest, "5xx")?;
        } else if let Some(rest) = line.strip_prefix("traffic: ") {
            // "72.63MB (76160718) total, ..."
            let exact = rest
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .context("no exact byte count")?
                .0;
            report.bytes_read = exact.parse::<u64>().context("traffic bytes")? as f64;
            saw_traffic = true;
        } else if let Some(rest) = line.strip_prefix("time for request:") {
            // "min max mean sd +/- sd"
            let mean = rest.split_whitespace().nth(2).context("no mean")?;
            report.latency_mean_us = Some(load::duration_us(mean)?);
        } else if let Some(value) = line
            .strip_prefix("TLS Protocol: ")
            .or_else(|| line.strip_prefix("Cipher: "))
            .or_else(|| line.strip_prefix("Application protocol: "))
        {
            // Printed once per thread, for its first connection.
            if tls.len() < 3 {
                tls.push(value.trim().to_owned());
            }
        }
    }
    if !(saw_finished && saw_requests && saw_traffic) {
        bail!("missing the 'finished in', 'requests:' or 'traffic:' line");
    }
    report.transfer_per_sec = report.bytes_read / report.duration_secs.max(f64::MIN_POSITIVE);
    if !tls.is_empty() {
        report.negotiated = Some(tls.join(" "));
    }
    Ok(report)
}

/// The count before `label` in "N label, M other, ...".
fn counted(text: &str, label: &str) -> Result<u64> {
    text.split(',')
        .map(str::trim)
        .find_map(|part| part.strip_suffix(label))
        .with_context(|| format!("no {label:?} count"))?
        .trim()
        .parse()
        .with_context(|| format!("{label:?} count"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H2: &str = "starting benchmark...
spawning thread #0: 64 total client(s). Timing-based test with 0s of warm-up time and 2s of main duration for measurements.
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
TLS Protocol: TLSv1.3
Cipher: TLS_AES_128_GCM_SHA256
Server Temp Key: X25519 253 bits
Application protocol: h2
Main benchmark duration is over for thread #0. Stopping all clients.

finished in 2.03s, 9017.00 req/s, 36.32MB/s
requests: 18034 total, 18674 started, 18034 done, 18030 succeeded, 4 failed, 4 errored, 0 timeout
status codes: 18030 2xx, 0 3xx, 2 4xx, 1 5xx
traffic: 72.63MB (76160718) total, 1.87MB (1965706) headers (space savings 39.44%), 70.45MB (73867264) data
                     min         max         mean         sd        +/- sd
time for request:     1.79ms    116.39ms     52.29ms     23.41ms    62.07%
time for connect:    35.90ms    246.06ms    136.65ms     66.40ms    62.50%
time to 1st byte:   322.13ms    357.64ms    342.22ms     12.35ms    51.56%
req/s           :     129.82      154.90      140.78        5.53    71.88%
";

    fn args(protocol: Protocol) -> H2loadArgs {
        H2loadArgs {
            cpu: 1,
            protocol,
            clients: 64,
            streams: 10,
            secs: 2,
        }
    }

    #[test]
    fn parses_a_report() -> Result<()> {
        let r = args(Protocol::Http2).parse(H2)?;
        assert_eq!(r.requests, 18_030);
        assert!((r.duration_secs - 2.03).abs() < 1e-9);
        assert!((r.requests_per_sec - 9017.0).abs() < 1e-9);
        assert!((r.bytes_read - 76_160_718.0).abs() < 0.5);
        assert!((r.transfer_per_sec - 76_160_718.0 / 2.03).abs() < 1.0);
        assert_eq!(r.socket_errors, 4);
        assert_eq!(r.non_2xx, 3);
        assert_eq!(r.latency_mean_us, Some(52_290.0));
        assert_eq!(
            r.negotiated.as_deref(),
            Some("TLSv1.3 TLS_AES_128_GCM_SHA256 h2")
        );
        Ok(())
    }

    #[test]
    fn refuses_the_wrong_protocol() {
        let err = args(Protocol::Http1).parse(H2).map_err(|e| e.to_string());
        assert!(
            err.as_ref().is_err_and(|e| e.contains("not http/1.1")),
            "{err:?}"
        );
    }

    #[test]
    fn argv_pins_and_picks_the_protocol() {
        let h1 = args(Protocol::Http1).argv("https://x/", 5);
        assert_eq!(
            h1.join(" "),
            "taskset -c 1 h2load -t1 -c64 -m10 -D5 --h1 https://x/"
        );
        let h2 = args(Protocol::Http2).command("https://x/");
        assert_eq!(h2, "taskset -c 1 h2load -t1 -c64 -m10 -D2 https://x/");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("no servers available").is_err());
    }
}
