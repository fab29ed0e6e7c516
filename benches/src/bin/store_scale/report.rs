//! The Markdown report.

use fleetcache_benches::markdown::{self, table};
use fleetcache_benches::median;

use crate::hits::{Series, cpu_us_per_request};
use crate::lookups::LookupSeries;
use crate::objects::Built;
use crate::startup::{Subject, Timings};

/// The start-up target: a node on the large store ready in under 1 s.
const START_TARGET_MS: f64 = 1000.0;

/// Everything the report shows.
#[derive(Debug)]
pub(crate) struct Report<'a> {
    pub(crate) command: String,
    pub(crate) machine: String,
    pub(crate) method: String,
    pub(crate) load: String,
    /// Large, small.
    pub(crate) built: [Built; 2],
    pub(crate) subjects: &'a [Subject; 2],
    pub(crate) timings: &'a [Timings],
    pub(crate) lookups: &'a [LookupSeries],
    pub(crate) series: &'a [Series],
    pub(crate) opens: u32,
    pub(crate) rounds: u32,
}

fn gib(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / (1u64 << 30) as f64)
}

fn ms(values: &[f64]) -> Option<f64> {
    median(values).map(|v| v * 1e3)
}

/// "median (min–max)" in ms.
fn ms_spread(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match ms(values) {
        Some(m) => format!("{m:.1} ({:.1}–{:.1})", min * 1e3, max * 1e3),
        None => "–".to_owned(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

pub(crate) fn print(r: &Report<'_>) {
    let [large, small] = &r.subjects;
    println!("## store-scale: {} against {}\n", large.label, small.label);
    println!("```sh\n{}\n```\n", r.command);
    println!("{}\n", r.machine);
    println!("{}\n", r.load);

    println!("### The stores\n");
    let rows: Vec<(&Subject, &Built)> = r.subjects.iter().zip(&r.built).collect();
    print!(
        "{}",
        table(
            &[
                "store",
                "objects in files",
                "object bytes (GiB)",
                "index.redb (GiB)",
                "built in (s)",
                "objects/s",
            ],
            "lrrrrr",
            &rows,
            |(subject, built)| {
                vec![
                    subject.label.clone(),
                    built.file_backed.to_string(),
                    gib(built.bytes),
                    gib(built.index_bytes),
                    built
                        .secs
                        .map_or("reused".to_owned(), |s| format!("{s:.1}")),
                    built.secs.map_or("–".to_owned(), |s| {
                        format!("{:.0}", built.objects as f64 / s)
                    }),
                ]
            }
        )
    );

    println!(
        "\n### Start-up (median of {} per store, min–max; stores alternating)\n",
        r.opens
    );
    type Pick = fn(&Timings) -> &Vec<f64>;
    let metrics: [(&str, Pick, bool); 5] = [
        ("`Store::open` in process (ms)", |t| &t.open, false),
        ("`Store::close` in process (ms)", |t| &t.close, false),
        (
            "`fleetcache serve` spawn → `/readyz` 200, after SIGTERM (ms)",
            |t| &t.serve_clean,
            true,
        ),
        (
            "`fleetcache serve` spawn → `/readyz` 200, after SIGKILL (ms)",
            |t| &t.serve_crashed,
            true,
        ),
        (
            "`fleetcache serve` spawn → `/readyz` 200, index not in the page cache (ms)",
            |t| &t.serve_cold,
            true,
        ),
    ];
    let (tl, ts) = (&r.timings[0], &r.timings[1]);
    print!(
        "{}",
        table(
            &[
                "metric",
                &large.label,
                &small.label,
                "ratio",
                "target (< 1 s)"
            ],
            "lrrrl",
            &metrics,
            |&(label, pick, targeted)| {
                let (a, b) = (pick(tl), pick(ts));
                let verdict = match (targeted, ms(a)) {
                    (true, Some(m)) if m < START_TARGET_MS => "✅".to_owned(),
                    (true, Some(_)) => "❌".to_owned(),
                    _ => String::new(),
                };
                vec![
                    label.to_owned(),
                    ms_spread(a),
                    ms_spread(b),
                    markdown::value(ratio(ms(a), ms(b)), 2),
                    verdict,
                ]
            }
        )
    );

    println!(
        "\n### `Store::get` in process (median of {} rounds; one thread, no HTTP)\n",
        r.rounds
    );
    let reference = r.lookups.iter().find(|s| s.subject == 1);
    let ref_ns = reference.and_then(|s| median(&s.ns_per_get));
    print!(
        "{}",
        table(
            &[
                "store, hashes",
                "µs per get",
                "× small store, hot",
                "every round (µs)"
            ],
            "lrrl",
            r.lookups,
            |s| {
                let ns = median(&s.ns_per_get);
                let rounds: Vec<String> = s
                    .ns_per_get
                    .iter()
                    .map(|v| format!("{:.2}", v / 1e3))
                    .collect();
                vec![
                    s.label.clone(),
                    markdown::value(ns.map(|v| v / 1e3), 2),
                    markdown::value(ratio(ns, ref_ns), 2),
                    rounds.join(", "),
                ]
            }
        )
    );

    println!("\n### Hits over HTTP (median of {} rounds)\n", r.rounds);
    // Each series against the small store's hot series of its own phase (the
    // spread phase against the first).
    let reference_of = |s: &Series| {
        let hot_small = |phase| {
            r.series
                .iter()
                .find(|x| x.node == 1 && x.load == 0 && x.phase == phase)
        };
        hot_small(s.phase).or_else(|| hot_small(0))
    };
    let cpu =
        |s: &Series| -> Vec<f64> { s.samples.iter().filter_map(cpu_us_per_request).collect() };
    print!(
        "{}",
        table(
            &[
                "node, load",
                "requests/s",
                "server CPU µs / request",
                "× small store, hot",
                "per-round ratios",
                "latency p50 / p99 (ms)",
                "peak RSS (MiB)",
            ],
            "lrrrrrr",
            r.series,
            |s| {
                let med = |f: &dyn Fn(&fleetcache_benches::meter::Sample) -> Option<f64>| {
                    median(&s.samples.iter().filter_map(f).collect::<Vec<_>>())
                };
                let reference = reference_of(s);
                let ref_cpu = reference.map(cpu).unwrap_or_default();
                let own = cpu(s);
                let per_round: Vec<f64> = own
                    .iter()
                    .zip(&ref_cpu)
                    .filter(|(_, b)| **b > 0.0)
                    .map(|(a, b)| a / b)
                    .collect();
                let spread = if per_round.is_empty() || std::ptr::eq(s, reference.unwrap_or(s)) {
                    String::new()
                } else {
                    let min = per_round.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    format!("{min:.2}–{max:.2}")
                };
                let p50 = med(&|x| x.load.latency_at(50.0)).map(|us| us / 1e3);
                let p99 = med(&|x| x.load.latency_at(99.0)).map(|us| us / 1e3);
                vec![
                    s.label.clone(),
                    markdown::value(med(&|x| Some(x.load.requests_per_sec)), 0),
                    markdown::value(median(&own), 2),
                    markdown::value(ratio(median(&own), median(&ref_cpu)), 2),
                    spread,
                    format!("{} / {}", markdown::value(p50, 2), markdown::value(p99, 2)),
                    markdown::value(med(&|x| Some(x.peak_rss as f64 / (1u64 << 20) as f64)), 1),
                ]
            }
        )
    );

    println!(
        "\nThe hot rows of both nodes run first, rounds alternating; then the large \
         node's other loads; then the hot load on both again (\"after the large node's \
         other loads\"), each row compared with the small node's hot row of its own phase."
    );
    println!("\nServer CPU µs per request, every run in order:\n");
    for s in r.series {
        let runs: Vec<String> = cpu(s).iter().map(|v| format!("{v:.2}")).collect();
        println!("- {}: {}", s.label, runs.join(", "));
    }
    println!("\n{}", r.method);
    println!(
        "Start-ups: each node gets fresh ports and the store's capacity set above its \
         contents; `/readyz` is polled every {} ms. \"Not in the page cache\": \
         `index.redb` dropped from it (`posix_fadvise` DONTNEED through `dd iflag=nocache`) \
         before the start, as after a reboot; the blob files stay untouched. Both stores \
         hold the same first objects, so the hot load asks both for the same bytes.",
        crate::startup::READY_POLL.as_millis()
    );
}
