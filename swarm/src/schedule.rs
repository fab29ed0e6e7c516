//! Which holder fetches which bytes of a range, and in what order verified bytes leave
//! (sans-IO: the fetch in `fetch.rs` opens the streams, feeds every verified group
//! here with the time it arrived, and asks what to start next; nothing here reads a
//! clock or touches a socket).
//!
//! The range is cut into *pieces*, runs of whole 16 KiB groups. Each holder works on
//! one piece at a time (a verified ranged GET of it), and is given its next piece
//! when the current one is about two of its round trips from its end, so a holder in
//! full flow never waits for a request. A holder that finishes takes the next piece nobody has
//! (work stealing), so a slower holder simply finishes fewer. Piece sizes are
//! *guided*: the bytes not yet given out divided by twice the number of holders,
//! clamped to [`MIN_PIECE`] ..= [`MAX_PIECE`] and scaled down for a holder slower than
//! the fastest, so pieces shrink towards the end and the last ones finish together.
//! With one holder the whole range is one piece: one GET, as a single-source fetch.
//!
//! Bytes leave in order, once each. A piece's verified bytes wait in its buffer until
//! every piece before it has left; new pieces are given out only within a *window*
//! of `2 × MAX_PIECE` per holder beyond the delivery point, which bounds that
//! memory. A holder that would go past it waits, or takes over a piece another holder
//! would finish much later (a *steal*, below).
//!
//! A piece has one request, or two while they race: the first to deliver the byte at
//! the piece's cursor stays and the other is cancelled. Races start two ways, at most
//! one at a time and one every [`HEDGE_SPACING`]:
//! - a *hedge*: the piece blocking delivery has kept us waiting longer than its
//!   holder's hedge delay (for its first group counted from the request, for a later
//!   one from its last progress or the moment we started waiting, whichever is later);
//!   another holder is asked for it from its cursor (see `latency.rs`);
//! - a *steal*: a holder with nothing to do (no piece left, or the window full) asks
//!   for the earliest piece whose holder, at the rate it is going, would finish it more
//!   than twice as late as the idle holder would at the rate it last showed.
//!
//! A holder whose request lost such a race is *benched*: given no new piece for half a
//! second, doubling each time in one fetch (capped at 8 s), unless nothing else is
//! running. A request that fails gives its piece back: the next holder with room
//! resumes it from its cursor.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

/// Bytes per chunk group: pieces are made of whole groups (bao-tree verifies groups).
pub(crate) const GROUP: u64 = 16 * 1024;
/// The smallest piece worth a request of its own.
pub(crate) const MIN_PIECE: u64 = 256 * 1024;
/// The largest piece: big enough that a request's round trip is small beside it,
/// small enough that a slow holder does not hold much up.
pub(crate) const MAX_PIECE: u64 = 2 << 20;
/// The first piece of a multi-holder fetch: the early GET sent with the size proof
/// asks for this much, before the size (and so the guided size) is known.
pub(crate) const FIRST_PIECE: u64 = 1 << 20;
/// At most this many holders serve one fetch at once.
pub(crate) const MAX_HOLDERS: usize = 4;
/// Requests one holder has in flight at once: its piece and the next one (or a race).
const PER_HOLDER: usize = 2;
/// Least time between two races (hedges or steals) of one fetch. On a lossy link
/// every repaired loss can look like a crawl for a moment; this keeps such a link to at
/// most four extra requests a second per transfer, while a real crawl is still left
/// within a quarter of a second (plus the hedge delay).
pub(crate) const HEDGE_SPACING: Duration = Duration::from_millis(250);
/// How much later than an idle holder the current one must be expected to finish a
/// piece before the idle one takes it over.
const STEAL_MARGIN: f64 = 2.0;
/// The first bench; doubled each time the same holder loses a race in one fetch.
const BENCH: Duration = Duration::from_millis(500);
const MAX_BENCH: Duration = Duration::from_secs(8);
/// How often an idle holder looks again whether a steal has become worth it.
const STEAL_RECHECK: Duration = Duration::from_millis(50);
/// A holder's next piece is asked for when its current one is this many of its round
/// trips from done.
const PIPELINE_ROUND_TRIPS: u32 = 2;

/// One request, named by the schedule.
pub(crate) type RequestId = u64;

/// What the schedule needs to know about a holder right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HolderView {
    /// Up, not caught lying, and its connection has not failed in this fetch.
    pub(crate) usable: bool,
    /// Its smoothed first-group latency.
    pub(crate) latency: Duration,
    /// How long a request to it may keep delivery waiting before a hedge.
    pub(crate) hedge_delay: Duration,
}

