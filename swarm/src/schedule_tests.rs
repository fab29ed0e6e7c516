//! The schedule without sockets: pieces, order, windows, races and give-backs, with
//! time passed in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const MIB: u64 = 1 << 20;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn views(n: usize) -> Vec<HolderView> {
    vec![
        HolderView {
            usable: true,
            latency: ms(1),
            hedge_delay: ms(30),
        };
        n
    ]
}

/// The byte at `offset` of the test object.
fn byte(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// The group at `offset` (aligned) of an object of `size` bytes, as a holder sends it.
fn group(offset: u64, size: u64) -> Bytes {
    let end = (offset + GROUP).min(size);
    (offset..end).map(byte).collect::<Vec<u8>>().into()
}

/// The groups a GET of `range` brings, in order.
fn groups(range: &Range<u64>, size: u64) -> Vec<(u64, Bytes)> {
    let mut at = align_down(range.start);
    let mut out = Vec::new();
    while at < range.end && at < size {
        out.push((at, group(at, size)));
        at += GROUP;
    }
    out
}

/// Delivers every group of `start` to the schedule, the first at `now - 10 ms` and
/// the rest at `now` (so the holder shows a rate); returns what the last one did,
/// with the bytes taken from all of them.
fn deliver_all(schedule: &mut Schedule, start: &Start, size: u64, now: Instant) -> Accepted {
    let mut last = Accepted::default();
    let mut bytes = 0;
    for (i, (offset, data)) in groups(&start.range, size).into_iter().enumerate() {
        let at = if i == 0 { now - ms(10) } else { now };
        last = schedule.accept(start.id, offset, &data, at);
        bytes += last.bytes;
    }
    last.bytes = bytes;
    last
}

/// Everything deliverable now, checked against the object.
fn drain(schedule: &mut Schedule, delivered: &mut u64) {
    while let Some(bytes) = schedule.take_ready() {
        for (i, b) in bytes.iter().enumerate() {
            assert_eq!(
                *b,
                byte(*delivered + i as u64),
                "byte {}",
                *delivered + i as u64
            );
        }
        *delivered += bytes.len() as u64;
    }
}

#[test]
fn one_holder_fetches_the_whole_range_in_one_request() {
    let size = 5 * MIB + 123;
    let now = Instant::now();
    let mut schedule = Schedule::new(0..size, 1, None);
    let starts = schedule.plan(&views(1), now, now);
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert_eq!(starts[0].range, 0..size);
    assert_eq!(starts[0].why, Why::Piece);
    // Nothing more while it runs: no second request, no hedge before the delay.
    assert!(schedule.plan(&views(1), now, now + ms(5)).is_empty());
    let mut delivered = 0;
    for (offset, data) in groups(&starts[0].range, size) {
        let accepted = schedule.accept(starts[0].id, offset, &data, now + ms(1));
        assert_eq!(accepted.bytes, data.len() as u64);
        drain(&mut schedule, &mut delivered);
        // In order: every group leaves as soon as it comes.
        assert_eq!(delivered, offset + data.len() as u64);
    }
    assert!(schedule.done());
    assert!(!schedule.running());
}

#[test]
fn the_early_get_is_the_whole_object_for_one_holder_and_the_first_piece_for_several() {
    let size = 10 * MIB;
    let now = Instant::now();
    let mut single = Schedule::new(0..size, 1, Some(u64::MAX));
    let starts = single.plan(&views(1), now, now);
    assert_eq!(starts.len(), 1);
    assert_eq!(
        (starts[0].range.clone(), starts[0].why),
        (0..size, Why::Early)
    );

    let mut several = Schedule::new(0..size, 2, Some(FIRST_PIECE));
    let starts = several.plan(&views(2), now, now);
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(starts[0].holder, 0);
    assert_eq!(
        (starts[0].range.clone(), starts[0].why),
        (0..FIRST_PIECE, Why::Early)
    );
    assert_eq!(starts[1].holder, 1);
    assert_eq!(starts[1].range.start, FIRST_PIECE);
    assert_eq!(starts[1].why, Why::Piece);

    // Holder 0 gone before its early piece started: anyone takes it, as a plain piece.
    let mut orphaned = Schedule::new(0..size, 2, Some(FIRST_PIECE));
    let mut view = views(2);
    view[0].usable = false;
    let starts = orphaned.plan(&view, now, now);
    assert_eq!(starts.len(), 1);
    assert_eq!(
        (starts[0].holder, starts[0].range.clone()),
        (1, 0..FIRST_PIECE)
    );
    assert_eq!(starts[0].why, Why::Piece);
}

#[test]
fn two_holders_share_the_range_and_bytes_leave_in_order_once_each() {
    let size = 64 * MIB + 1000;
    let mut now = Instant::now();
    let mut schedule = Schedule::new(0..size, 2, Some(FIRST_PIECE));
    let view = views(2);
    let mut running: Vec<Start> = schedule.plan(&view, now, now);
    let mut from = [0u64; 2];
    let mut delivered = 0;
    let mut pieces = Vec::new();
    let mut rounds = 0;
    // Holder 1 is twice as fast as holder 0: it completes two pieces per round.
    while !schedule.done() {
        rounds += 1;
        assert!(rounds < 1000, "never finished");
        now += ms(50);
        let mut next = Vec::new();
        for start in running.drain(..) {
            if schedule.piece_of(start.id).is_none() {
                // It lost a race to a steal.
                continue;
            }
            let turns = if start.holder == 1 { 2 } else { 1 };
            if rounds % 2 == 0 || turns == 2 {
                let done = deliver_all(&mut schedule, &start, size, now);
                assert!(done.completed, "{start:?}");
                from[start.holder] += done.bytes;
                pieces.push(start.range.clone());
            } else {
                next.push(start);
            }
        }
        running = next;
        drain(&mut schedule, &mut delivered);
        running.extend(schedule.plan(&view, now, now));
    }
    assert_eq!(delivered, size);
    assert_eq!(from[0] + from[1], size, "a byte fetched twice");
    assert!(
        from[1] > from[0],
        "the faster holder should fetch more: {from:?}"
    );
    assert!(from[0] > 0, "the slower holder still helps: {from:?}");
    // Pieces are whole groups (but the last), tile the object, and shrink to the end.
    pieces.sort_by_key(|r| r.start);
    let mut at = 0;
    for piece in &pieces {
        assert_eq!(piece.start, at);
        assert!(piece.end == size || piece.end % GROUP == 0, "{piece:?}");
        assert!(
            piece.end - piece.start <= MAX_PIECE + MIN_PIECE,
            "{piece:?}"
        );
        at = piece.end;
    }
    assert_eq!(at, size);
    let last = pieces.last().unwrap();
    assert!(
        last.end - last.start < MAX_PIECE,
        "pieces should shrink: {last:?}"
    );
}

#[test]
fn pieces_ahead_of_delivery_are_bounded_by_the_window() {
    let size = 256 * MIB;
    let mut now = Instant::now();
    let mut schedule = Schedule::new(0..size, 2, None);
    let mut view = views(2);
    // No hedges here: the window alone holds holder 1 back.
    view[0].hedge_delay = Duration::from_secs(3600);
    let starts = schedule.plan(&view, now, now);
    assert_eq!(starts.len(), 2);
    // Holder 0 never answers its piece, the first; holder 1 fetches on and on.
    let stuck = starts.iter().find(|s| s.holder == 0).unwrap().clone();
    let mut fast = starts.iter().find(|s| s.holder == 1).unwrap().clone();
    let mut ahead = 0;
    for rounds in 0.. {
        assert!(rounds < 1000, "never stopped");
        now += ms(10);
        assert!(deliver_all(&mut schedule, &fast, size, now).completed);
        ahead = ahead.max(fast.range.end);
        // Nothing can leave: the first piece is missing.
        assert!(schedule.take_ready().is_none());
        let next: Vec<Start> = schedule.plan(&view, now, now);
        match next.iter().find(|s| s.holder == 1 && s.why == Why::Piece) {
            Some(start) => fast = start.clone(),
            None => break,
        }
    }
    assert!(
        ahead <= 2 * 2 * MAX_PIECE,
        "fetched {ahead} bytes ahead of a missing first piece"
    );
    assert!(ahead > 2 * MAX_PIECE, "stopped early, at {ahead}");
    assert!(schedule.running(), "the stuck request is still there");
    let _ = stuck;
}

#[test]
fn an_idle_holder_steals_a_piece_its_holder_would_finish_much_later() {
    let size = 64 * MIB;
    let mut now = Instant::now();
    let mut schedule = Schedule::new(0..size, 2, None);
    let view = views(2);
    let starts = schedule.plan(&view, now, now);
    let slow = starts.iter().find(|s| s.holder == 0).unwrap().clone();
    let fast = starts.iter().find(|s| s.holder == 1).unwrap().clone();
    // The slow holder sends one group; the fast one fills the window.
    now += ms(10);
    let (offset, data) = groups(&slow.range, size).remove(0);
    schedule.accept(slow.id, offset, &data, now);
    let mut fast = Some(fast);
    let mut rounds = 0;
    let stolen = loop {
        rounds += 1;
        assert!(rounds < 1000, "never stolen");
        now += ms(20);
        if let Some(piece) = fast.take() {
            assert!(deliver_all(&mut schedule, &piece, size, now).completed);
        }
        let next = schedule.plan(&view, now, now);
        if let Some(steal) = next.iter().find(|s| matches!(s.why, Why::Steal { .. })) {
            break steal.clone();
        }
        match next.iter().find(|s| s.holder == 1) {
            Some(start) if start.why == Why::Piece => fast = Some(start.clone()),
            Some(other) => panic!("unexpected {other:?}"),
            None => now += ms(300),
        }
    };
    assert_eq!(stolen.holder, 1);
    assert_eq!(stolen.why, Why::Steal { slow: 0 });
    assert_eq!(stolen.range, GROUP..slow.range.end, "resumes at the cursor");
    // The thief delivers the cursor's group first: the slow request lost and is
    // benched; the thief's bytes are taken from the cursor on.
    now += ms(2);
    let (offset, data) = groups(&stolen.range, size).remove(0);
    let accepted = schedule.accept(stolen.id, offset, &data, now);
    assert!(accepted.won_race);
    assert_eq!(accepted.loser.map(|l| (l.id, l.holder)), Some((slow.id, 0)));
    assert_eq!(accepted.bytes, GROUP);
    // Benched: the slow holder gets no new piece while the other works.
    let next = schedule.plan(&view, now, now);
    assert!(next.iter().all(|s| s.holder != 0), "{next:?}");
    // Late bytes from the cancelled request change nothing.
    let late = schedule.accept(slow.id, 2 * GROUP, &group(2 * GROUP, size), now);
    assert_eq!(late, Accepted::default());
}

#[test]
fn the_piece_blocking_delivery_is_hedged_after_its_holders_delay() {
    let size = 32 * MIB;
    let now = Instant::now();
    let mut schedule = Schedule::new(0..size, 2, Some(FIRST_PIECE));
    let mut view = views(2);
    view[0].hedge_delay = ms(100);
    let starts = schedule.plan(&view, now, now);
    let early = starts[0].clone();
    assert_eq!(early.why, Why::Early);
    assert_eq!(schedule.hedge_at(&view, now), Some(now + ms(100)));
    assert_eq!(schedule.wake_at(&view, now, now), Some(now + ms(100)));
    // Not before the delay.
    assert!(
        schedule
            .plan(&view, now, now + ms(99))
            .iter()
            .all(|s| s.why.races().is_none())
    );
    let later = now + ms(100);
    let hedge = schedule
        .plan(&view, now, later)
        .into_iter()
        .find(|s| s.why.races().is_some())
        .expect("a hedge");
    assert_eq!(hedge.why, Why::Hedge { slow: 0 });
    assert_eq!(hedge.holder, 1);
    assert_eq!(hedge.range, early.range);
    // One race at a time.
    assert_eq!(schedule.hedge_at(&view, now), None);
    // The slow holder delivers the first group after all: the hedge lost, nobody is
    // benched, and only its bytes count.
    let first = group(0, size);
    let accepted = schedule.accept(early.id, 0, &first, later + ms(1));
    assert!(!accepted.won_race);
    assert_eq!(accepted.loser.map(|l| l.id), Some(hedge.id));
    assert_eq!(accepted.loser.and_then(|l| l.unanswered_for), Some(ms(1)));
    assert_eq!(accepted.first_group, Some(ms(101)));
    let again = schedule.accept(hedge.id, 0, &first, later + ms(2));
    assert_eq!(again, Accepted::default());
    // The next hedge waits for the spacing, counted from the last one.
    let hedge_at = schedule.hedge_at(&view, later + ms(1)).unwrap();
    assert!(hedge_at >= later + HEDGE_SPACING, "{:?}", hedge_at - later);
}

#[test]
fn a_failed_requests_piece_is_resumed_by_another_holder_at_its_cursor() {
    let size = 8 * MIB;
    let now = Instant::now();
    let mut schedule = Schedule::new(0..size, 2, None);
    let mut view = views(2);
    let starts = schedule.plan(&view, now, now);
    let first = starts.iter().find(|s| s.range.start == 0).unwrap().clone();
    for (offset, data) in groups(&first.range, size).into_iter().take(3) {
        schedule.accept(first.id, offset, &data, now);
    }
    let mut delivered = 0;
    drain(&mut schedule, &mut delivered);
    assert_eq!(delivered, 3 * GROUP);
    assert_eq!(schedule.remove_request(first.id), Some(first.holder));
    view[first.holder].usable = false;
    let other = 1 - first.holder;
    // The other holder finishes its own piece, then takes up the given-back one.
    let second = starts.iter().find(|s| s.holder == other).unwrap().clone();
    deliver_all(&mut schedule, &second, size, now);
    let next = schedule.plan(&view, now, now);
    let resumed = next
        .iter()
        .find(|s| s.range.start == 3 * GROUP)
        .expect("resumed");
    assert_eq!(resumed.holder, other);
    assert_eq!(resumed.range.end, first.range.end);
    assert!(deliver_all(&mut schedule, resumed, size, now).completed);
    drain(&mut schedule, &mut delivered);
    assert_eq!(delivered, second.range.end);
}

#[test]
fn a_holder_near_the_end_of_its_piece_is_given_the_next_one() {
    let size = 64 * MIB;
    let now = Instant::now();
    let mut schedule = Schedule::new(0..size, 2, None);
    let mut view = views(2);
    view[0].latency = ms(20);
    let starts = schedule.plan(&view, now, now);
    let mine = starts.iter().find(|s| s.holder == 0).unwrap().clone();
    let all = groups(&mine.range, size);
    // Half the piece in 100 ms: the rest takes 100 ms more, five round trips.
    let half = all.len() / 2;
    for (offset, data) in &all[..half] {
        schedule.accept(mine.id, *offset, data, now + ms(1));
    }
    let at = now + ms(101);
    schedule.accept(mine.id, all[half].0, &all[half].1, at);
    assert!(schedule.plan(&view, now, at).iter().all(|s| s.holder != 0));
    // With two groups left (about 1.6 ms at this rate), the next piece is asked for.
    for (offset, data) in &all[half + 1..all.len() - 2] {
        schedule.accept(mine.id, *offset, data, at);
    }
    let next = schedule.plan(&view, now, at + ms(100));
    let piped: Vec<&Start> = next.iter().filter(|s| s.holder == 0).collect();
    assert_eq!(piped.len(), 1, "{next:?}");
    assert_eq!(piped[0].why, Why::Piece);
    // Two at most.
    assert!(
        schedule
            .plan(&view, now, at + ms(100))
            .iter()
            .all(|s| s.holder != 0)
    );
}

#[test]
fn at_most_four_holders_work_on_one_fetch() {
    let size = 256 * MIB;
    let now = Instant::now();
    let mut schedule = Schedule::new(0..size, 6, None);
    let starts = schedule.plan(&views(6), now, now);
    let mut holders: Vec<usize> = starts.iter().map(|s| s.holder).collect();
    holders.dedup();
    assert_eq!(holders, [0, 1, 2, 3]);
}

#[test]
fn a_range_that_is_not_group_aligned_is_trimmed_to_its_bytes() {
    let size = 20 * MIB;
    let range = 5_000_123..5_000_223;
    let now = Instant::now();
    let mut schedule = Schedule::new(range.clone(), 3, None);
    let starts = schedule.plan(&views(3), now, now);
    assert_eq!(starts.len(), 1, "a small range is one piece: {starts:?}");
    assert_eq!(starts[0].range, range);
    let (offset, data) = groups(&starts[0].range, size).remove(0);
    let accepted = schedule.accept(starts[0].id, offset, &data, now);
    assert!(accepted.completed);
    assert_eq!(accepted.bytes, 100);
    let bytes = schedule.take_ready().unwrap();
    assert_eq!(bytes.len(), 100);
    assert_eq!(bytes[0], byte(range.start));
    assert!(schedule.done());
}

#[test]
fn nothing_running_ignores_benches() {
    let size = 16 * MIB;
    let now = Instant::now();
    let mut schedule = Schedule::new(0..size, 2, None);
    let view = views(2);
    let starts = schedule.plan(&view, now, now);
    schedule.bench(0, now);
    // Holder 0 is benched but the fetch would stall without it.
    for start in &starts {
        schedule.remove_request(start.id);
    }
    let mut only_zero = view.clone();
    only_zero[1].usable = false;
    let next = schedule.plan(&only_zero, now, now);
    assert!(next.iter().any(|s| s.holder == 0), "{next:?}");
}
