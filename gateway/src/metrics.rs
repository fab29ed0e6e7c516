//! Prometheus metrics, all named `fleetcache_*`, rendered at `/metrics`.
//!
//! HTTP metrics are recorded by a [`ResponseObserver`] carried inside each
//! response body, so a request is counted once it has finished (or been cut
//! off), with the bytes that actually went out. Store figures are read from
//! the store's own counters at scrape time.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use fleetcache_store::Store;
use fleetcache_swarm::Swarm;
use prometheus::core::{Collector, Desc};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder, proto,
};

/// The node's metrics registry and the handles the request paths use.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    response_bytes: IntCounterVec,
    connections: IntCounterVec,
    connections_active: IntGaugeVec,
    connections_refused: IntCounterVec,
    tls_handshake_failures: IntCounterVec,
    http2_reset_floods: IntCounterVec,
    http3_retries: IntCounter,
    /// Fills finished, by source and result.
    pub(crate) fills: IntCounterVec,
    /// Fill duration, by source.
    pub(crate) fill_duration: HistogramVec,
    /// Fills running now.
    pub(crate) fills_active: IntGauge,
    /// Requests that joined a fill already running instead of starting one.
    pub(crate) fill_waiters: IntCounter,
    /// Origin mode.
    pub(crate) origin: crate::origin_metrics::OriginMetrics,
    /// Fleet purges.
    pub(crate) purges: crate::purges::PurgeMetrics,
}

/// Which listener a connection or request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    Public,
    /// HTTPS: HTTP/1.1 and HTTP/2 over TLS.
    Https,
    /// HTTP/3 over QUIC (UDP, the HTTPS port).
    Http3,
    Admin,
}

impl Listener {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Listener::Public => "public",
            Listener::Https => "https",
            Listener::Http3 => "http3",
            Listener::Admin => "admin",
        }
    }
}