/// Why a request is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// The first piece, on the GET sent together with the size proof.
    Early,
    /// A piece nobody is fetching: a new one, or one a failed request gave back.
    Piece,
    /// The piece blocking delivery, because its holder `slow` is slower than its hedge
    /// delay.
    Hedge { slow: usize },
    /// A piece holder `slow` would finish much later than this idle holder.
    Steal { slow: usize },
}

impl Why {
    fn races(self) -> Option<usize> {
        match self {
            Why::Hedge { slow } | Why::Steal { slow } => Some(slow),
            Why::Early | Why::Piece => None,
        }
    }
}

/// A request to start: ask `holder` for `range` (from a piece's cursor to its end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Start {
    pub(crate) id: RequestId,
    pub(crate) holder: usize,
    pub(crate) range: Range<u64>,
    pub(crate) why: Why,
}

/// What a verified group did.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Accepted {
    /// Bytes taken from it (the rest came before the piece's cursor or after its end).
    pub(crate) bytes: u64,
    /// The request's first group: it came this long after the request was sent (not
    /// given for a request queued behind another to the same holder).
    pub(crate) first_group: Option<Duration>,
    /// The request racing this one for the piece, which lost and must be cancelled.
    pub(crate) loser: Option<Loser>,
    /// This request was a hedge or steal and delivered first.
    pub(crate) won_race: bool,
    /// The piece is complete: this request is done (its stream can be dropped).
    pub(crate) completed: bool,
}

/// A request cancelled because the other one on its piece delivered first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loser {
    pub(crate) id: RequestId,
    pub(crate) holder: usize,
    /// How long it had run without a verified group, if it never sent one.
    pub(crate) unanswered_for: Option<Duration>,
}

#[derive(Debug)]
struct Piece {
    start: u64,
    end: u64,
    /// Bytes before this are verified and taken (in `buffer`, or delivered).
    cursor: u64,
    /// Verified bytes not yet delivered, in order, ending at `cursor`.
    buffer: VecDeque<Bytes>,
    /// The requests fetching it: none (given back), one, or two racing.
    requests: Vec<RequestId>,
}

#[derive(Debug)]
struct Request {
    id: RequestId,
    holder: usize,
    /// The start of its piece (pieces are found by their start).
    piece: u64,
    why: Why,
    asked: Instant,
    /// Sent while its holder had another request running: its first group waited
    /// behind that one's bytes, so its latency says little about the holder's.
    queued: bool,
    /// When its first verified group came.
    answered: Option<Instant>,
    /// When it last delivered a verified item (a group or a pair).
    progress: Option<Instant>,
    /// Bytes taken from it.
    taken: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Holder {
    running: usize,
    /// Bytes per second over its last completed request, from its first group.
    rate: Option<f64>,
    benched_until: Option<Instant>,
    benches: u32,
}

/// The plan of one fetch: its pieces, who fetches them, and what may be delivered.
#[derive(Debug)]
pub(crate) struct Schedule {
    end: u64,
    /// The next byte to deliver.
    pos: u64,
    /// Bytes before this belong to a piece.
    frontier: u64,
    /// Pieces not yet fully delivered, in order, contiguous from `pos` to `frontier`.
    pieces: VecDeque<Piece>,
    requests: Vec<Request>,
    holders: Vec<Holder>,
    next_id: RequestId,
    /// The end of the early GET's piece, until that piece is handed out.
    early: Option<u64>,
    last_race: Option<Instant>,
}

impl Schedule {
    /// A schedule for `range` over `holders` holders (in the order they are preferred).
    /// `early`: the first piece is `range.start..early` (clamped to the range), to be
    /// fetched by holder 0 on the GET it was sent with the size proof.
    pub(crate) fn new(range: Range<u64>, holders: usize, early: Option<u64>) -> Schedule {
        let end = range.end.max(range.start);
        let mut schedule = Schedule {
            end,
            pos: range.start,
            frontier: range.start,
            pieces: VecDeque::new(),
            requests: Vec::new(),
            holders: vec![Holder::default(); holders],
            next_id: 0,
            early: None,
            last_race: None,
        };
        if let Some(early) = early
            && holders > 0
            && range.start < end
        {
            let piece_end = early.clamp(range.start + 1, end);
            schedule.push_piece(piece_end);
            schedule.early = Some(piece_end);
        }
        schedule
    }

