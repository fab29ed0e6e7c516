//! The report of a fleetcache-vs-nginx (and Varnish) comparison: each
//! run's costs, medians and ratios of fleetcache to each other server
//! against optional targets as a Markdown table, every run, and what
//! limited each server.

use super::Which;
use crate::load::{LoadGenerator, LoadReport};
use crate::markdown::{self, value as fmt_value};
use crate::median;
use crate::meter::Sample;

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

/// One timed run against one server.
#[derive(Debug, Clone)]
pub struct Run {
    pub round: u32,
    pub server: Which,
    pub sample: Sample,
}

impl Run {
    pub fn load(&self) -> &LoadReport {
        &self.sample.load
    }

    fn percent_of_run(&self, secs: f64) -> f64 {
        100.0 * secs / self.load().duration_secs.max(f64::MIN_POSITIVE)
    }

    /// `None` when no request completed (256 MiB in a short run).
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        let requests = self.load().requests;
        (requests > 0).then(|| self.sample.cpu_secs * 1e6 / requests as f64)
    }

    pub fn cpu_ms_per_gib(&self) -> f64 {
        self.sample.cpu_secs * 1e3 / (self.load().bytes_read / GIB).max(f64::MIN_POSITIVE)
    }

    /// Server CPU time over wall time, percent of one core.
    pub fn cpu_busy_percent(&self) -> f64 {
        self.percent_of_run(self.sample.cpu_secs)
    }

    /// The load generator's CPU time over wall time, percent of one core:
    /// near 100 means the client, not the server, set the pace.
    pub fn client_busy_percent(&self) -> f64 {
        self.percent_of_run(self.sample.client_cpu_secs)
    }

    /// The server's core busy with anything, percent.
    pub fn server_core_busy_percent(&self) -> f64 {
        self.percent_of_run(self.sample.server_core_busy_secs)
    }

    /// The server's core in irq/softirq, percent.
    pub fn server_core_irq_percent(&self) -> f64 {
        self.percent_of_run(self.sample.server_core_irq_secs)
    }

    /// The server's core busy with anything but the server, percent: other
    /// processes, and interrupt time the kernel did not charge to the server
    /// (without IRQ time accounting, ticks in softirq are charged to
    /// whichever task was running, so irq time overlaps the server's).
    pub fn server_core_others_percent(&self) -> f64 {
        (self.server_core_busy_percent() - self.cpu_busy_percent()).max(0.0)
    }

    pub fn mib_per_sec(&self) -> f64 {
        self.load().transfer_per_sec / MIB
    }

    /// Megabytes (10⁶ bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.load().transfer_per_sec / 1e6
    }

    /// Peak RSS, MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.sample.peak_rss as f64 / MIB
    }

    /// One line for the progress log.
    pub fn summary(&self) -> String {
        let load = self.load();
        format!(
            "{:>10}: {:>10.1} req/s {:>9.1} MiB/s  cpu {:>6.2}s ({:>3.0}% of a core, irq {:>3.0}%, not server {:>3.0}%, client {:>3.0}%) \
             {:>7} µs/req {:>8.1} ms/GiB  peak RSS {:>6.1} MiB  mean {}  p50 {}  p99 {}  errors {}",
            self.server.name(),
            load.requests_per_sec,
            self.mib_per_sec(),
            self.sample.cpu_secs,
            self.cpu_busy_percent(),
            self.server_core_irq_percent(),
            self.server_core_others_percent(),
            self.client_busy_percent(),
            fmt_value(self.cpu_us_per_request(), 2),
            self.cpu_ms_per_gib(),
            self.peak_rss_mib(),
            fmt_latency(load.latency_mean_us),
            fmt_latency(load.latency_at(50.0)),
            fmt_latency(load.latency_at(99.0)),
            load.socket_errors,
        )
    }
}

/// What a row is judged against.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// fleetcache / that server must be at most this.
    RatioAtMost(Which, f64),
    /// fleetcache / that server must be at least this.
    RatioAtLeast(Which, f64),
    /// fleetcache's own value must be below this.
    FleetcacheBelow(f64, &'static str),
}

impl Target {
    fn describe(self) -> String {
        match self {
            Target::RatioAtMost(which, r) => format!("≤ {r:.2}× {}", which.name()),
            Target::RatioAtLeast(which, r) => format!("≥ {r:.2}× {}", which.name()),
            Target::FleetcacheBelow(_, text) => format!("fleetcache < {text}"),
        }
    }

