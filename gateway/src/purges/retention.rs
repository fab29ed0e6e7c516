//! How long purges are kept, and when a node must assume it missed one. Pure
//! code on Unix milliseconds with `now` passed in.
//!
//! Every node keeps a purge until `created + retention` (`swarm.purge_retention`,
//! default 24h) by its own clock, so a node that was away for less than that
//! finds every purge it missed in its peers' logs when it reconnects. Nothing
//! in the configuration bounds how long an entry may stay servable (a
//! response's `max-age` can be a year), so the retention cannot cover every
//! entry; instead a node that *may* have missed a purge the fleet has already
//! forgotten drops all its URL entries (see [`gap`]). The bodies stay in the
//! store, so refilling them costs the origin exchange, not always the bytes.

/// Whether a purge made at `created` is past its retention at `now`.
pub(crate) fn expired(created: u64, now: u64, retention: u64) -> bool {
    now.saturating_sub(created) > retention
}

/// The receive time a newly kept purge gets: the wall clock, but always after
/// every receive time given before (`clock` is the last one), so the log's
/// receive times are unique and only grow, even when the clock steps back. A
/// peer's `after` cursor relies on that.
pub(crate) fn next_received(clock: u64, now: u64) -> u64 {
    now.max(clock.saturating_add(1))
}

/// Slack for clock skew between nodes and for purges still on their way when
/// a node last heard from the fleet: half the retention, at most five minutes.
pub(crate) fn margin(retention: u64) -> u64 {
    (retention / 2).min(5 * 60 * 1000)
}

/// Why a node may have missed a purge that no peer keeps any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gap {
    /// No peer's log was read for this long (ms): longer than the retention
    /// less the margin, so purges made meanwhile may be gone everywhere.
    OutOfTouch { for_ms: u64 },
    /// The peer dropped a purge it received after the point this node had
    /// read its log to: this node never saw it from that peer.
    PeerDropped,
}

/// Decides, on a PURGE_LOG answer, whether this node may have missed a purge:
///
/// - `last_contact`: when this node last read any peer's log (`None`: never,
///   a node that never was in a fleet has nothing the fleet purged);
/// - `after`: where this node had read this peer's log to (`None`: never
///   read it, a peer new to this node);
/// - `dropped_through`: the latest receive time of a purge the peer dropped.
pub(crate) fn gap(
    last_contact: Option<u64>,
    after: Option<u64>,
    dropped_through: Option<u64>,
    now: u64,
    retention: u64,
) -> Option<Gap> {
    if let Some(last) = last_contact {
        let away = now.saturating_sub(last);
        if away > retention.saturating_sub(margin(retention)) {
            return Some(Gap::OutOfTouch { for_ms: away });
        }
    }
    match (after, dropped_through) {
        (Some(after), Some(dropped)) if dropped > after => Some(Gap::PeerDropped),
        _ => None,
    }
}

/// How often a node reads its live peers' logs besides when it connects: often
/// enough that a connected node never looks out of touch (a fraction of the
/// retention), at most once a minute, at least every 100 ms.
pub(crate) fn sync_interval(retention: u64) -> u64 {
    (retention / 8).clamp(100, 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600 * 1000;
    const DAY: u64 = 24 * HOUR;

    #[test]
    fn purges_expire_after_the_retention() {
        let created = 1_000 * DAY;
        assert!(!expired(created, created, DAY));
        assert!(!expired(created, created + DAY, DAY));
        assert!(expired(created, created + DAY + 1, DAY));
        // A purge from a node whose clock runs ahead is not expired.
        assert!(!expired(created + HOUR, created, DAY));
    }

    #[test]
    fn receive_times_only_grow() {
        assert_eq!(next_received(0, 500), 500);
        assert_eq!(next_received(500, 500), 501);
        // The clock stepped back: still after the last one.
        assert_eq!(next_received(900, 500), 901);
        assert_eq!(next_received(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn a_node_in_touch_with_every_peer_sees_no_gap() {
        let now = 1_000 * DAY;
        assert_eq!(gap(None, None, None, now, DAY), None);
        assert_eq!(gap(Some(now - 60_000), Some(10), Some(5), now, DAY), None);
        assert_eq!(gap(Some(now - 60_000), Some(10), Some(10), now, DAY), None);
        // A peer met for the first time: its drops are older than anything
        // this node could have read from it.
        assert_eq!(gap(Some(now - HOUR), None, Some(now), now, DAY), None);
    }

    #[test]
    fn a_node_away_longer_than_the_retention_has_a_gap() {
        let now = 1_000 * DAY;
        // 24h retention, 5 min margin: away 23h55m is already too long.
        assert_eq!(
            gap(Some(now - (DAY - 5 * 60_000) - 1), Some(10), None, now, DAY),
            Some(Gap::OutOfTouch {
                for_ms: DAY - 5 * 60_000 + 1
            })
        );
        assert_eq!(
            gap(Some(now - (DAY - 5 * 60_000)), None, None, now, DAY),
            None
        );
        // Two days away.
        assert!(matches!(
            gap(Some(now - 2 * DAY), None, None, now, DAY),
            Some(Gap::OutOfTouch { .. })
        ));
        // Short retentions keep half of themselves as the margin.
        assert_eq!(margin(4_000), 2_000);
        assert_eq!(gap(Some(now - 2_000), None, None, now, 4_000), None);
        assert!(gap(Some(now - 2_001), None, None, now, 4_000).is_some());
    }

    #[test]
    fn a_peer_that_dropped_what_this_node_never_read_is_a_gap() {
        let now = 1_000 * DAY;
        assert_eq!(
            gap(Some(now - 1_000), Some(10), Some(11), now, DAY),
            Some(Gap::PeerDropped)
        );
    }

    #[test]
    fn connected_nodes_sync_well_within_the_margin() {
        for retention in [1_000, 4_000, 60_000, HOUR, DAY, 365 * DAY] {
            let interval = sync_interval(retention);
            assert!((100..=60_000).contains(&interval), "{retention}");
            if retention >= 4_000 {
                assert!(
                    interval * 2 < retention - margin(retention),
                    "{retention}: {interval}"
                );
            }
        }
    }
}