    /// What is left to deliver.
    pub(crate) fn remaining(&self) -> Range<u64> {
        self.pos..self.end
    }

    /// Whether every byte has been delivered.
    pub(crate) fn done(&self) -> bool {
        self.pos >= self.end
    }

    /// Whether any request is running.
    #[cfg(test)]
    pub(crate) fn running(&self) -> bool {
        !self.requests.is_empty()
    }

    /// The next verified bytes in order, if they are here.
    pub(crate) fn take_ready(&mut self) -> Option<Bytes> {
        let piece = self.pieces.front_mut()?;
        let bytes = piece.buffer.pop_front()?;
        self.pos += bytes.len() as u64;
        if self.pos >= piece.end {
            self.pieces.pop_front();
        }
        Some(bytes)
    }

    /// Holders this fetch works with at once (`MAX_HOLDERS` at most), one for a
    /// single-holder fetch.
    fn width(&self) -> u64 {
        self.holders.len().clamp(1, MAX_HOLDERS) as u64
    }

    fn window_end(&self) -> u64 {
        self.pos
            .saturating_add(self.width() * PER_HOLDER as u64 * MAX_PIECE)
    }

    fn push_piece(&mut self, end: u64) {
        self.pieces.push_back(Piece {
            start: self.frontier,
            end,
            cursor: self.frontier,
            buffer: VecDeque::new(),
            requests: Vec::new(),
        });
        self.frontier = end;
    }

    /// The piece that starts at `start`, by index.
    fn piece_index(&self, start: u64) -> Option<usize> {
        // Pieces are contiguous: the one starting at `start` is the one whose end is
        // the first past it.
        let index = self.pieces.partition_point(|p| p.end <= start);
        (self.pieces.get(index)?.start == start).then_some(index)
    }

    fn request(&self, id: RequestId) -> Option<&Request> {
        self.requests.iter().find(|r| r.id == id)
    }

    /// Where the next new piece would end for a holder going at `scale` (its rate over
    /// the fastest holder's, 1 if unknown); `None` if there is none to give out now.
    fn next_piece_end(&self, scale: f64) -> Option<u64> {
        if self.frontier >= self.end {
            return None;
        }
        if self.width() == 1 {
            return Some(self.end);
        }
        let window_end = self.window_end();
        if self.frontier >= window_end {
            return None;
        }
        let rest = self.end - self.frontier;
        let guided = (rest / (2 * self.width())) as f64 * scale.clamp(0.125, 1.0);
        let size = (guided as u64).clamp(MIN_PIECE, MAX_PIECE);
        let mut end = align_down(self.frontier.saturating_add(size))
            .min(align_down(window_end))
            .min(self.end);
        if end <= self.frontier {
            end = align_down(self.frontier + GROUP).min(self.end);
        }
        // A tail smaller than a piece goes with this one rather than on its own.
        if self.end - end < MIN_PIECE {
            end = self.end;
        }
        Some(end)
    }

    /// The requests to start now, given each holder's view (indexed like the holders
    /// the schedule was made for), `waiting_since` (when delivery last moved or the
    /// caller started waiting, whichever is later) and `now`.
    pub(crate) fn plan(
        &mut self,
        views: &[HolderView],
        waiting_since: Instant,
        now: Instant,
    ) -> Vec<Start> {
        let mut starts = Vec::new();
        if self.done() {
            return starts;
        }
        let usable = |h: usize| views.get(h).is_some_and(|v| v.usable);
        // The early GET went to holder 0; if that holder is gone, its piece is
        // anyone's.
        if self.early.is_some() && !usable(0) {
            self.early = None;
        }
        // Benches only hold a holder back while another is working.
        let ignore_benches = self.requests.is_empty();
        for h in 0..self.holders.len() {
            if !usable(h) {
                continue;
            }
            if !ignore_benches
                && self.holders[h]
                    .benched_until
                    .is_some_and(|until| now < until)
            {
                continue;
            }
            while self.has_room(h, views, now) {
                let Some((index, range, why)) = self.next_work(h) else {
                    break;
                };
                starts.push(self.start(h, index, range, why, now));
            }
        }
        if let Some(start) = self.hedge(views, waiting_since, now) {
            starts.push(start);
        } else if let Some(start) = self.steal(views, now) {
            starts.push(start);
        }
        starts
    }