    /// The server fleetcache's ratio to decides it, if any.
    fn against(self) -> Option<Which> {
        match self {
            Target::RatioAtMost(which, _) | Target::RatioAtLeast(which, _) => Some(which),
            Target::FleetcacheBelow(..) => None,
        }
    }

    /// Whether fleetcache's value, and its ratio to [`Target::against`]
    /// (NaN when unknown), meet the target.
    fn met(self, fleetcache: f64, ratio: f64) -> bool {
        match self {
            Target::RatioAtMost(_, r) => ratio <= r,
            Target::RatioAtLeast(_, r) => ratio >= r,
            Target::FleetcacheBelow(limit, _) => fleetcache < limit,
        }
    }
}

/// How a table row reads one value from a run.
pub type Metric = fn(&Run) -> Option<f64>;

/// One table row: a metric of one scenario, medians per server.
#[derive(Debug)]
pub struct Row {
    pub scenario: String,
    pub metric: &'static str,
    /// The median of each server that ran the scenario (`None`: no run
    /// gave a value), in [`Which::ALL`] order.
    pub medians: Vec<(Which, Option<f64>)>,
    pub decimals: usize,
    pub target: Option<Target>,
    /// For a row nginx cannot have: what stands in its cells.
    pub instead: Option<Instead>,
}

/// What a row nginx cannot have (HTTP/3 without QUIC) shows in nginx's
/// cells: why, and fleetcache's ratio to a figure of its own from the same
/// run instead of to nginx's.
#[derive(Debug, Clone)]
pub struct Instead {
    /// The nginx cell, e.g. `no QUIC in this nginx`.
    pub nginx: &'static str,
    /// What the ratio compares with, e.g. `fleetcache h2`.
    pub against: String,
    /// Its median.
    pub value: Option<f64>,
}

impl Row {
    /// The row for `metric` over `runs`, medians per server.
    pub fn new(
        scenario: impl Into<String>,
        metric: &'static str,
        runs: &[Run],
        value: impl Fn(&Run) -> Option<f64>,
        decimals: usize,
        target: Option<Target>,
    ) -> Self {
        let medians = Which::ALL
            .into_iter()
            .filter(|&which| runs.iter().any(|r| r.server == which))
            .map(|which| {
                let values: Vec<f64> = runs
                    .iter()
                    .filter(|r| r.server == which)
                    .filter_map(&value)
                    .collect();
                (which, median(&values))
            })
            .collect();
        Self {
            scenario: scenario.into(),
            metric,
            medians,
            decimals,
            target,
            instead: None,
        }
    }

    /// This row with `instead` in nginx's cells.
    pub fn instead(self, instead: Instead) -> Self {
        Self {
            instead: Some(instead),
            ..self
        }
    }

    /// The median of `which` (`None`: it did not run, or gave no value).
    pub fn median(&self, which: Which) -> Option<f64> {
        self.medians
            .iter()
            .find(|(w, _)| *w == which)
            .and_then(|(_, value)| *value)
    }

    /// fleetcache's median.
    pub fn fleetcache(&self) -> Option<f64> {
        self.median(Which::Fleetcache)
    }

    /// fleetcache / `other`.
    fn ratio(&self, other: Which) -> Option<f64> {
        match (self.fleetcache(), self.median(other)) {
            (Some(f), Some(o)) if o > 0.0 => Some(f / o),
            _ => None,
        }
    }

    /// Whether the row meets its target (`None`: no target or no data).
    pub fn verdict(&self) -> Option<bool> {
        let target = self.target?;
        let fleetcache = self.fleetcache()?;
        let ratio = target
            .against()
            .and_then(|other| self.ratio(other))
            .unwrap_or(f64::NAN);
        Some(target.met(fleetcache, ratio))
    }
}

/// "Targets missed: …." or "All targets met.", if any row has a target.
pub fn verdict_line(rows: &[Row]) -> Option<String> {
    if rows.iter().all(|r| r.target.is_none()) {
        return None;
    }
    let missed: Vec<String> = rows
        .iter()
        .filter(|r| r.verdict() == Some(false))
        .map(|r| format!("{}: {}", r.scenario, r.metric))
        .collect();
    Some(if missed.is_empty() {
        "All targets met.".to_owned()
    } else {
        format!("Targets missed: {}.", missed.join("; "))
    })
}

fn fmt_latency(us: Option<f64>) -> String {
    match us {
        None => "–".to_owned(),
        Some(us) if us >= 1e6 => format!("{:.2}s", us / 1e6),
        Some(us) if us >= 1e3 => format!("{:.2}ms", us / 1e3),
        Some(us) => format!("{us:.0}µs"),
    }
}

