//! Per-run results, percentiles and medians, and the Markdown tables.

use std::time::Duration;

use fleetcache_benches::markdown::{self, value as fmt};
use fleetcache_benches::stampede::Timing;
use fleetcache_benches::{median, percentile};

use crate::cluster::Side;

/// One run: every client of one side at once for a fresh URL.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) round: u32,
    pub(crate) side: Side,
    /// Per client (same order as `timings`): the node it asked.
    pub(crate) node_of: Vec<usize>,
    pub(crate) nodes: usize,
    pub(crate) timings: Vec<Timing>,
    /// Requests for this run's URL in the origin's access log.
    pub(crate) origin_fetches: usize,
    /// Per node: a HEAD after the run was a hit.
    pub(crate) stored: Vec<bool>,
    /// The nodes' CPU time over the run (all of them), seconds.
    pub(crate) cpu_secs: f64,
    /// The clients' CPU time over the run (this process), seconds.
    pub(crate) client_cpu_secs: f64,
    /// The origin's CPU time over the run, seconds.
    pub(crate) origin_cpu_secs: f64,
    /// How long the nodes' core was busy with anything, seconds.
    pub(crate) server_core_secs: f64,
    /// How long the clients' (and origin's) core was busy with anything,
    /// seconds.
    pub(crate) client_core_secs: f64,
}

impl Run {
    /// Percentile `p` of one of the timings over every client, seconds.
    pub(crate) fn secs(&self, p: f64, of: fn(&Timing) -> Duration) -> Option<f64> {
        let values: Vec<f64> = self.timings.iter().map(|t| of(t).as_secs_f64()).collect();
        percentile(&values, p)
    }

    /// Percentile `p` of one of the timings over the clients of `node`.
    pub(crate) fn node_secs(
        &self,
        node: usize,
        p: f64,
        of: fn(&Timing) -> Duration,
    ) -> Option<f64> {
        let values: Vec<f64> = self
            .timings
            .iter()
            .zip(&self.node_of)
            .filter(|&(_, &n)| n == node)
            .map(|(t, _)| of(t).as_secs_f64())
            .collect();
        percentile(&values, p)
    }

    /// How many nodes stored the object.
    pub(crate) fn stored_on(&self) -> usize {
        self.stored.iter().filter(|&&s| s).count()
    }

    /// The longest client's wall time, seconds: the run's duration.
    pub(crate) fn wall_secs(&self) -> f64 {
        self.secs(100.0, last_byte).unwrap_or(f64::NAN)
    }

    /// The nodes' CPU over the run's wall time, percent of one core.
    pub(crate) fn server_percent(&self) -> f64 {
        100.0 * self.cpu_secs / self.wall_secs()
    }

    /// The clients' CPU over the run's wall time, percent of one core.
    pub(crate) fn client_percent(&self) -> f64 {
        100.0 * self.client_cpu_secs / self.wall_secs()
    }

    /// The nodes' core busy with anything, percent of the run.
    pub(crate) fn server_core_percent(&self) -> f64 {
        100.0 * self.server_core_secs / self.wall_secs()
    }

    /// The clients' core busy with anything, percent of the run.
    pub(crate) fn client_core_percent(&self) -> f64 {
        100.0 * self.client_core_secs / self.wall_secs()
    }

    /// The nodes' core busy with something other than the nodes' own
    /// processes (interrupts, softirq, other processes), percent.
    pub(crate) fn server_other_percent(&self) -> f64 {
        100.0 * (self.server_core_secs - self.cpu_secs).max(0.0) / self.wall_secs()
    }

    /// The clients' core busy with something other than the clients and
    /// the origin, percent.
    pub(crate) fn client_other_percent(&self) -> f64 {
        let ours = self.client_cpu_secs + self.origin_cpu_secs;
        100.0 * (self.client_core_secs - ours).max(0.0) / self.wall_secs()
    }

