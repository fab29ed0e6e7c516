//! The size proof: the first thing a fetch needs, hedged across the holders, with the
//! first data asked for on the same round trip.
//!
//! Each holder asked for the proof (the object's last chunk group) is asked, on the
//! same round trip, for the start of the object too (an *early GET*, its size still a
//! claim). With one holder the early GET is the whole object; with several it is the
//! first piece (`schedule::FIRST_PIECE`), since the others will fetch the rest in
//! pieces of their own (`schedule.rs`). The winner's early GET becomes the first
//! request of the first fetch of the whole object, once its claim matches the proven
//! size. The others are cancelled with the proofs that lost.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bao_tree::{ChunkNum, ChunkRanges};
use fleetcache_store::Hash;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::client::{self, PeerError, VerifiedStream};
use crate::fetch::{Early, FetchError, Located, all_failed, count_hedge, fail};
use crate::peers::Peer;
use crate::schedule::FIRST_PIECE;
use crate::swarm::Inner;

/// Proves the size of `hash` from `holders` (best first). The first is asked; each
/// time the newest request has gone unanswered for its holder's hedge delay, or
/// every request in flight has failed, the next holder is asked as well. The first
/// verified proof wins; the others are cancelled. `Ok(None)` if every holder said it
/// no longer holds the object.
pub(crate) async fn prove(
    inner: &Arc<Inner>,
    hash: Hash,
    holders: Vec<Arc<Peer>>,
) -> Result<Option<Located>, FetchError> {
    // One holder: the early GET is the whole object, as a single-source fetch wants.
    // Several: only the first piece; the schedule gives out the rest.
    let early_end = if holders.len() > 1 {
        FIRST_PIECE
    } else {
        u64::MAX
    };
    let mut asks = Asks {
        set: JoinSet::new(),
        pending: Vec::new(),
        next: 0,
        early: Vec::new(),
        early_end,
    };
    let mut last_failure = None;
    loop {
        if asks.set.is_empty() {
            asks.pending.clear();
            if !asks.ask_next(inner, hash, &holders) {
                break;
            }
        }
        let hedge_at = asks.pending.last().and_then(|&(i, asked)| {
            let more = asks.next < holders.len();
            more.then(|| asked + holders[i].hedge_delay(inner.hedging))
        });
        let joined = tokio::select! {
            joined = asks.set.join_next() => joined,
            () = tokio::time::sleep_until(hedge_at.unwrap_or_else(Instant::now)),
                if hedge_at.is_some() =>
            {
                let slow = asks.pending.last().map(|&(i, _)| holders[i].clone());
                if asks.ask_next(inner, hash, &holders)
                    && let Some(slow) = slow
                {
                    count_hedge(inner, &slow);
                    tracing::debug!(slow = %slow.addr, "size proof hedged");
                }
                continue;
            }
        };
        // A task that could not finish (it cannot panic; aborted only on drop).
        let Some(Ok((i, answer))) = joined else {
            continue;
        };
        let Some(at) = asks.pending.iter().position(|&(j, _)| j == i) else {
            continue;
        };
        let (_, asked) = asks.pending.remove(at);
        let peer = &holders[i];
        match answer {
            Ok(size) => {
                peer.latency(|latency| latency.observe(asked.elapsed()));
                peer.counters.transfers.fetch_add(1, Ordering::Relaxed);
                if asks.pending.iter().any(|&(j, _)| j < i) {
                    inner.counters.hedges_won.fetch_add(1, Ordering::Relaxed);
                }
                // The others lost the race: they had taken at least this long.
                for &(j, asked) in &asks.pending {
                    let elapsed = asked.elapsed();
                    holders[j].latency(|latency| latency.outlasted(elapsed));
                }
                let early = asks.take_early(i).map(|get| Early {
                    get,
                    end: early_end,
                });
                // Dropping the set aborts the losers; their streams are stopped.
                drop(asks);
                let mut sources = holders;
                sources.rotate_left(i);
                return Ok(Some(Located {
                    hash,
                    size,
                    sources,
                    early: Arc::new(Mutex::new(early)),
                    inner: inner.clone(),
                }));
            }
            // Evicted since it answered HAVE: as if it had said no.
            Err(PeerError::NotFound) => {}
            Err(err) => {
                fail(inner, peer, &err);
                last_failure = Some(err);
            }
        }
    }
    match last_failure {
        None => Ok(None),
        Some(err) => Err(all_failed(hash, &err)),
    }
}

/// The size proofs of one `prove`.
struct Asks {
    set: JoinSet<(usize, Result<u64, PeerError>)>,
    /// Requests in flight: the holder's index and when it was asked, oldest first.
    pending: Vec<(usize, Instant)>,
    /// The next holder to ask.
    next: usize,
    /// Each asked holder's early GET, by holder index.
    early: Vec<(usize, EarlyGet)>,
    /// Where the early GETs end (in bytes; `u64::MAX`: the whole object).
    early_end: u64,
}

/// A GET of the start of the object sent with the size proof, its size a claim until
/// the proof verifies; aborted (its stream stopped) when dropped unused.
pub(crate) type EarlyGet = AbortOnDropHandle<Result<(u64, VerifiedStream), PeerError>>;

impl Asks {
    /// Asks the next holder that is up; false if none is left.
    fn ask_next(&mut self, inner: &Inner, hash: Hash, holders: &[Arc<Peer>]) -> bool {
        let stall = inner.peer_timeout;
        let ranges = if self.early_end == u64::MAX {
            ChunkRanges::all()
        } else {
            ChunkRanges::from(ChunkNum(0)..ChunkNum(self.early_end.div_ceil(1024)))
        };
        while let Some(peer) = holders.get(self.next) {
            let i = self.next;
            self.next += 1;
            let Some(connection) = peer.connection() else {
                continue;
            };
            let whole = connection.clone();
            let ranges = ranges.clone();
            let early = tokio::spawn(
                async move { VerifiedStream::open(&whole, hash, &ranges, None, stall).await }
                    .in_current_span(),
            );
            self.early.push((i, AbortOnDropHandle::new(early)));
            self.set.spawn(
                async move { (i, client::prove_size(&connection, hash, stall).await) }
                    .in_current_span(),
            );
            self.pending.push((i, Instant::now()));
            return true;
        }
        false
    }

    /// The early GET of holder `i`, for the fetch that follows its proof.
    fn take_early(&mut self, i: usize) -> Option<EarlyGet> {
        let at = self.early.iter().position(|(j, _)| *j == i)?;
        Some(self.early.swap_remove(at).1)
    }
}