/// The Markdown table of medians and ratios: a column per server that ran
/// in any row (nginx's also when a row puts something [`Instead`] of it), a
/// ratio column per server other than fleetcache, and the target column
/// only when some row has a target.
pub fn markdown_table(rows: &[Row]) -> String {
    let with_targets = rows.iter().any(|r| r.target.is_some());
    let servers: Vec<Which> = Which::ALL
        .into_iter()
        .filter(|&which| {
            rows.iter().any(|row| {
                row.medians.iter().any(|(w, _)| *w == which)
                    || (which == Which::Nginx && row.instead.is_some())
            })
        })
        .collect();
    let others: Vec<Which> = servers
        .iter()
        .copied()
        .filter(|&which| which != Which::Fleetcache)
        .collect();
    let ratio_headers: Vec<String> = others
        .iter()
        .map(|other| format!("fleetcache / {}", other.name()))
        .collect();
    let mut header = vec!["scenario", "metric (median)"];
    header.extend(servers.iter().map(|which| which.name()));
    header.extend(ratio_headers.iter().map(String::as_str));
    let mut align = "ll".to_owned() + &"r".repeat(servers.len() + others.len());
    if with_targets {
        header.push("target");
        align.push('l');
    }
    markdown::table(&header, &align, rows, |row| {
        let mut cells = vec![row.scenario.clone(), row.metric.to_owned()];
        let mut ratios = Vec::new();
        for &which in &servers {
            match (&row.instead, which) {
                (Some(instead), Which::Nginx) => {
                    cells.push(instead.nginx.to_owned());
                    ratios.push(match (row.fleetcache(), instead.value) {
                        (Some(f), Some(v)) if v > 0.0 => {
                            format!("{:.2}× {}", f / v, instead.against)
                        }
                        _ => format!("– ({} unknown)", instead.against),
                    });
                }
                _ => {
                    cells.push(fmt_value(row.median(which), row.decimals));
                    if which != Which::Fleetcache {
                        ratios.push(
                            row.ratio(which)
                                .map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×")),
                        );
                    }
                }
            }
        }
        cells.extend(ratios);
        if with_targets {
            cells.push(match (row.target, row.verdict()) {
                (Some(t), Some(true)) => format!("{} ✅", t.describe()),
                (Some(t), Some(false)) => format!("{} ❌", t.describe()),
                (Some(t), None) => t.describe(),
                (None, _) => String::new(),
            });
        }
        cells
    })
}

/// Every run, for judging the noise behind the medians; `client` names
/// the load generator.
fn raw_table(scenario: &str, runs: &[Run], client: &str) -> String {
    let client_column = format!("{client} CPU %");
    let header = [
        "round",
        "server",
        "req/s",
        "MiB/s",
        "server CPU s",
        "server CPU %",
        "core irq %",
        "core not server %",
        client_column.as_str(),
        "µs/req",
        "ms/GiB",
        "peak RSS MiB",
        "mean",
        "p50",
        "p99",
        "socket errors",
    ];
    format!(
        "{scenario}, every run:\n\n{}",
        markdown::table(&header, "rlrrrrrrrrrrrrrr", runs, |r| {
            let load = r.load();
            vec![
                (r.round + 1).to_string(),
                r.server.name().to_owned(),
                format!("{:.1}", load.requests_per_sec),
                format!("{:.1}", r.mib_per_sec()),
                format!("{:.2}", r.sample.cpu_secs),
                format!("{:.0}", r.cpu_busy_percent()),
                format!("{:.0}", r.server_core_irq_percent()),
                format!("{:.0}", r.server_core_others_percent()),
                format!("{:.0}", r.client_busy_percent()),
                fmt_value(r.cpu_us_per_request(), 2),
                format!("{:.1}", r.cpu_ms_per_gib()),
                format!("{:.1}", r.peak_rss_mib()),
                fmt_latency(load.latency_mean_us),
                fmt_latency(load.latency_at(50.0)),
                fmt_latency(load.latency_at(99.0)),
                load.socket_errors.to_string(),
            ]
        })
    )
}

/// A scenario's runs and the load generator that drove them, for the
/// closing sections of a report.
#[derive(Debug, Clone, Copy)]
pub struct Measured<'a> {
    pub label: &'a str,
    pub generator: &'a dyn LoadGenerator,
    pub runs: &'a [Run],
}