    pub(crate) fn summary(&self) -> String {
        let ms = |p, of| fmt(self.secs(p, of).map(|s| s * 1e3), 0);
        format!(
            "{:>10}: first byte p50 {} ms p99 {} ms  last byte p50 {} ms p99 {} ms  origin fetches {}  stored on {}/{}  nodes CPU {:.2} s ({:.0}%, core busy {:.0}%), clients {:.0}% (core busy {:.0}%)",
            self.side.name(),
            ms(50.0, first_byte),
            ms(99.0, first_byte),
            ms(50.0, last_byte),
            ms(99.0, last_byte),
            self.origin_fetches,
            self.stored_on(),
            self.nodes,
            self.cpu_secs,
            self.server_percent(),
            self.server_core_percent(),
            self.client_percent(),
            self.client_core_percent(),
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

/// A table row: one metric, the median across rounds per side.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) metric: &'static str,
    /// Medians in [`Side::ALL`] order.
    pub(crate) medians: [Option<f64>; 2],
    pub(crate) decimals: usize,
}

impl Row {
    /// The medians across rounds of `value` per side.
    pub(crate) fn new(
        metric: &'static str,
        runs: &[Run],
        value: impl Fn(&Run) -> Option<f64>,
        decimals: usize,
    ) -> Self {
        let medians = Side::ALL.map(|side| {
            let values: Vec<f64> = runs
                .iter()
                .filter(|r| r.side == side)
                .filter_map(&value)
                .collect();
            median(&values)
        });
        Self {
            metric,
            medians,
            decimals,
        }
    }

    /// fleetcache / nginx.
    pub(crate) fn ratio(&self) -> Option<f64> {
        match self.medians {
            [Some(f), Some(n)] if n > 0.0 => Some(f / n),
            _ => None,
        }
    }
}

/// The Markdown table of medians and ratios.
pub(crate) fn markdown_table(rows: &[Row], rounds: u32, nodes: u32) -> String {
    let plural = if rounds == 1 { "" } else { "s" };
    let metric = format!("metric (median of {rounds} round{plural})");
    let fleetcache = format!("fleetcache, {nodes} nodes (fleet)");
    let nginx = format!("nginx, {nodes} nodes");
    let header = [
        metric.as_str(),
        fleetcache.as_str(),
        nginx.as_str(),
        "fleetcache / nginx",
    ];
    markdown::table(&header, "lrrr", rows, |row| {
        let mut cells = vec![row.metric.to_owned()];
        cells.extend(row.medians.map(|m| fmt(m, row.decimals)));
        cells.push(
            row.ratio()
                .map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×")),
        );
        cells
    })
}

/// Every run.
pub(crate) fn runs_table(runs: &[Run]) -> String {
    let header = [
        "round",
        "side",
        "head p50 ms",
        "first byte min / p50 / p99 / max ms",
        "first byte p50 by node ms",
        "last byte min / p50 / p99 / max ms",
        "origin fetches",
        "stored on",
        "nodes CPU s",
        "nodes CPU %",
        "nodes' core busy %",
        "clients CPU %",
        "origin CPU %",
        "clients' core busy %",
    ];
    markdown::table(&header, "rlrrrrrrrrrrr", runs, |r| {
        let ms = |p, of| fmt(r.secs(p, of).map(|s| s * 1e3), 0);
        let spread =
            |of: fn(&Timing) -> Duration| [0.0, 50.0, 99.0, 100.0].map(|p| ms(p, of)).join(" / ");
        let by_node: Vec<String> = (0..r.nodes)
            .map(|node| fmt(r.node_secs(node, 50.0, first_byte).map(|s| s * 1e3), 0))
            .collect();
        vec![
            (r.round + 1).to_string(),
            r.side.name().to_owned(),
            ms(50.0, head),
            spread(first_byte),
            by_node.join(" / "),
            spread(last_byte),
            r.origin_fetches.to_string(),
            format!("{}/{}", r.stored_on(), r.nodes),
            format!("{:.2}", r.cpu_secs),
            format!("{:.0}", r.server_percent()),
            format!("{:.0}", r.server_core_percent()),
            format!("{:.0}", r.client_percent()),
            format!("{:.0}", 100.0 * r.origin_cpu_secs / r.wall_secs()),
            format!("{:.0}", r.client_core_percent()),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(side: Side, origin_fetches: usize, first_ms: &[u64]) -> Run {
        let timings: Vec<Timing> = first_ms
            .iter()
            .map(|&ms| Timing {
                head: Duration::from_millis(ms),
                first_byte: Duration::from_millis(ms),
                last_byte: Duration::from_millis(ms + 1000),
            })
            .collect();
        Run {
            round: 0,
            side,
            node_of: (0..timings.len()).map(|i| i % 2).collect(),
            nodes: 2,
            timings,
            origin_fetches,
            stored: vec![true, false],
            cpu_secs: 0.5,
            client_cpu_secs: 0.25,
            origin_cpu_secs: 0.05,
            server_core_secs: 0.8,
            client_core_secs: 0.2,
        }
    }

    #[test]
    fn percentiles_overall_and_by_node() {
        let r = run(Side::Fleetcache, 1, &[10, 100, 20, 200]);
        assert_eq!(r.secs(50.0, first_byte), Some(0.02));
        assert_eq!(r.secs(100.0, first_byte), Some(0.2));
        assert_eq!(r.node_secs(0, 100.0, first_byte), Some(0.02));
        assert_eq!(r.node_secs(1, 0.0, first_byte), Some(0.1));
        assert_eq!(r.stored_on(), 1);
        assert!((r.wall_secs() - 1.2).abs() < 1e-9);
        assert!((r.server_other_percent() - 25.0).abs() < 1e-9);
        // Busy less than what the processes say (tick rounding): none other.
        assert_eq!(r.client_other_percent(), 0.0);
    }

    #[test]
    fn rows_take_medians_per_side_and_the_ratio() {
        let runs = [
            run(Side::Fleetcache, 1, &[10]),
            run(Side::Nginx, 3, &[10]),
            run(Side::Fleetcache, 3, &[10]),
            run(Side::Nginx, 3, &[10]),
            run(Side::Fleetcache, 1, &[10]),
            run(Side::Nginx, 3, &[10]),
        ];
        let row = Row::new(
            "origin fetches per object",
            &runs,
            |r| Some(r.origin_fetches as f64),
            0,
        );
        assert_eq!(row.medians, [Some(1.0), Some(3.0)]);
        assert_eq!(row.ratio(), Some(1.0 / 3.0));
        let table = markdown_table(&[row], 3, 2);
        assert!(
            table.starts_with(
                "| metric (median of 3 rounds) | fleetcache, 2 nodes (fleet) | nginx, 2 nodes | fleetcache / nginx |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| origin fetches per object | 1 | 3 | 0.33× |"),
            "{table}"
        );
        let every = runs_table(&runs[..1]);
        assert!(
            every.contains("| 1 | fleetcache | 10 | 10 / 10 / 10 / 10 | 10 / – |"),
            "{every}"
        );
    }
}