    /// Whether holder `h` may be given a piece now: it runs nothing (and the fetch is
    /// under `MAX_HOLDERS` holders), or its one request is about a round trip from
    /// the end of its piece.
    fn has_room(&self, h: usize, views: &[HolderView], now: Instant) -> bool {
        match self.holders[h].running {
            0 => self.holders.iter().filter(|x| x.running > 0).count() < MAX_HOLDERS,
            1 => {
                let Some(request) = self.requests.iter().find(|r| r.holder == h) else {
                    return false;
                };
                let Some(index) = self.piece_index(request.piece) else {
                    return false;
                };
                let piece = &self.pieces[index];
                if piece.requests.len() > 1 {
                    return false;
                }
                let Some(answered) = request.answered else {
                    return false;
                };
                let elapsed = now.saturating_duration_since(answered).as_secs_f64();
                if request.taken == 0 || elapsed <= 0.0 {
                    return false;
                }
                let rate = request.taken as f64 / elapsed;
                let left = (piece.end - piece.cursor) as f64 / rate;
                let round_trips = views
                    .get(h)
                    .map_or(Duration::ZERO, |v| v.latency * PIPELINE_ROUND_TRIPS);
                left <= round_trips.as_secs_f64()
            }
            _ => false,
        }
    }

    /// The next work for holder `h`: the earliest piece nobody fetches (given back),
    /// else a new piece. The early piece is for holder 0 alone while it may come.
    fn next_work(&mut self, h: usize) -> Option<(usize, Range<u64>, Why)> {
        for index in 0..self.pieces.len() {
            let piece = &self.pieces[index];
            if !piece.requests.is_empty() || piece.cursor >= piece.end {
                continue;
            }
            let range = piece.cursor..piece.end;
            if self.early == Some(piece.end) && index == 0 {
                if h != 0 {
                    continue;
                }
                self.early = None;
                return Some((index, range, Why::Early));
            }
            return Some((index, range, Why::Piece));
        }
        let end = self.next_piece_end(self.scale(h))?;
        let start = self.frontier;
        self.push_piece(end);
        Some((self.pieces.len() - 1, start..end, Why::Piece))
    }

    /// Holder `h`'s rate over the fastest known rate (1 when unknown).
    fn scale(&self, h: usize) -> f64 {
        let best = self
            .holders
            .iter()
            .filter_map(|x| x.rate)
            .fold(0.0, f64::max);
        match self.holders[h].rate {
            Some(rate) if best > 0.0 => rate / best,
            _ => 1.0,
        }
    }

    fn start(
        &mut self,
        holder: usize,
        index: usize,
        range: Range<u64>,
        why: Why,
        now: Instant,
    ) -> Start {
        let id = self.next_id;
        self.next_id += 1;
        let piece = self.pieces[index].start;
        self.pieces[index].requests.push(id);
        let queued = self.holders[holder].running > 0;
        self.holders[holder].running += 1;
        self.requests.push(Request {
            id,
            holder,
            piece,
            why,
            asked: now,
            queued,
            answered: None,
            progress: None,
            taken: 0,
        });
        if why.races().is_some() {
            self.last_race = Some(now);
        }
        Start {
            id,
            holder,
            range,
            why,
        }
    }

    fn racing(&self) -> bool {
        self.pieces.iter().any(|p| p.requests.len() > 1)
    }

    fn may_race(&self, now: Instant) -> bool {
        !self.racing()
            && self
                .last_race
                .is_none_or(|last| now >= last + HEDGE_SPACING)
    }

    /// The holder to ask for a race against `slow`: usable, with room for one more
    /// request, idle ones first, then in preference order.
    fn spare(&self, slow: usize, views: &[HolderView]) -> Option<usize> {
        let active = self.holders.iter().filter(|x| x.running > 0).count();
        let candidates = (0..self.holders.len()).filter(|&h| {
            h != slow
                && views.get(h).is_some_and(|v| v.usable)
                && self.holders[h].running < PER_HOLDER
                && (self.holders[h].running > 0 || active < MAX_HOLDERS)
        });
        candidates.min_by_key(|&h| (self.holders[h].running, h))
    }

    /// When the piece blocking delivery should be hedged, if it has one request, a
    /// spare holder exists and no race is running.
    pub(crate) fn hedge_at(&self, views: &[HolderView], waiting_since: Instant) -> Option<Instant> {
        if self.racing() || self.done() {
            return None;
        }
        let head = self.pieces.front()?;
        let [id] = head.requests[..] else {
            return None;
        };
        let request = self.request(id)?;
        self.spare(request.holder, views)?;
        let delay = views.get(request.holder)?.hedge_delay;
        let since = match request.answered {
            None => request.asked,
            Some(_) => request.progress.unwrap_or(request.asked).max(waiting_since),
        };
        let at = since + delay;
        Some(match self.last_race {
            Some(last) => at.max(last + HEDGE_SPACING),
            None => at,
        })
    }

