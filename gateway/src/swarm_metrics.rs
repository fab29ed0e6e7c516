//! Peer and swarm figures, read from the swarm's own counters at scrape time.
//!
//! Each scrape builds its metric families afresh from one snapshot, so concurrent
//! scrapes share no state, and a peer that leaves and comes back starts its counters
//! from zero again (a counter reset, which Prometheus' `rate()` handles), rather than
//! being hidden behind its old values.

use fleetcache_swarm::{PeerState, Swarm};
use prometheus::core::{Collector, Desc};
use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, proto};

/// Exposes per-peer figures (labelled by peer address) and node-wide swarm counters.
pub(crate) struct SwarmCollector {
    swarm: Swarm,
    descs: Vec<Desc>,
}

impl std::fmt::Debug for SwarmCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmCollector").finish_non_exhaustive()
    }
}

/// One scrape's metrics.
struct Families {
    peer_up: IntGaugeVec,
    peer_rtt: GaugeVec,
    peer_bytes: IntCounterVec,
    peer_transfers: IntCounterVec,
    peer_failures: IntCounterVec,
    peer_verification_failures: IntCounterVec,
    peer_hedges: IntCounterVec,
    handshake_refusals: IntCounter,
    bytes_sent: IntCounter,
    uploads: IntCounter,
    overloaded: IntCounter,
    hedges: IntCounter,
    hedges_won: IntCounter,
}

impl Families {
    fn new() -> Result<Self, prometheus::Error> {
        let peer = &["peer"];
        Ok(Families {
            peer_up: IntGaugeVec::new(
                Opts::new(
                    "fleetcache_peer_up",
                    "1 if the peer is in the routing set (connected, answering pings)",
                ),
                peer,
            )?,
            peer_rtt: GaugeVec::new(
                Opts::new(
                    "fleetcache_peer_rtt_seconds",
                    "Round-trip time of the peer's last answered ping",
                ),
                peer,
            )?,
            peer_bytes: IntCounterVec::new(
                Opts::new(
                    "fleetcache_peer_bytes_received_total",
                    "Verified bytes received from the peer",
                ),
                peer,
            )?,
            peer_transfers: IntCounterVec::new(
                Opts::new(
                    "fleetcache_peer_transfers_total",
                    "Size proofs and pieces of ranges the peer delivered completely",
                ),
                peer,
            )?,
            peer_failures: IntCounterVec::new(
                Opts::new(
                    "fleetcache_peer_failures_total",
                    "Requests to the peer that failed without a lie: timeouts, stalls, resets, lost connections",
                ),
                peer,
            )?,
            peer_verification_failures: IntCounterVec::new(
                Opts::new(
                    "fleetcache_peer_verification_failures_total",
                    "Times the peer sent bytes failing BLAKE3 verification, a truncated stream or a wrong size",
                ),
                peer,
            )?,
            peer_hedges: IntCounterVec::new(
                Opts::new(
                    "fleetcache_peer_hedges_total",
                    "Times the peer was slower than its hedge delay and another holder was asked as well",
                ),
                peer,
            )?,
            handshake_refusals: IntCounter::new(
                "fleetcache_swarm_handshake_refusals_total",
                "QUIC handshakes refused either way: no certificate, another CA, wrong protocol",
            )?,
            bytes_sent: IntCounter::new(
                "fleetcache_swarm_bytes_sent_total",
                "Encoded bytes (data and proofs) sent to peers",
            )?,
            uploads: IntCounter::new(
                "fleetcache_swarm_uploads_total",
                "Peer GET requests answered completely",
            )?,
            overloaded: IntCounter::new(
                "fleetcache_swarm_overloaded_total",
                "Peer GET requests refused as OVERLOADED (swarm.max_uploads)",
            )?,
            hedges: IntCounter::new(
                "fleetcache_swarm_hedges_total",
                "Hedged requests: another holder asked because one was slower than its hedge delay",
            )?,
            hedges_won: IntCounter::new(
                "fleetcache_swarm_hedges_won_total",
                "Hedged requests that delivered the awaited bytes before the slow holder did",
            )?,
        })
    }

    fn all(&self) -> [&dyn Collector; 13] {
        [
            &self.peer_up,
            &self.peer_rtt,
            &self.peer_bytes,
            &self.peer_transfers,
            &self.peer_failures,
            &self.peer_verification_failures,
            &self.peer_hedges,
            &self.handshake_refusals,
            &self.bytes_sent,
            &self.uploads,
            &self.overloaded,
            &self.hedges,
            &self.hedges_won,
        ]
    }
}

impl SwarmCollector {
    pub(crate) fn new(swarm: Swarm) -> Result<Self, prometheus::Error> {
        let descs = Families::new()?
            .all()
            .iter()
            .flat_map(|c| c.desc().into_iter().cloned())
            .collect();
        Ok(SwarmCollector { swarm, descs })
    }
}

impl Collector for SwarmCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        // The descriptions were built by the same constructor in `new`, so this cannot
        // fail here; an empty scrape is the harmless fallback.
        let Ok(f) = Families::new() else {
            return Vec::new();
        };
        for peer in self.swarm.peers() {
            if peer.state == PeerState::Myself {
                continue;
            }
            let label = peer.addr.to_string();
            let label = [label.as_str()];
            f.peer_up
                .with_label_values(&label)
                .set(i64::from(peer.state == PeerState::Up));
            if let Some(rtt) = peer.rtt {
                f.peer_rtt.with_label_values(&label).set(rtt.as_secs_f64());
            }
            f.peer_bytes
                .with_label_values(&label)
                .inc_by(peer.bytes_received);
            f.peer_transfers
                .with_label_values(&label)
                .inc_by(peer.transfers);
            f.peer_failures
                .with_label_values(&label)
                .inc_by(peer.failures);
            f.peer_verification_failures
                .with_label_values(&label)
                .inc_by(peer.verification_failures);
            f.peer_hedges.with_label_values(&label).inc_by(peer.hedges);
        }
        let stats = self.swarm.stats();
        f.handshake_refusals.inc_by(stats.handshake_refusals);
        f.bytes_sent.inc_by(stats.bytes_sent);
        f.uploads.inc_by(stats.uploads);
        f.overloaded.inc_by(stats.overloaded);
        f.hedges.inc_by(stats.hedges);
        f.hedges_won.inc_by(stats.hedges_won);
        f.all().iter().flat_map(|c| c.collect()).collect()
    }
}