impl Metrics {
    pub(crate) fn new(store: Store, swarm: Option<Swarm>) -> Result<Arc<Self>, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "fleetcache_http_requests_total",
                "HTTP requests completed, by route, status, cache result, where the body came from, and protocol (http/1.1, h2, h3)",
            ),
            &["route", "status", "cache", "source", "protocol"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "fleetcache_http_request_duration_seconds",
                "Time from request head to the last response byte, by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ]),
            &["route"],
        )?;
        let response_bytes = IntCounterVec::new(
            Opts::new(
                "fleetcache_http_response_bytes_total",
                "Response body bytes sent, by where they came from",
            ),
            &["source"],
        )?;
        let connections = IntCounterVec::new(
            Opts::new(
                "fleetcache_http_connections_total",
                "HTTP connections accepted, by listener",
            ),
            &["listener"],
        )?;
        let connections_active = IntGaugeVec::new(
            Opts::new(
                "fleetcache_http_connections_active",
                "HTTP connections open now, by listener",
            ),
            &["listener"],
        )?;
        let connections_refused = IntCounterVec::new(
            Opts::new(
                "fleetcache_http_connections_refused_total",
                "HTTP connections closed at once because the listener was at max_connections",
            ),
            &["listener"],
        )?;
        let tls_handshake_failures = IntCounterVec::new(
            Opts::new(
                "fleetcache_tls_handshake_failures_total",
                "TLS handshakes that failed or timed out, by listener",
            ),
            &["listener"],
        )?;
        let http2_reset_floods = IntCounterVec::new(
            Opts::new(
                "fleetcache_http2_reset_floods_total",
                "HTTP/2 connections closed for cancelling far more requests than they completed (rapid reset)",
            ),
            &["listener"],
        )?;
        let http3_retries = IntCounter::new(
            "fleetcache_http3_retries_total",
            "HTTP/3 connection attempts answered with a QUIC Retry (address validation under load of unvalidated handshakes)",
        )?;
        let fills = IntCounterVec::new(
            Opts::new(
                "fleetcache_fills_total",
                "Misses filled, by source (peer, origin) and result (ok, unstored, declined, not_found, failed)",
            ),
            &["source", "result"],
        )?;
        let fill_duration = HistogramVec::new(
            HistogramOpts::new(
                "fleetcache_fill_duration_seconds",
                "Time from a miss to the end of its fill (stored, not found or failed), by source",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                300.0,
            ]),
            &["source"],
        )?;
        let fills_active = IntGauge::new("fleetcache_fills_active", "Fills running now")?;
        let fill_waiters = IntCounter::new(
            "fleetcache_fill_waiters_total",
            "Requests that joined a fill already running (single-flight) instead of starting one",
        )?;
        registry.register(Box::new(fills.clone()))?;
        registry.register(Box::new(fill_duration.clone()))?;
        registry.register(Box::new(fills_active.clone()))?;
        registry.register(Box::new(fill_waiters.clone()))?;
        if let Some(swarm) = swarm {
            registry.register(Box::new(crate::swarm_metrics::SwarmCollector::new(swarm)?))?;
        }
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(response_bytes.clone()))?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(connections_active.clone()))?;
        registry.register(Box::new(connections_refused.clone()))?;
        registry.register(Box::new(tls_handshake_failures.clone()))?;
        registry.register(Box::new(http2_reset_floods.clone()))?;
        registry.register(Box::new(http3_retries.clone()))?;
        registry.register(Box::new(StoreCollector::new(store)?))?;
        let origin = crate::origin_metrics::OriginMetrics::new(&registry)?;
        let purges = crate::purges::PurgeMetrics::new(&registry)?;
        Ok(Arc::new(Self {
            origin,
            purges,
            registry,
            requests,
            request_duration,
            response_bytes,
            connections,
            connections_active,
            connections_refused,
            tls_handshake_failures,
            http2_reset_floods,
            http3_retries,
            fills,
            fill_duration,
            fills_active,
            fill_waiters,
        }))
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on metric families that violate the
        // format, which our fixed set never does; an empty page is the
        // harmless fallback.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            out.clear();
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// The registry, for parts that register their own metrics.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn observer(
        self: &Arc<Self>,
        route: &'static str,
        version: http::Version,
    ) -> ResponseObserver {
        ResponseObserver {
            metrics: Arc::clone(self),
            route,
            protocol: protocol_label(version),
            status: 0,
            cache: "none",
            source: "local",
            bytes: 0,
            start: Instant::now(),
            failed: false,
        }
    }

    /// Records a new connection; the returned guard records its end.
    pub(crate) fn connection_opened(&self, listener: Listener) -> ConnectionGuard {
        let label = [listener.as_str()];
        self.connections.with_label_values(&label).inc();
        let active = self.connections_active.with_label_values(&label);
        active.inc();
        ConnectionGuard { active }
    }

    pub(crate) fn connection_refused(&self, listener: Listener) {
        self.connections_refused
            .with_label_values(&[listener.as_str()])
            .inc();
    }

    /// Exports the TLS listener's counters at zero from the start, so rates
    /// and alerts see them before the first failure.
    pub(crate) fn tls_listener_started(&self, listener: Listener) {
        let label = [listener.as_str()];
        self.tls_handshake_failures.with_label_values(&label);
        if listener != Listener::Http3 {
            self.http2_reset_floods.with_label_values(&label);
        }
    }

    pub(crate) fn tls_handshake_failed(&self, listener: Listener) {
        self.tls_handshake_failures
            .with_label_values(&[listener.as_str()])
            .inc();
    }

    pub(crate) fn http3_retry(&self) {
        self.http3_retries.inc();
    }

    pub(crate) fn http2_reset_flood(&self, listener: Listener) {
        self.http2_reset_floods
            .with_label_values(&[listener.as_str()])
            .inc();
    }
}

/// The `protocol` label of a request's HTTP version.
fn protocol_label(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_2 => "h2",
        http::Version::HTTP_3 => "h3",
        http::Version::HTTP_10 => "http/1.0",
        _ => "http/1.1",
    }
}

/// Decrements the active-connections gauge when the connection ends.
#[derive(Debug)]
pub(crate) struct ConnectionGuard {
    active: IntGauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.active.dec();
    }
}

/// Follows one request to its end and records it in the metrics on drop.
#[derive(Debug)]
pub(crate) struct ResponseObserver {
    metrics: Arc<Metrics>,
    route: &'static str,
    protocol: &'static str,
    status: u16,
    cache: &'static str,
    source: &'static str,
    bytes: u64,
    start: Instant,
    failed: bool,
}

impl ResponseObserver {
    /// The status, the cache result, and where the body bytes come from (`local` for
    /// the store and generated bodies, `peer` for bytes arriving from the fleet).
    pub(crate) fn set_outcome(&mut self, status: u16, cache: &'static str, source: &'static str) {
        self.status = status;
        self.cache = cache;
        self.source = source;
    }

    pub(crate) fn add_bytes(&mut self, n: u64) {
        self.bytes += n;
    }

    pub(crate) fn failed(&mut self, err: &dyn std::fmt::Display) {
        self.failed = true;
        tracing::warn!(
            route = self.route,
            bytes_sent = self.bytes,
            "response aborted: {err}"
        );
    }
}