    fn hedge(
        &mut self,
        views: &[HolderView],
        waiting_since: Instant,
        now: Instant,
    ) -> Option<Start> {
        if self.hedge_at(views, waiting_since)? > now {
            return None;
        }
        let head = self.pieces.front()?;
        let slow = self.request(*head.requests.first()?)?.holder;
        let spare = self.spare(slow, views)?;
        let range = head.cursor..head.end;
        Some(self.start(spare, 0, range, Why::Hedge { slow }, now))
    }

    /// An idle holder with nothing else to do takes over the earliest piece whose
    /// holder would finish it more than `STEAL_MARGIN` times later than it would.
    fn steal(&mut self, views: &[HolderView], now: Instant) -> Option<Start> {
        if !self.may_race(now) || self.has_unclaimed_work() {
            return None;
        }
        for thief in 0..self.holders.len() {
            let Some(view) = views.get(thief).filter(|v| v.usable) else {
                continue;
            };
            let holder = self.holders[thief];
            let Some(rate) = holder.rate.filter(|r| *r > 0.0) else {
                continue;
            };
            if holder.running > 0 || holder.benched_until.is_some_and(|until| now < until) {
                continue;
            }
            if self.holders.iter().filter(|x| x.running > 0).count() >= MAX_HOLDERS {
                return None;
            }
            for index in 0..self.pieces.len() {
                let piece = &self.pieces[index];
                let [id] = piece.requests[..] else {
                    continue;
                };
                let Some(current) = self.request(id) else {
                    continue;
                };
                if current.holder == thief {
                    continue;
                }
                let left = (piece.end - piece.cursor) as f64;
                let thief_time = view.latency.as_secs_f64() + left / rate;
                let current_time = match current.answered {
                    Some(answered) => {
                        let elapsed = now.saturating_duration_since(answered).as_secs_f64();
                        if current.taken == 0 || elapsed <= 0.0 {
                            continue;
                        }
                        left / (current.taken as f64 / elapsed)
                    }
                    // Optimistic for a request still unanswered: it answers now and
                    // then goes as fast as the thief.
                    None => {
                        now.saturating_duration_since(current.asked).as_secs_f64() + left / rate
                    }
                };
                if current_time > STEAL_MARGIN * thief_time {
                    let slow = current.holder;
                    let range = piece.cursor..piece.end;
                    return Some(self.start(thief, index, range, Why::Steal { slow }, now));
                }
            }
        }
        None
    }

    /// Whether a holder could steal: usable, idle, not benched, its rate known.
    fn has_thief(&self, views: &[HolderView], now: Instant) -> bool {
        self.holders.iter().enumerate().any(|(h, holder)| {
            views.get(h).is_some_and(|v| v.usable)
                && holder.running == 0
                && holder.rate.is_some()
                && holder.benched_until.is_none_or(|until| now >= until)
        })
    }

    /// Whether some piece (new, or given back) is waiting for a holder.
    fn has_unclaimed_work(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| p.requests.is_empty() && p.cursor < p.end)
            || (self.frontier < self.end && self.frontier < self.window_end())
    }

    /// When a plan could start something it cannot start now: a hedge that is not due
    /// yet, a steal held back by the spacing between races, a bench ending. Only
    /// times after `now`: what is due was planned already.
    pub(crate) fn wake_at(
        &self,
        views: &[HolderView],
        waiting_since: Instant,
        now: Instant,
    ) -> Option<Instant> {
        let hedge = self.hedge_at(views, waiting_since);
        // An idle holder waiting for a steal to be worth it: rates change with time
        // alone (a silent request), so look again now and then.
        let steal = (!self.racing() && !self.has_unclaimed_work() && self.has_thief(views, now))
            .then(|| {
                let spaced = self.last_race.map_or(now, |last| last + HEDGE_SPACING);
                spaced.max(now + STEAL_RECHECK)
            });
        let benches = self
            .holders
            .iter()
            .filter_map(|h| h.benched_until)
            .filter(|&until| until > now)
            .min();
        [hedge, steal, benches]
            .into_iter()
            .flatten()
            .filter(|&at| at > now)
            .min()
    }