/// The end of a report, after the table: what limited each server where
/// not both were CPU-bound, the command that reproduces the run, and every
/// run (in a `<details>`); "ran as" goes to stderr.
pub fn print_closing(measured: &[Measured<'_>], reproduce: &str) {
    for m in measured {
        if let Some(note) = bottleneck_note(m.label, m.runs, m.generator.program()) {
            println!("\n{note}");
        }
    }
    println!("\nReproduce:\n\n```sh\n{reproduce}\n```\n");
    println!("<details><summary>Every run</summary>\n");
    for m in measured {
        let command = m.generator.command("URL");
        let label = format!("{} (`{command}`)", m.label);
        println!("{}", raw_table(&label, m.runs, m.generator.program()));
    }
    println!("</details>");
    let ran_as: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    eprintln!("\nran as: {}", ran_as.join(" "));
}

/// Below this share of a core, a process was not what set the pace.
const SATURATED_PERCENT: f64 = 85.0;

/// Says what limited each server's runs when not all were CPU-bound: the
/// rate ratios compare the servers only when the servers set the rate.
/// `client` names the load generator.
fn bottleneck_note(scenario: &str, runs: &[Run], client: &str) -> Option<String> {
    let med = |which: Which, f: fn(&Run) -> f64| {
        let values: Vec<f64> = runs.iter().filter(|r| r.server == which).map(f).collect();
        median(&values).unwrap_or(f64::NAN)
    };
    let verdict = |which: Which| -> (bool, String) {
        let name = which.name();
        let server = med(which, Run::cpu_busy_percent);
        let busy = med(which, Run::client_busy_percent);
        let others = med(which, Run::server_core_others_percent);
        if server >= SATURATED_PERCENT {
            (
                true,
                format!("{name} was CPU-bound ({server:.0}% of its core)"),
            )
        } else if busy >= SATURATED_PERCENT {
            (
                false,
                format!(
                    "{name} was client-bound ({client} at {busy:.0}% of its core, {name} at \
                     {server:.0}%)"
                ),
            )
        } else if others >= 100.0 - SATURATED_PERCENT {
            (
                false,
                format!(
                    "{name} shared its core with other work ({others:.0}% of it; {name} \
                     {server:.0}%, {client} {busy:.0}%)"
                ),
            )
        } else {
            (
                false,
                format!(
                    "{name} was neither CPU- nor client-bound ({name} {server:.0}%, {client} \
                     {busy:.0}%): latency, scheduling or steal set the rate"
                ),
            )
        }
    };
    let verdicts: Vec<(bool, String)> = Which::ALL
        .into_iter()
        .filter(|&which| runs.iter().any(|r| r.server == which))
        .map(verdict)
        .collect();
    if verdicts.iter().all(|(bound, _)| *bound) {
        return None;
    }
    let said: Vec<&str> = verdicts.iter().map(|(_, text)| text.as_str()).collect();
    let tail = if verdicts.len() > 1 {
        "Rate ratios (req/s, MiB/s) compare two servers only when both are CPU-bound; CPU per \
         request / per GiB compares like with like either way."
    } else {
        "Its rates (req/s, MiB/s) are then a floor, not what the server can do; CPU per \
         request / per GiB is its cost either way."
    };
    Some(format!("Note ({scenario}): {}. {tail}", said.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let nginx = Which::Nginx;
        assert!(Target::RatioAtMost(nginx, 1.25).met(0.0, 1.2));
        assert!(!Target::RatioAtMost(nginx, 1.25).met(0.0, 1.3));
        assert!(Target::RatioAtLeast(nginx, 0.8).met(0.0, 0.9));
        assert!(!Target::RatioAtLeast(nginx, 0.8).met(0.0, f64::NAN));
        assert!(Target::FleetcacheBelow(64.0, "64 MiB").met(10.0, 9.0));
        assert_eq!(Target::RatioAtMost(nginx, 0.8).describe(), "≤ 0.80× nginx");
        assert_eq!(
            Target::RatioAtLeast(Which::Varnish, 1.0).describe(),
            "≥ 1.00× varnish"
        );
    }

    fn run(server: Which, rps: f64, cpu_secs: f64) -> Run {
        Run {
            round: 0,
            server,
            sample: Sample {
                load: LoadReport {
                    requests: (rps * 5.0) as u64,
                    duration_secs: 5.0,
                    requests_per_sec: rps,
                    ..LoadReport::default()
                },
                cpu_secs,
                server_core_busy_secs: cpu_secs,
                server_core_irq_secs: 0.0,
                client_cpu_secs: 1.0,
                peak_rss: 0,
            },
        }
    }

    #[test]
    fn rows_take_medians_and_ratios() {
        let runs = [
            run(Which::Fleetcache, 100.0, 5.0),
            run(Which::Nginx, 200.0, 5.0),
            run(Which::Fleetcache, 300.0, 5.0),
            run(Which::Nginx, 200.0, 5.0),
        ];
        let rps: Metric = |r| Some(r.load().requests_per_sec);
        let row = Row::new("s", "requests/s", &runs, rps, 0, None);
        assert_eq!(row.fleetcache(), Some(200.0));
        assert_eq!(row.ratio(Which::Nginx), Some(1.0));
        assert_eq!(row.median(Which::Varnish), None);
        let table = markdown_table(&[row]);
        assert!(
            table.starts_with(
                "| scenario | metric (median) | fleetcache | nginx | fleetcache / nginx |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("| s | requests/s | 200 | 200 | 1.00× |"),
            "{table}"
        );
        assert!(!table.contains("target"));
        assert!(verdict_line(&[Row::new("s", "m", &runs, rps, 0, None)]).is_none());
        let h3 = Row::new("h3", "requests/s", &runs[..1], rps, 0, None).instead(Instead {
            nginx: "no QUIC in this nginx",
            against: "fleetcache h2".to_owned(),
            value: Some(400.0),
        });
        let table = markdown_table(&[h3]);
        assert!(
            table.contains(
                "| h3 | requests/s | 100 | no QUIC in this nginx | 0.25× fleetcache h2 |"
            ),
            "{table}"
        );
        // Both servers at 100% of their core: nothing limited them but themselves.
        assert!(bottleneck_note("s", &runs, "h2load").is_none());
    }

    #[test]
    fn three_servers_get_a_ratio_each_and_targets_name_theirs() {
        let runs = [
            run(Which::Fleetcache, 100.0, 5.0),
            run(Which::Nginx, 200.0, 5.0),
            run(Which::Varnish, 50.0, 5.0),
        ];
        let rps: Metric = |r| Some(r.load().requests_per_sec);
        let rows = [
            Row::new(
                "s",
                "requests/s",
                &runs,
                rps,
                0,
                Some(Target::RatioAtLeast(Which::Varnish, 1.0)),
            ),
            Row::new(
                "s",
                "again",
                &runs,
                rps,
                0,
                Some(Target::RatioAtLeast(Which::Nginx, 1.0)),
            ),
        ];
        let table = markdown_table(&rows);
        assert!(
            table.starts_with(
                "| scenario | metric (median) | fleetcache | nginx | varnish | fleetcache / nginx \
                 | fleetcache / varnish | target |\n| --- | --- | ---: | ---: | ---: | ---: | ---: \
                 | --- |\n"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| s | requests/s | 100 | 200 | 50 | 0.50× | 2.00× | ≥ 1.00× varnish ✅ |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| s | again | 100 | 200 | 50 | 0.50× | 2.00× | ≥ 1.00× nginx ❌ |"),
            "{table}"
        );
        assert_eq!(
            verdict_line(&rows).as_deref(),
            Some("Targets missed: s: again.")
        );
        let mut slow = runs.clone();
        slow[2].sample.cpu_secs = 2.5;
        slow[2].sample.client_cpu_secs = 4.5;
        let note = bottleneck_note("s", &slow, "wrk").unwrap_or_default();
        assert!(
            note.contains("varnish was client-bound (wrk at 90% of its core, varnish at 50%)"),
            "{note}"
        );
        assert!(note.contains("fleetcache was CPU-bound"), "{note}");
        assert!(note.contains("nginx was CPU-bound"), "{note}");
    }

    #[test]
    fn a_one_server_scenario_notes_its_client() {
        let mut bound = run(Which::Fleetcache, 100.0, 2.5);
        bound.sample.client_cpu_secs = 4.9;
        let note = bottleneck_note("h3", &[bound.clone(), bound], "h3load");
        let note = note.unwrap_or_default();
        assert!(
            note.contains("fleetcache was client-bound (h3load at 98% of its core"),
            "{note}"
        );
        assert!(!note.contains("nginx"), "{note}");
        assert!(note.contains("a floor"), "{note}");
        let alone = [run(Which::Fleetcache, 100.0, 5.0)];
        assert!(bottleneck_note("h3", &alone, "h3load").is_none());
    }
}
