//! Per-run measurements, medians across rounds, and the Markdown report.

use fleetcache_benches::markdown::{self, value as fmt_value};
use fleetcache_benches::median;

use fleetcache_benches::wrk::WrkReport;

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

/// The two servers, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    Fleetcache,
    Nginx,
}

impl Which {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Which::Fleetcache => "fleetcache",
            Which::Nginx => "nginx",
        }
    }
}

/// One wrk run against one server.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) round: u32,
    pub(crate) server: Which,
    pub(crate) wrk: WrkReport,
    /// Server utime + stime during the run, seconds.
    pub(crate) cpu_secs: f64,
    /// Time the server's core was busy with anything (server, kernel,
    /// other processes), seconds.
    pub(crate) server_core_busy_secs: f64,
    /// Of that, irq + softirq time, seconds.
    pub(crate) server_core_irq_secs: f64,
    /// wrk's utime + stime, seconds.
    pub(crate) client_cpu_secs: f64,
    /// Peak server VmRSS sampled during the run, bytes.
    pub(crate) peak_rss: u64,
}

impl Run {
    /// `None` when no request completed (256 MiB in a short run).
    pub(crate) fn cpu_us_per_request(&self) -> Option<f64> {
        (self.wrk.requests > 0).then(|| self.cpu_secs * 1e6 / self.wrk.requests as f64)
    }

    pub(crate) fn cpu_ms_per_gib(&self) -> f64 {
        self.cpu_secs * 1e3 / (self.wrk.bytes_read / GIB).max(f64::MIN_POSITIVE)
    }

    /// Server CPU time over wall time, percent of one core.
    pub(crate) fn cpu_busy_percent(&self) -> f64 {
        100.0 * self.cpu_secs / self.wrk.duration_secs.max(f64::MIN_POSITIVE)
    }

    /// wrk's CPU time over wall time, percent of one core: near 100 means
    /// the client, not the server, set the pace.
    pub(crate) fn client_busy_percent(&self) -> f64 {
        100.0 * self.client_cpu_secs / self.wrk.duration_secs.max(f64::MIN_POSITIVE)
    }

    /// The server's core busy with anything, percent.
    pub(crate) fn server_core_busy_percent(&self) -> f64 {
        100.0 * self.server_core_busy_secs / self.wrk.duration_secs.max(f64::MIN_POSITIVE)
    }

    /// The server's core in irq/softirq, percent.
    pub(crate) fn server_core_irq_percent(&self) -> f64 {
        100.0 * self.server_core_irq_secs / self.wrk.duration_secs.max(f64::MIN_POSITIVE)
    }

    /// The server's core busy with anything but the server, percent: other
    /// processes, and interrupt time the kernel did not charge to the server
    /// (without IRQ time accounting, ticks in softirq are charged to
    /// whichever task was running, so irq time overlaps the server's).
    pub(crate) fn server_core_others_percent(&self) -> f64 {
        (self.server_core_busy_percent() - self.cpu_busy_percent()).max(0.0)
    }

    pub(crate) fn mib_per_sec(&self) -> f64 {
        self.wrk.transfer_per_sec / MIB
    }

    /// One line for the progress log.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{:>10}: {:>10.1} req/s {:>9.1} MiB/s  cpu {:>6.2}s ({:>3.0}% of a core, irq {:>3.0}%, not server {:>3.0}%, wrk {:>3.0}%) \
             {:>7} µs/req {:>8.1} ms/GiB  peak RSS {:>6.1} MiB  p50 {}  p99 {}  errors {}",
            self.server.name(),
            self.wrk.requests_per_sec,
            self.mib_per_sec(),
            self.cpu_secs,
            self.cpu_busy_percent(),
            self.server_core_irq_percent(),
            self.server_core_others_percent(),
            self.client_busy_percent(),
            fmt_value(self.cpu_us_per_request(), 2),
            self.cpu_ms_per_gib(),
            self.peak_rss as f64 / MIB,
            fmt_latency(self.wrk.latency_at(50.0)),
            fmt_latency(self.wrk.latency_at(99.0)),
            self.wrk.socket_errors,
        )
    }
}

/// What a row is judged against.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// fleetcache / nginx must be at most this.
    RatioAtMost(f64),
    /// fleetcache / nginx must be at least this.
    RatioAtLeast(f64),
    /// fleetcache's own value must be below this.
    FleetcacheBelow(f64, &'static str),
}

impl Target {
    fn describe(self) -> String {
        match self {
            Target::RatioAtMost(r) => format!("≤ {r:.2}×"),
            Target::RatioAtLeast(r) => format!("≥ {r:.2}×"),
            Target::FleetcacheBelow(_, text) => format!("fleetcache < {text}"),
        }
    }

    fn met(self, fleetcache: f64, ratio: f64) -> bool {
        match self {
            Target::RatioAtMost(r) => ratio <= r,
            Target::RatioAtLeast(r) => ratio >= r,
            Target::FleetcacheBelow(limit, _) => fleetcache < limit,
        }
    }
}

