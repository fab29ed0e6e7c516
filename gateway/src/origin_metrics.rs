//! Metrics of origin mode: origin requests, bytes and time to first byte per
//! origin; revalidations, stale answers, stored entries and purges.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

/// Handles the URL route and the origin fills record into.
#[derive(Debug)]
pub(crate) struct OriginMetrics {
    /// Origin requests by origin and status class (`2xx` … `5xx`, or `error`).
    pub(crate) requests: IntCounterVec,
    /// Origin response body bytes received, by origin.
    pub(crate) bytes: IntCounterVec,
    /// Time from sending a request to the origin's response head, by origin.
    pub(crate) first_byte: HistogramVec,
    /// Revalidations of stale entries by outcome: `304`, `200` (replaced), `error`.
    pub(crate) revalidations: IntCounterVec,
    /// Stale responses served, by reason (`stale-while-revalidate`,
    /// `stale-if-error`, `max-stale`).
    pub(crate) stale: IntCounterVec,
    /// URL responses stored (new or replaced entries).
    pub(crate) stored: IntCounter,
    /// Origin answers not stored, by reason (`no-store`, `private`, …).
    pub(crate) not_stored: IntCounterVec,
    /// Purge requests, by kind (`urls`, `prefixes`, `surrogate_keys`, `invalidation`).
    pub(crate) purges: IntCounterVec,
    /// Entries removed by purges and invalidations.
    pub(crate) purged_entries: IntCounter,
    /// URL fills asked of the URL's owner in the fleet, by result (`ok`,
    /// `unchanged`, why it went to the origin instead, or `aborted` mid-body).
    pub(crate) owner_requests: IntCounterVec,
    /// Peers' URL requests answered as the owner, by result.
    pub(crate) owner_answers: IntCounterVec,
}

impl OriginMetrics {
    pub(crate) fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let counter = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let first_byte = HistogramVec::new(
            HistogramOpts::new(
                "fleetcache_origin_first_byte_seconds",
                "Time from sending a request to the origin until its response head, by origin",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["origin"],
        )?;
        registry.register(Box::new(first_byte.clone()))?;
        Ok(OriginMetrics {
            requests: counter_vec(
                "fleetcache_origin_requests_total",
                "Requests sent to origins, by origin and response status class (error: no response)",
                &["origin", "class"],
            )?,
            bytes: counter_vec(
                "fleetcache_origin_bytes_total",
                "Response body bytes received from origins, by origin",
                &["origin"],
            )?,
            first_byte,
            revalidations: counter_vec(
                "fleetcache_revalidations_total",
                "Revalidations of stale entries with the origin, by outcome (304, 200, error)",
                &["outcome"],
            )?,
            stale: counter_vec(
                "fleetcache_stale_responses_total",
                "Stale entries served, by reason",
                &["reason"],
            )?,
            stored: counter(
                "fleetcache_url_entries_stored_total",
                "URL responses stored in the cache (new or replacing an older entry)",
            )?,
            not_stored: counter_vec(
                "fleetcache_url_responses_not_stored_total",
                "Origin responses to cacheable requests that were not stored, by reason",
                &["reason"],
            )?,
            purges: counter_vec(
                "fleetcache_purges_total",
                "Purge selectors applied, by kind (url, prefix, surrogate_key, invalidation)",
                &["kind"],
            )?,
            purged_entries: counter(
                "fleetcache_purged_entries_total",
                "URL entries removed by purges and invalidations",
            )?,
            owner_requests: counter_vec(
                "fleetcache_owner_requests_total",
                "URL fills asked of the URL's owner node, by result (ok, unchanged, aborted, or why the fill went to the origin: declined, overloaded, timeout, transport, not-connected, verification, malformed)",
                &["result"],
            )?,
            owner_answers: counter_vec(
                "fleetcache_owner_answers_total",
                "Peers' URL requests answered as the URL's owner, by result (hit, filled, unchanged, or why declined)",
                &["result"],
            )?,
        })
    }

    /// Records one request to `origin`, sent at `sent`: its time to the
    /// response head and the answer's status class (or `error`).
    pub(crate) fn exchange<B, E>(
        &self,
        origin: &str,
        sent: std::time::Instant,
        result: &Result<http::Response<B>, E>,
    ) {
        self.first_byte
            .with_label_values(&[origin])
            .observe(sent.elapsed().as_secs_f64());
        self.origin_answer(origin, result.as_ref().ok().map(http::Response::status));
    }

    fn origin_answer(&self, origin: &str, status: Option<http::StatusCode>) {
        let class = match status.map(|s| s.as_u16() / 100) {
            Some(1) => "1xx",
            Some(2) => "2xx",
            Some(3) => "3xx",
            Some(4) => "4xx",
            Some(5) => "5xx",
            _ => "error",
        };
        self.requests.with_label_values(&[origin, class]).inc();
    }
}
