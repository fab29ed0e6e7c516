//! Metrics of fleet purges, all `fleetcache_fleet_purge*`.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Handles the purge paths record into.
#[derive(Debug)]
pub(crate) struct PurgeMetrics {
    /// PURGE messages sent to peers (by the node a purge was asked of).
    pub(crate) sent: IntCounter,
    /// Peers that did not confirm a purge: failed, timed out, declined, or known
    /// and down when it was made. They learn it from a purge log later.
    pub(crate) unconfirmed: IntCounter,
    /// Purges received from peers, by `via` (`push`, `log`), known ones included.
    pub(crate) received: IntCounterVec,
    /// Purges applied here for the first time, by `via` (`local`, `push`, `log`).
    pub(crate) applied: IntCounterVec,
    /// Purge messages from peers refused as malformed or invalid, by `kind`
    /// (`purge`, `purge_log`, `answer`).
    pub(crate) declined: IntCounterVec,
    /// Reads of a peer's purge log, by `result` (`ok`, `failed`).
    pub(crate) log_reads: IntCounterVec,
    /// Times this node dropped every URL entry because it may have missed a
    /// purge the fleet no longer keeps.
    pub(crate) flushes: IntCounter,
    /// Purges kept now.
    pub(crate) kept: IntGauge,
}

impl PurgeMetrics {
    pub(crate) fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let kept = IntGauge::new("fleetcache_fleet_purges_kept", "Fleet purges kept now")?;
        registry.register(Box::new(kept.clone()))?;
        Ok(PurgeMetrics {
            sent: counter(
                "fleetcache_fleet_purges_sent_total",
                "PURGE messages sent to peers by the node the purge was asked of",
            )?,
            unconfirmed: counter(
                "fleetcache_fleet_purges_unconfirmed_total",
                "Peers that did not confirm a purge (failed, timed out, declined or down)",
            )?,
            received: counter_vec(
                "fleetcache_fleet_purges_received_total",
                "Purges received from peers, by via (push, log)",
                &["via"],
            )?,
            applied: counter_vec(
                "fleetcache_fleet_purges_applied_total",
                "Purges applied on this node for the first time, by via (local, push, log)",
                &["via"],
            )?,
            declined: counter_vec(
                "fleetcache_fleet_purge_messages_declined_total",
                "Purge messages from peers refused as malformed or invalid, by kind",
                &["kind"],
            )?,
            log_reads: counter_vec(
                "fleetcache_fleet_purge_log_reads_total",
                "Reads of a peer's purge log, by result (ok, failed)",
                &["result"],
            )?,
            flushes: counter(
                "fleetcache_fleet_purge_flushes_total",
                "Times every URL entry was dropped because a purge may have been missed",
            )?,
            kept,
        })
    }
}