impl Drop for ResponseObserver {
    fn drop(&mut self) {
        let status = self.status.to_string();
        let m = &self.metrics;
        m.requests
            .with_label_values(&[
                self.route,
                status.as_str(),
                self.cache,
                self.source,
                self.protocol,
            ])
            .inc();
        m.request_duration
            .with_label_values(&[self.route])
            .observe(self.start.elapsed().as_secs_f64());
        if self.bytes > 0 {
            m.response_bytes
                .with_label_values(&[self.source])
                .inc_by(self.bytes);
        }
    }
}

/// Reads one figure out of the store's stats.
type StatField = fn(&fleetcache_store::StoreStats) -> u64;

/// Exposes the store's own counters at scrape time.
struct StoreCollector {
    store: Store,
    gauges: [(IntGauge, StatField); 7],
    counters: Mutex<[(IntCounter, StatField); 7]>,
    descs: Vec<Desc>,
}

impl StoreCollector {
    fn new(store: Store) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help);
        let counter = |name: &str, help: &str| IntCounter::new(name, help);
        let gauges: [(IntGauge, StatField); 7] = [
            (
                gauge("fleetcache_store_bytes", "Bytes of objects in the store")?,
                |s| s.bytes,
            ),
            (
                gauge("fleetcache_store_objects", "Objects in the store")?,
                |s| s.objects,
            ),
            (
                gauge(
                    "fleetcache_store_capacity_bytes",
                    "Configured store capacity",
                )?,
                |s| s.capacity,
            ),
            (
                gauge(
                    "fleetcache_store_pinned_objects",
                    "Pinned objects (never evicted)",
                )?,
                |s| s.pinned_objects,
            ),
            (
                gauge(
                    "fleetcache_store_url_entries",
                    "Cached URL responses (records pointing at stored objects)",
                )?,
                |s| s.records,
            ),
            (
                gauge(
                    "fleetcache_memory_cache_bytes",
                    "Bytes of verified object chunks in the memory tier",
                )?,
                |s| s.memory_bytes,
            ),
            (
                gauge(
                    "fleetcache_memory_cache_capacity_bytes",
                    "Configured size of the memory tier (store.memory_cache)",
                )?,
                |s| s.memory_capacity,
            ),
        ];
        let counters: [(IntCounter, StatField); 7] = [
            (
                counter(
                    "fleetcache_store_evictions_total",
                    "Objects evicted to stay under capacity",
                )?,
                |s| s.evictions,
            ),
            (
                counter(
                    "fleetcache_store_evicted_bytes_total",
                    "Bytes evicted to stay under capacity",
                )?,
                |s| s.evicted_bytes,
            ),
            (
                counter(
                    "fleetcache_store_ingests_total",
                    "Objects written into the store",
                )?,
                |s| s.ingests,
            ),
            (
                counter(
                    "fleetcache_ingest_bytes_total",
                    "Bytes written into the store",
                )?,
                |s| s.ingested_bytes,
            ),
            (
                counter(
                    "fleetcache_store_corrupt_detected_total",
                    "Objects found corrupt on read and quarantined",
                )?,
                |s| s.corrupt_detected,
            ),
            (
                counter(
                    "fleetcache_memory_cache_hits_total",
                    "256 KiB chunk reads served from the memory tier",
                )?,
                |s| s.memory_hits,
            ),
            (
                counter(
                    "fleetcache_memory_cache_misses_total",
                    "256 KiB chunk reads of objects the memory tier admits that went to disk",
                )?,
                |s| s.memory_misses,
            ),
        ];
        let descs = gauges
            .iter()
            .flat_map(|(g, _)| g.desc().into_iter().cloned())
            .chain(
                counters
                    .iter()
                    .flat_map(|(c, _)| c.desc().into_iter().cloned()),
            )
            .collect();
        Ok(Self {
            store,
            gauges,
            counters: Mutex::new(counters),
            descs,
        })
    }
}

impl Collector for StoreCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let stats = self.store.stats();
        let mut families = Vec::new();
        for (gauge, read) in &self.gauges {
            gauge.set(i64::try_from(read(&stats)).unwrap_or(i64::MAX));
            families.extend(gauge.collect());
        }
        // Counters only move forward; bring each up to the store's figure.
        let counters = match self.counters.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (counter, read) in counters.iter() {
            counter.inc_by(read(&stats).saturating_sub(counter.get()));
            families.extend(counter.collect());
        }
        families
    }
}
