//! Per-run results, percentiles and medians, and the Markdown tables.

use std::time::Duration;

use fleetcache_benches::markdown::{self, value as fmt};
use fleetcache_benches::meter::Sample;
use fleetcache_benches::stampede::Timing;
use fleetcache_benches::{median, percentile};

use crate::caches::Cache;

/// One wrk run of hot hits against one cache.
#[derive(Debug, Clone)]
pub(crate) struct HotRun {
    pub(crate) round: u32,
    pub(crate) cache: Cache,
    pub(crate) sample: Sample,
}

impl HotRun {
    pub(crate) fn cpu_us_per_request(&self) -> Option<f64> {
        let requests = self.sample.load.requests;
        (requests > 0).then(|| self.sample.cpu_secs * 1e6 / requests as f64)
    }

    fn percent_of(&self, secs: f64) -> f64 {
        100.0 * secs / self.sample.load.duration_secs.max(f64::MIN_POSITIVE)
    }

    /// The cache's CPU time over wall time, percent of one core.
    pub(crate) fn server_percent(&self) -> f64 {
        self.percent_of(self.sample.cpu_secs)
    }

    /// wrk's CPU time over wall time: near 100 means wrk set the pace.
    pub(crate) fn client_percent(&self) -> f64 {
        self.percent_of(self.sample.client_cpu_secs)
    }

    /// The server core busy with anything, percent.
    pub(crate) fn core_percent(&self) -> f64 {
        self.percent_of(self.sample.server_core_busy_secs)
    }

    /// A latency percentile in milliseconds.
    pub(crate) fn latency_ms(&self, percent: f64) -> Option<f64> {
        self.sample.load.latency_at(percent).map(|us| us / 1e3)
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "{:>10}: {:>9.0} req/s  {:>6} µs CPU/req  server {:>3.0}% (core {:>3.0}%)  wrk {:>3.0}%  p50 {} ms  p99 {} ms  socket errors {}",
            self.cache.name(),
            self.sample.load.requests_per_sec,
            fmt(self.cpu_us_per_request(), 2),
            self.server_percent(),
            self.core_percent(),
            self.client_percent(),
            fmt(self.latency_ms(50.0), 2),
            fmt(self.latency_ms(99.0), 2),
            self.sample.load.socket_errors,
        )
    }
}

/// One cold run: N clients at once for a fresh URL.
#[derive(Debug, Clone)]
pub(crate) struct ColdRun {
    pub(crate) round: u32,
    pub(crate) cache: Cache,
    pub(crate) timings: Vec<Timing>,
    /// Requests for this run's URL in the origin's access log.
    pub(crate) origin_requests: usize,
    /// A HEAD after the run was a hit: the object was stored.
    pub(crate) stored: bool,
    /// The cache's CPU time over the run, seconds.
    pub(crate) cpu_secs: f64,
    /// The clients' CPU time over the run (this process), seconds.
    pub(crate) client_cpu_secs: f64,
}

impl ColdRun {
    /// Percentile `p` of one of the timings, in seconds.
    pub(crate) fn secs(&self, p: f64, of: fn(&Timing) -> Duration) -> Option<f64> {
        let values: Vec<f64> = self.timings.iter().map(|t| of(t).as_secs_f64()).collect();
        percentile(&values, p)
    }

    /// The longest client's wall time, seconds: the run's duration.
    pub(crate) fn wall_secs(&self) -> f64 {
        self.secs(100.0, last_byte).unwrap_or(f64::NAN)
    }

    /// The cache's CPU over the run's wall time, percent of one core.
    pub(crate) fn server_percent(&self) -> f64 {
        100.0 * self.cpu_secs / self.wall_secs()
    }

    /// The clients' CPU over the run's wall time, percent of one core.
    pub(crate) fn client_percent(&self) -> f64 {
        100.0 * self.client_cpu_secs / self.wall_secs()
    }

    pub(crate) fn summary(&self) -> String {
        let ms = |p, of| fmt(self.secs(p, of).map(|s| s * 1e3), 0);
        format!(
            "{:>10}: first byte p50 {} ms p99 {} ms  last byte p50 {} ms p99 {} ms  origin requests {}  stored {}  CPU {:.2} s ({:.0}%), clients {:.0}%",
            self.cache.name(),
            ms(50.0, first_byte),
            ms(99.0, first_byte),
            ms(50.0, last_byte),
            ms(99.0, last_byte),
            self.origin_requests,
            if self.stored { "yes" } else { "no" },
            self.cpu_secs,
            self.server_percent(),
            self.client_percent(),
        )
    }
}

pub(crate) fn first_byte(t: &Timing) -> Duration {
    t.first_byte
}

pub(crate) fn last_byte(t: &Timing) -> Duration {
    t.last_byte
}

pub(crate) fn head(t: &Timing) -> Duration {
    t.head
}

/// A table row: one metric, the median per cache.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) measure: &'static str,
    pub(crate) metric: String,
    /// Medians in [`Cache::ALL`] order.
    pub(crate) medians: [Option<f64>; 3],
    pub(crate) decimals: usize,
}