/// One table row: a metric of one scenario, medians per server.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) scenario: &'static str,
    pub(crate) metric: &'static str,
    pub(crate) fleetcache: Option<f64>,
    pub(crate) nginx: Option<f64>,
    pub(crate) decimals: usize,
    pub(crate) target: Option<Target>,
}

impl Row {
    /// The row for `metric` over `runs`, medians per server.
    pub(crate) fn new(
        scenario: &'static str,
        metric: &'static str,
        runs: &[Run],
        value: impl Fn(&Run) -> Option<f64>,
        decimals: usize,
        target: Option<Target>,
    ) -> Self {
        let med = |which: Which| {
            let values: Vec<f64> = runs
                .iter()
                .filter(|r| r.server == which)
                .filter_map(&value)
                .collect();
            median(&values)
        };
        Self {
            scenario,
            metric,
            fleetcache: med(Which::Fleetcache),
            nginx: med(Which::Nginx),
            decimals,
            target,
        }
    }

    fn ratio(&self) -> Option<f64> {
        match (self.fleetcache, self.nginx) {
            (Some(f), Some(n)) if n > 0.0 => Some(f / n),
            _ => None,
        }
    }

    /// Whether the row meets its target (`None`: no target or no data).
    pub(crate) fn verdict(&self) -> Option<bool> {
        let target = self.target?;
        let fleetcache = self.fleetcache?;
        let ratio = self.ratio().unwrap_or(f64::NAN);
        Some(target.met(fleetcache, ratio))
    }
}

fn fmt_latency(us: Option<f64>) -> String {
    match us {
        None => "–".to_owned(),
        Some(us) if us >= 1e6 => format!("{:.2}s", us / 1e6),
        Some(us) if us >= 1e3 => format!("{:.2}ms", us / 1e3),
        Some(us) => format!("{us:.0}µs"),
    }
}

/// The Markdown table of medians and ratios.
pub(crate) fn markdown_table(rows: &[Row]) -> String {
    let header = [
        "scenario",
        "metric (median)",
        "fleetcache",
        "nginx",
        "fleetcache / nginx",
        "target",
    ];
    markdown::table(&header, "llrrrl", rows, |row| {
        let ratio = row
            .ratio()
            .map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"));
        let target = match (row.target, row.verdict()) {
            (Some(t), Some(true)) => format!("{} ✅", t.describe()),
            (Some(t), Some(false)) => format!("{} ❌", t.describe()),
            (Some(t), None) => t.describe(),
            (None, _) => String::new(),
        };
        vec![
            row.scenario.to_owned(),
            row.metric.to_owned(),
            fmt_value(row.fleetcache, row.decimals),
            fmt_value(row.nginx, row.decimals),
            ratio,
            target,
        ]
    })
}

/// Every run, for judging the noise behind the medians.
pub(crate) fn raw_table(scenario: &str, runs: &[Run]) -> String {
    let header = [
        "round",
        "server",
        "req/s",
        "MiB/s",
        "server CPU s",
        "server CPU %",
        "core irq %",
        "core not server %",
        "wrk CPU %",
        "µs/req",
        "ms/GiB",
        "peak RSS MiB",
        "p50",
        "p99",
        "socket errors",
    ];
    format!(
        "{scenario}, every run:\n\n{}",
        markdown::table(&header, "rlrrrrrrrrrrrrr", runs, |r| {
            vec![
                (r.round + 1).to_string(),
                r.server.name().to_owned(),
                format!("{:.1}", r.wrk.requests_per_sec),
                format!("{:.1}", r.mib_per_sec()),
                format!("{:.2}", r.cpu_secs),
                format!("{:.0}", r.cpu_busy_percent()),
                format!("{:.0}", r.server_core_irq_percent()),
                format!("{:.0}", r.server_core_others_percent()),
                format!("{:.0}", r.client_busy_percent()),
                fmt_value(r.cpu_us_per_request(), 2),
                format!("{:.1}", r.cpu_ms_per_gib()),
                format!("{:.1}", r.peak_rss as f64 / MIB),
                fmt_latency(r.wrk.latency_at(50.0)),
                fmt_latency(r.wrk.latency_at(99.0)),
                r.wrk.socket_errors.to_string(),
            ]
        })
    )
}

/// MiB, for RSS rows.
pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert!(Target::RatioAtMost(1.25).met(0.0, 1.2));
        assert!(!Target::RatioAtMost(1.25).met(0.0, 1.3));
        assert!(Target::RatioAtLeast(0.8).met(0.0, 0.9));
        assert!(!Target::RatioAtLeast(0.8).met(0.0, f64::NAN));
        assert!(Target::FleetcacheBelow(64.0, "64 MiB").met(10.0, 9.0));
    }
}
