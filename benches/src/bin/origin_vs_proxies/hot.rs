//! Measure 1: hits on a hot 4 KiB object. Each cache is first shown to
//! store it (the second request says hit), warmed with untimed wrk, then
//! driven by `wrk -t1` pinned to the client core, one run per cache per
//! round, while its process group's CPU time is read from `/proc`.

use anyhow::{Context, Result, ensure};
use fleetcache_benches::load::{self, LoadGenerator as _};
use fleetcache_benches::meter::Meter;
use fleetcache_benches::wrk::WrkArgs;

use crate::caches::Running;
use crate::objects::HOT_PATH;
use crate::report::HotRun;

/// Checks that each cache answers the hot object with the origin's bytes
/// and stores it: the second of two requests must say hit.
pub(crate) fn check_stored(caches: &[Running], expected: &[u8]) -> Result<()> {
    for cache in caches {
        let name = cache.cache.name();
        for attempt in ["first", "second"] {
            let (head, body) = cache.fetch("GET", HOT_PATH)?;
            ensure!(
                head.status == 200,
                "{name}: {attempt} GET {HOT_PATH} answered {}",
                head.status
            );
            ensure!(
                body == expected,
                "{name}: {attempt} GET {HOT_PATH} returned {} bytes that differ from the origin's {}",
                body.len(),
                expected.len()
            );
            let header = cache.cache.status_header();
            let status = head.header(header).unwrap_or("(none)");
            eprintln!("  {name}: {attempt} GET {HOT_PATH}: {header}: {status}");
            if attempt == "second" {
                ensure!(
                    cache.cache.is_hit(&head),
                    "{name} did not store {HOT_PATH}: the second GET says {header}: {status}"
                );
            }
        }
    }
    Ok(())
}

/// Warms every cache, then `rounds` rounds of one timed wrk run per cache.
pub(crate) fn run(
    caches: &mut [Running],
    meter: &Meter,
    wrk_args: &WrkArgs,
    warmup_secs: u64,
    rounds: u32,
) -> Result<Vec<HotRun>> {
    if warmup_secs > 0 {
        eprintln!("hot hits: warming up ({warmup_secs}s each)");
        for cache in caches.iter_mut() {
            let url = format!("http://{}{HOT_PATH}", cache.addr);
            load::run(wrk_args, &url, warmup_secs, &meter.scratch)
                .with_context(|| format!("warming up {}", cache.cache.name()))?;
            cache.server.check_alive()?;
        }
    }
    eprintln!("hot hits: {rounds} rounds of `{}`", wrk_args.command("URL"));
    let mut runs = Vec::new();
    for round in 0..rounds {
        eprintln!("hot hits, round {}/{rounds}", round + 1);
        for cache in caches.iter_mut() {
            let url = format!("http://{}{HOT_PATH}", cache.addr);
            let sample = meter
                .measure(&mut cache.server, &url, wrk_args)
                .with_context(|| {
                    format!("hot hits, round {}, {}", round + 1, cache.cache.name())
                })?;
            let run = HotRun {
                round,
                cache: cache.cache,
                sample,
            };
            eprintln!("  {}", run.summary());
            runs.push(run);
        }
    }
    Ok(runs)
}
