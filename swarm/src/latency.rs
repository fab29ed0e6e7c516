//! Each peer's latency estimate and the hedge delay derived from it (sans-IO: samples
//! are durations the caller measured; nothing here reads a clock).
//!
//! What is estimated is a peer's *first-group latency*: from sending a GET (or a size
//! proof) to its first verified 16 KiB group, the time a hedge has to beat. The
//! estimator is RFC 6298's (a smoothed mean with gain 1/8 and a mean deviation with
//! gain 1/4), and the hedge delay is its retransmission timeout, mean plus four
//! deviations, clamped to [`Bounds`].
//!
//! Spegel's adaptive timeout locked itself at its floor after a cold start because
//! only successful fetches fed it: a request cut short never reported how slow it was.
//! Here every outcome feeds the estimate: a first group, a failure or a timeout (as
//! the ceiling, not as nothing), and a request that a hedge cut short (the time it had
//! already taken, a lower bound, whenever that exceeds the estimate). A peer that keeps
//! losing races to hedges therefore sees its delay rise until it answers within it or
//! reaches the ceiling; it cannot stay at the floor while it is slower than that.

use std::time::Duration;

/// Lowest hedge delay. Below it, ordinary noise on a healthy LAN link would trigger
/// hedges: a group read from a cold disk, or one lost tail packet, which QUIC repairs
/// after a probe timeout of at least its 25 ms maximum ACK delay plus a round trip.
pub(crate) const HEDGE_FLOOR: Duration = Duration::from_millis(30);

/// The range a hedge delay is clamped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) floor: Duration,
    pub(crate) ceiling: Duration,
}

impl Bounds {
    /// [`HEDGE_FLOOR`] up to half the peer timeout: a hedge started later than that
    /// would leave the second holder less time to answer than the first one had, and
    /// at the peer timeout itself the first holder is abandoned anyway (plain
    /// failover, not a hedge).
    pub(crate) fn for_peer_timeout(peer_timeout: Duration) -> Bounds {
        Bounds {
            floor: HEDGE_FLOOR,
            ceiling: (peer_timeout / 2).max(HEDGE_FLOOR),
        }
    }
}

/// One peer's smoothed first-group latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Latency {
    /// `None` before the first sample or ping.
    smoothed: Option<Duration>,
    deviation: Duration,
}

impl Latency {
    /// Starts the estimate from a ping's round trip when nothing better is known (a
    /// first group cannot come sooner than one round trip). Later pings change nothing:
    /// they measure the network alone, not a peer's disk and upload queue.
    pub(crate) fn seed(&mut self, rtt: Duration) {
        if self.smoothed.is_none() {
            self.smoothed = Some(rtt);
            self.deviation = rtt / 2;
        }
    }

    /// A first verified group arrived `sample` after the request was sent.
    pub(crate) fn observe(&mut self, sample: Duration) {
        match self.smoothed {
            None => {
                self.smoothed = Some(sample);
                self.deviation = sample / 2;
            }
            Some(smoothed) => {
                let error = smoothed.abs_diff(sample);
                self.deviation = self.deviation * 3 / 4 + error / 4;
                self.smoothed = Some(smoothed * 7 / 8 + sample / 8);
            }
        }
    }

    /// A request failed or went silent: as slow as a peer is allowed to be.
    pub(crate) fn failed(&mut self, bounds: Bounds) {
        self.observe(bounds.ceiling);
    }

    /// A request was cancelled, unanswered, after `elapsed` because another source
    /// answered first. Its latency is at least `elapsed`: that raises the estimate when
    /// it is above it and says nothing otherwise.
    pub(crate) fn outlasted(&mut self, elapsed: Duration) {
        if self.smoothed.is_none_or(|smoothed| elapsed > smoothed) {
            self.observe(elapsed);
        }
    }

    /// The smoothed latency, if anything was measured.
    pub(crate) fn estimate(&self) -> Option<Duration> {
        self.smoothed
    }

