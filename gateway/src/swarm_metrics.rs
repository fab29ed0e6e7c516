//! Peer and swarm figures, read from the swarm's own counters at scrape time.

use fleetcache_swarm::{PeerState, Swarm};
use prometheus::core::{Collector, Desc};
use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, proto};

/// Exposes per-peer counters (labelled by peer address) and node-wide swarm counters.
pub(crate) struct SwarmCollector {
    swarm: Swarm,
    peer_up: IntGaugeVec,
    peer_rtt: GaugeVec,
    peer_bytes: IntCounterVec,
    peer_transfers: IntCounterVec,
    peer_failures: IntCounterVec,
    peer_verification_failures: IntCounterVec,
    handshake_refusals: IntCounter,
    bytes_sent: IntCounter,
    uploads: IntCounter,
    overloaded: IntCounter,
    descs: Vec<Desc>,
}

impl std::fmt::Debug for SwarmCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmCollector").finish_non_exhaustive()
    }
}

impl SwarmCollector {
    pub(crate) fn new(swarm: Swarm) -> Result<Self, prometheus::Error> {
        let peer = &["peer"];
        let collector = SwarmCollector {
            swarm,
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
                    "Size proofs and ranges the peer delivered completely",
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
            descs: Vec::new(),
        };
        let descs = collector
            .collectors()
            .iter()
            .flat_map(|c| c.desc().into_iter().cloned())
            .collect();
        Ok(SwarmCollector { descs, ..collector })
    }

    fn collectors(&self) -> [&dyn Collector; 10] {
        [
            &self.peer_up,
            &self.peer_rtt,
            &self.peer_bytes,
            &self.peer_transfers,
            &self.peer_failures,
            &self.peer_verification_failures,
            &self.handshake_refusals,
            &self.bytes_sent,
            &self.uploads,
            &self.overloaded,
        ]
    }
}

/// Brings a counter up to a figure that only grows.
fn catch_up(counter: &IntCounter, value: u64) {
    counter.inc_by(value.saturating_sub(counter.get()));
}

impl Collector for SwarmCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        // Peers come and go with DNS; only current ones are shown.
        self.peer_up.reset();
        self.peer_rtt.reset();
        for peer in self.swarm.peers() {
            if peer.state == PeerState::Myself {
                continue;
            }
            let label = peer.addr.to_string();
            let label = [label.as_str()];
            self.peer_up
                .with_label_values(&label)
                .set(i64::from(peer.state == PeerState::Up));
            if let Some(rtt) = peer.rtt {
                self.peer_rtt
                    .with_label_values(&label)
                    .set(rtt.as_secs_f64());
            }
            catch_up(
                &self.peer_bytes.with_label_values(&label),
                peer.bytes_received,
            );
            catch_up(
                &self.peer_transfers.with_label_values(&label),
                peer.transfers,
            );
            catch_up(&self.peer_failures.with_label_values(&label), peer.failures);
            catch_up(
                &self.peer_verification_failures.with_label_values(&label),
                peer.verification_failures,
            );
        }
        let stats = self.swarm.stats();
        catch_up(&self.handshake_refusals, stats.handshake_refusals);
        catch_up(&self.bytes_sent, stats.bytes_sent);
        catch_up(&self.uploads, stats.uploads);
        catch_up(&self.overloaded, stats.overloaded);
        self.collectors().iter().flat_map(|c| c.collect()).collect()
    }
}