impl Row {
    /// The medians across rounds of `value` per cache.
    pub(crate) fn new<R>(
        measure: &'static str,
        metric: impl Into<String>,
        runs: &[R],
        cache_of: fn(&R) -> Cache,
        value: impl Fn(&R) -> Option<f64>,
        decimals: usize,
    ) -> Self {
        let medians = Cache::ALL.map(|cache| {
            let values: Vec<f64> = runs
                .iter()
                .filter(|r| cache_of(r) == cache)
                .filter_map(&value)
                .collect();
            median(&values)
        });
        Self {
            measure,
            metric: metric.into(),
            medians,
            decimals,
        }
    }

    /// fleetcache / the cache at `index` of [`Cache::ALL`].
    pub(crate) fn ratio(&self, index: usize) -> Option<f64> {
        match (self.medians[0], self.medians.get(index).copied().flatten()) {
            (Some(f), Some(other)) if other > 0.0 => Some(f / other),
            _ => None,
        }
    }
}

/// The Markdown table of medians and ratios.
pub(crate) fn markdown_table(rows: &[Row], rounds: u32) -> String {
    let metric = format!("metric (median of {rounds})");
    let header = [
        "measure",
        metric.as_str(),
        "fleetcache",
        "nginx",
        "varnish",
        "fleetcache / nginx",
        "fleetcache / varnish",
    ];
    let ratio = |row: &Row, i| {
        row.ratio(i)
            .map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"))
    };
    markdown::table(&header, "llrrrrr", rows, |row| {
        let mut cells = vec![row.measure.to_owned(), row.metric.clone()];
        cells.extend(row.medians.map(|m| fmt(m, row.decimals)));
        cells.extend([ratio(row, 1), ratio(row, 2)]);
        cells
    })
}

/// Every hot run.
pub(crate) fn hot_runs_table(runs: &[HotRun]) -> String {
    let header = [
        "round",
        "cache",
        "req/s",
        "CPU µs/req",
        "server CPU %",
        "core busy %",
        "wrk CPU %",
        "p50 ms",
        "p99 ms",
        "socket errors",
    ];
    markdown::table(&header, "rlrrrrrrrr", runs, |r| {
        vec![
            (r.round + 1).to_string(),
            r.cache.name().to_owned(),
            format!("{:.0}", r.sample.load.requests_per_sec),
            fmt(r.cpu_us_per_request(), 2),
            format!("{:.0}", r.server_percent()),
            format!("{:.0}", r.core_percent()),
            format!("{:.0}", r.client_percent()),
            fmt(r.latency_ms(50.0), 3),
            fmt(r.latency_ms(99.0), 3),
            r.sample.load.socket_errors.to_string(),
        ]
    })
}

/// Every cold run.
pub(crate) fn cold_runs_table(runs: &[ColdRun]) -> String {
    let header = [
        "round",
        "cache",
        "head p50 ms",
        "first byte min / p50 / p99 / max ms",
        "last byte min / p50 / p99 / max ms",
        "origin requests",
        "stored",
        "server CPU s",
        "server CPU %",
        "clients CPU %",
    ];
    markdown::table(&header, "rlrrrrlrrr", runs, |r| {
        let ms = |p, of| fmt(r.secs(p, of).map(|s| s * 1e3), 0);
        let spread =
            |of: fn(&Timing) -> Duration| [0.0, 50.0, 99.0, 100.0].map(|p| ms(p, of)).join(" / ");
        vec![
            (r.round + 1).to_string(),
            r.cache.name().to_owned(),
            ms(50.0, head),
            spread(first_byte),
            spread(last_byte),
            r.origin_requests.to_string(),
            (if r.stored { "yes" } else { "no" }).to_owned(),
            format!("{:.2}", r.cpu_secs),
            format!("{:.0}", r.server_percent()),
            format!("{:.0}", r.client_percent()),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cold(cache: Cache, origin_requests: usize) -> ColdRun {
        ColdRun {
            round: 0,
            cache,
            timings: Vec::new(),
            origin_requests,
            stored: true,
            cpu_secs: 0.0,
            client_cpu_secs: 0.0,
        }
    }

    #[test]
    fn rows_take_medians_per_cache_and_ratios_to_fleetcache() {
        let runs = [
            cold(Cache::Fleetcache, 1),
            cold(Cache::Nginx, 2),
            cold(Cache::Varnish, 4),
            cold(Cache::Fleetcache, 3),
            cold(Cache::Nginx, 2),
            cold(Cache::Varnish, 4),
        ];
        let row = Row::new(
            "cold",
            "origin requests",
            &runs,
            |r| r.cache,
            |r| Some(r.origin_requests as f64),
            0,
        );
        assert_eq!(row.medians, [Some(2.0), Some(2.0), Some(4.0)]);
        assert_eq!(row.ratio(1), Some(1.0));
        assert_eq!(row.ratio(2), Some(0.5));
        let table = markdown_table(&[row], 2);
        assert!(table.contains("| cold | origin requests | 2 | 2 | 4 | 1.00× | 0.50× |"));
        assert!(table.starts_with("| measure | metric (median of 2) |"));
    }
}