    /// How long to wait for a verified group from this peer before asking another
    /// holder as well. A peer nothing is known about gets the ceiling (in practice
    /// every peer is seeded by the ping that made it live).
    pub(crate) fn hedge_delay(&self, bounds: Bounds) -> Duration {
        match self.smoothed {
            None => bounds.ceiling,
            Some(smoothed) => (smoothed + self.deviation * 4).clamp(bounds.floor, bounds.ceiling),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn bounds() -> Bounds {
        Bounds::for_peer_timeout(Duration::from_secs(2))
    }

    #[test]
    fn bounds_run_from_the_floor_to_half_the_peer_timeout() {
        assert_eq!(
            bounds(),
            Bounds {
                floor: HEDGE_FLOOR,
                ceiling: ms(1000)
            }
        );
        // A peer timeout shorter than twice the floor still gives a usable range.
        let tight = Bounds::for_peer_timeout(ms(40));
        assert_eq!(tight.ceiling, HEDGE_FLOOR);
    }

    #[test]
    fn an_unknown_peer_gets_the_ceiling_and_a_ping_seeds_it() {
        let mut latency = Latency::default();
        assert_eq!(latency.estimate(), None);
        assert_eq!(latency.hedge_delay(bounds()), ms(1000));
        latency.seed(ms(1));
        assert_eq!(latency.estimate(), Some(ms(1)));
        // 1 ms + 4 × 0.5 ms is under the floor.
        assert_eq!(latency.hedge_delay(bounds()), HEDGE_FLOOR);
        // Later pings do not move a measured estimate.
        latency.observe(ms(80));
        let before = latency;
        latency.seed(ms(1));
        assert_eq!(latency, before);
    }

    #[test]
    fn steady_samples_converge_and_the_delay_follows_them() {
        let mut latency = Latency::default();
        latency.seed(ms(1));
        for _ in 0..100 {
            latency.observe(ms(100));
        }
        let estimate = latency.estimate().unwrap();
        assert!(estimate > ms(99) && estimate <= ms(100), "{estimate:?}");
        let delay = latency.hedge_delay(bounds());
        assert!(delay >= ms(100) && delay < ms(105), "{delay:?}");
    }

    #[test]
    fn the_delay_never_leaves_its_bounds() {
        let mut fast = Latency::default();
        for _ in 0..50 {
            fast.observe(Duration::ZERO);
        }
        assert_eq!(fast.hedge_delay(bounds()), HEDGE_FLOOR);
        let mut slow = Latency::default();
        for _ in 0..50 {
            slow.observe(Duration::from_secs(30));
        }
        assert_eq!(slow.hedge_delay(bounds()), ms(1000));
    }

    #[test]
    fn a_timeout_raises_the_delay_to_the_ceiling_and_successes_bring_it_back() {
        let mut latency = Latency::default();
        for _ in 0..20 {
            latency.observe(ms(2));
        }
        assert_eq!(latency.hedge_delay(bounds()), HEDGE_FLOOR);
        latency.failed(bounds());
        // One timeout: the deviation alone lifts the delay to the ceiling.
        assert_eq!(latency.hedge_delay(bounds()), ms(1000));
        let mut samples = 0;
        while latency.hedge_delay(bounds()) > HEDGE_FLOOR {
            latency.observe(ms(2));
            samples += 1;
            assert!(samples < 100, "never recovered: {latency:?}");
        }
        assert!(samples > 5, "a timeout should be remembered for a while");
    }

    /// Spegel's failure mode: after a cold start, a peer slower than the floor whose
    /// requests are always cut short by hedges. Fed only by successes its delay would
    /// stay at the floor for ever; fed by what the cut requests had already taken, it
    /// rises until the peer's real latency fits under it.
    #[test]
    fn a_cold_start_cannot_lock_the_delay_at_its_floor() {
        let real = ms(200);
        let mut latency = Latency::default();
        latency.seed(ms(1));
        let mut hedged = 0;
        loop {
            let delay = latency.hedge_delay(bounds());
            if real <= delay {
                break;
            }
            // A hedge fires at `delay` and its answer arrives 5 ms later; the slow
            // request is cancelled after waiting that long.
            latency.outlasted(delay + ms(5));
            hedged += 1;
            assert!(hedged < 50, "stuck at {delay:?}: {latency:?}");
        }
        assert!(hedged > 1);
    }

    #[test]
    fn a_cancelled_request_only_ever_raises_the_estimate() {
        let mut latency = Latency::default();
        for _ in 0..20 {
            latency.observe(ms(50));
        }
        let before = latency;
        // Cancelled after 10 ms: no news about a peer that usually takes 50.
        latency.outlasted(ms(10));
        assert_eq!(latency, before);
        latency.outlasted(ms(300));
        assert!(latency.estimate() > before.estimate());
        // Nothing known: the elapsed time is the best guess.
        let mut cold = Latency::default();
        cold.outlasted(ms(40));
        assert_eq!(cold.estimate(), Some(ms(40)));
    }
}