    /// Request `id` sent a verified item that is not a group (a hash pair).
    pub(crate) fn progress(&mut self, id: RequestId, now: Instant) {
        if let Some(request) = self.requests.iter_mut().find(|r| r.id == id) {
            request.progress = Some(now);
        }
    }

    /// Request `id` sent the verified group at `offset`.
    pub(crate) fn accept(
        &mut self,
        id: RequestId,
        offset: u64,
        data: &Bytes,
        now: Instant,
    ) -> Accepted {
        let mut accepted = Accepted::default();
        let Some(at) = self.requests.iter().position(|r| r.id == id) else {
            return accepted;
        };
        let request = &mut self.requests[at];
        request.progress = Some(now);
        if request.answered.is_none() {
            request.answered = Some(now);
            if !request.queued {
                accepted.first_group = Some(now.saturating_duration_since(request.asked));
            }
        }
        let (holder, why, piece_start) = (request.holder, request.why, request.piece);
        let Some(index) = self.piece_index(piece_start) else {
            return accepted;
        };
        let piece = &mut self.pieces[index];
        let group_end = offset.saturating_add(data.len() as u64);
        let from = offset.max(piece.cursor);
        let to = group_end.min(piece.end);
        // Only the group holding the cursor moves the piece on; earlier bytes came
        // already, and a group past the cursor cannot come from a stream that starts
        // at or before it.
        if offset > piece.cursor || to <= from {
            return accepted;
        }
        let (Ok(lo), Ok(hi)) = (usize::try_from(from - offset), usize::try_from(to - offset))
        else {
            return accepted;
        };
        piece.buffer.push_back(data.slice(lo..hi));
        piece.cursor = to;
        accepted.bytes = to - from;
        let complete = piece.cursor >= piece.end;
        let others: Vec<RequestId> = piece
            .requests
            .iter()
            .copied()
            .filter(|&r| r != id)
            .collect();
        piece.requests.retain(|&r| r == id);
        self.requests[at].taken += accepted.bytes;
        for other in others {
            if let Some(lost) = self.remove(other) {
                accepted.won_race = why.races().is_some();
                let unanswered_for = lost
                    .answered
                    .is_none()
                    .then(|| now.saturating_duration_since(lost.asked));
                accepted.loser = Some(Loser {
                    id: other,
                    holder: lost.holder,
                    unanswered_for,
                });
                if accepted.won_race {
                    self.bench(lost.holder, now);
                }
            }
        }
        if complete {
            accepted.completed = true;
            if let Some(done) = self.remove(id)
                && let Some(answered) = done.answered
            {
                let elapsed = now.saturating_duration_since(answered).as_secs_f64();
                if elapsed > 0.0 && done.taken > 0 {
                    self.holders[holder].rate = Some(done.taken as f64 / elapsed);
                }
            }
            if let Some(piece) = self.pieces.get_mut(index) {
                piece.requests.clear();
            }
        }
        accepted
    }

    fn bench(&mut self, holder: usize, now: Instant) {
        let Some(h) = self.holders.get_mut(holder) else {
            return;
        };
        let bench = BENCH.saturating_mul(1 << h.benches.min(8)).min(MAX_BENCH);
        h.benches += 1;
        h.benched_until = Some(now + bench);
    }

    /// Takes request `id` out of the schedule: it failed, was cancelled, or ended.
    /// Its piece, if nobody else fetches it, waits for the next holder with room.
    /// Returns its holder.
    pub(crate) fn remove_request(&mut self, id: RequestId) -> Option<usize> {
        self.remove(id).map(|r| r.holder)
    }

    fn remove(&mut self, id: RequestId) -> Option<Request> {
        let at = self.requests.iter().position(|r| r.id == id)?;
        let request = self.requests.swap_remove(at);
        if let Some(h) = self.holders.get_mut(request.holder) {
            h.running = h.running.saturating_sub(1);
        }
        if let Some(index) = self.piece_index(request.piece) {
            self.pieces[index].requests.retain(|&r| r != id);
        }
        Some(request)
    }

    /// Where request `id`'s piece stands: its cursor and end.
    pub(crate) fn piece_of(&self, id: RequestId) -> Option<Range<u64>> {
        let request = self.request(id)?;
        let piece = &self.pieces[self.piece_index(request.piece)?];
        Some(piece.cursor..piece.end)
    }
}

fn align_down(offset: u64) -> u64 {
    offset - offset % GROUP
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
