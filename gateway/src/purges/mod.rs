//! Fleet-wide purges: `POST /purge` on any node purges every node, and a node
//! that was away learns the purges it missed when it reconnects.
//!
//! One mechanism, three ways in:
//!
//! - **Push.** The node asked (`POST /purge`) gives the purge an id (128
//!   random bits) and its creation time, applies it, keeps it in its purge log
//!   (`log.rs`), and sends it with PURGE to every live peer at once, each
//!   within the exchange timeout. The answer lists the nodes that confirmed
//!   (itself first) and those that did not: failed, timed out, declined, or
//!   known and down. A node applies a purge from a peer once (by id), keeps
//!   it, and never sends it on: only the origin pushes, so purges cannot loop.
//! - **Pull.** A node reads a peer's log (PURGE_LOG) when a new connection to
//!   it comes up (`FleetService::peer_connected`: start, restart, the end of a
//!   partition; a peer up before the service was installed is read within a
//!   second) and then every `retention::sync_interval`, from where it read
//!   to last time (the peer's receive clock), so it also catches pushes that
//!   failed on a connection that stayed up. Every purge in the log it has not
//!   applied is applied and kept. Pages are at most 1 MiB; a longer log is
//!   read page by page, oldest first.
//! - **Forgotten purges.** Purges are kept for `swarm.purge_retention`. A node
//!   that may have missed one its peers no longer keep (out of touch with
//!   every peer for longer than that, or a peer dropped one this node had not
//!   read) drops all its URL entries (`retention::gap`).
//!
//! A node with peers that holds URL entries (a restart) reads its live peers'
//! logs before its listeners open (bounded by a few peer timeouts), so it does
//! not serve what was purged while it was down.
//!
//! Fills running during a purge: the store withdraws a record attached to an
//! open ingest when a removal selects it (`Ingest::attach_record`), so a fill
//! that was streaming when the purge arrived commits its body without the
//! purged entry, however long it runs. What the store cannot see, a response
//! received just before the purge but attached just after, or a node that
//! refilled from a peer that had not applied the purge yet, is caught by a
//! second sweep of every applied purge, two exchange timeouts later.

mod log;
mod message;
mod metrics;
mod retention;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fleetcache_store::Store;
use fleetcache_swarm::{NodeName, Owner, PeerError, PeerHandle, PeerState, Swarm};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::log::{LogError, PurgeLog, ReadTo};
use self::message::{LOG_PAGE_BUDGET, LogAnswer, Purge, PurgeId};
pub(crate) use self::metrics::PurgeMetrics;
use self::retention::Gap;
use crate::error::RequestError;
use crate::metrics::Metrics;
use crate::node::NodeState;
use crate::proxy::purge::{PurgeAnswer, PurgeRequest};
use crate::sync::{blocking, lock};

/// Most PURGE_LOG pages read from one peer in one go; the rest is read on the
/// next round, from the cursor the last page left.
const MAX_PAGES: usize = 16;
/// How often the start gate looks whether every live peer's log was read.
const GATE_POLL: Duration = Duration::from_millis(20);
/// A log read that found the peer's connection gone.
const NOT_CONNECTED: &str = "not connected";
/// How often the background task looks for live peers not read yet.
const NEW_PEER_POLL: Duration = Duration::from_secs(1);

/// What fleet purges need from the configuration (`settings.rs` builds it).
#[derive(Debug, Clone)]
pub(crate) struct PurgeSettings {
    /// The purge log's file, `<data_dir>/purges.redb`.
    pub(crate) path: PathBuf,
    /// How long a purge is kept (`swarm.purge_retention`).
    pub(crate) retention: Duration,
    /// Time for one PURGE or PURGE_LOG exchange, the peer's apply included.
    pub(crate) timeout: Duration,
    /// Longest a restarted node waits for its peers' logs before serving.
    pub(crate) first_read: Duration,
    /// Whether any peer is configured.
    pub(crate) has_peers: bool,
}

/// A node's part in fleet purges. Shared by the admin route, the swarm's
/// service and a background task that reads peers' logs.
#[derive(Debug)]
pub(crate) struct FleetPurges {
    store: Store,
    metrics: Arc<Metrics>,
    swarm: Swarm,
    log: Arc<PurgeLog>,
    retention: u64,
    timeout: Duration,
    first_read: Duration,
    has_peers: bool,
    /// One log read at a time: reads started by connections and by the timer
    /// would otherwise apply the same purges side by side.
    reading: tokio::sync::Mutex<()>,
    /// Peers whose log was read (or tried) since start: what the start gate
    /// waits for.
    read_once: Mutex<HashSet<NodeName>>,
    cancel: CancellationToken,
}

/// The answer to `POST /purge`: what this node removed (as before fleets),
/// the purge's ids, and which nodes confirmed it.
#[derive(Debug, Serialize)]
pub(crate) struct FleetAnswer {
    #[serde(flatten)]
    local: PurgeAnswer,
    /// One id per part (a body too large for one message is sent in parts).
    ids: Vec<String>,
    /// Nodes that applied it, this node first, with what each removed.
    confirmed: Vec<Confirmed>,
    /// Members that did not confirm; they learn it from a log when they can.
    unconfirmed: Vec<Unconfirmed>,
}

#[derive(Debug, Serialize)]
struct Confirmed {
    node: String,
    removed: u64,
}

#[derive(Debug, Serialize)]
struct Unconfirmed {
    node: String,
    error: String,
}

/// `POST /purge`: every node of the fleet, or this one alone without a swarm.
pub(crate) async fn purge(
    state: &NodeState,
    request: PurgeRequest,
) -> Result<FleetAnswer, RequestError> {
    match &state.purges {
        Some(purges) => purges.purge(request).await,
        None => {
            let local = crate::proxy::purge::purge(&state.store, &state.metrics, request).await?;
            Ok(FleetAnswer {
                local,
                ids: Vec::new(),
                confirmed: Vec::new(),
                unconfirmed: Vec::new(),
            })
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The live members but this node, one handle per node name.
fn live_peers(swarm: &Swarm) -> Vec<PeerHandle> {
    swarm
        .owners(&[])
        .into_iter()
        .filter_map(|owner| match owner {
            Owner::Peer(peer) => Some(peer),
            Owner::Local => None,
        })
        .collect()
}

async fn in_log<T: Send + 'static>(
    log: &Arc<PurgeLog>,
    work: impl FnOnce(&PurgeLog) -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    let log = Arc::clone(log);
    blocking(move || work(&log))
        .await
        .map_err(|err| LogError::Database(format!("purge log task failed: {err}")))?
}

impl FleetPurges {
    /// Opens the purge log. [`FleetPurges::start`] begins reading peers' logs.
    pub(crate) async fn open(
        settings: PurgeSettings,
        store: Store,
        metrics: Arc<Metrics>,
        swarm: Swarm,
    ) -> Result<Arc<FleetPurges>, LogError> {
        let path = settings.path.clone();
        let log = blocking(move || PurgeLog::open(&path))
            .await
            .map_err(|err| LogError::Database(format!("opening the purge log: {err}")))??;
        let purges = Arc::new(FleetPurges {
            store,
            metrics,
            swarm,
            log: Arc::new(log),
            retention: millis(settings.retention),
            timeout: settings.timeout,
            first_read: settings.first_read,
            has_peers: settings.has_peers,
            reading: tokio::sync::Mutex::new(()),
            read_once: Mutex::new(HashSet::new()),
            cancel: CancellationToken::new(),
        });
        purges.update_kept().await;
        Ok(purges)
    }

    /// Starts the background reads of peers' logs: a peer not read since this
    /// node started is read as soon as it is live (its first connection may
    /// have come up before the swarm had a service to tell), and every live
    /// peer is read again every sync interval.
    pub(crate) fn start(self: &Arc<Self>) {
        let interval = Duration::from_millis(retention::sync_interval(self.retention));
        let step = interval.min(NEW_PEER_POLL);
        let weak = Arc::downgrade(self);
        let cancel = self.cancel.clone();
        let span = tracing::info_span!("purge_logs");
        tokio::spawn(
            async move {
                let mut last_round = Instant::now();
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(step) => {}
                    }
                    let Some(this) = Weak::upgrade(&weak) else {
                        return;
                    };
                    if last_round.elapsed() >= interval {
                        last_round = Instant::now();
                        this.read_every_log().await;
                    } else {
                        for peer in this.unread_peers() {
                            this.read_log(peer).await;
                        }
                    }
                }
            }
            .instrument(span),
        );
    }

    /// Live peers whose log this node has not read since it started.
    fn unread_peers(&self) -> Vec<PeerHandle> {
        let read = lock(&self.read_once);
        live_peers(&self.swarm)
            .into_iter()
            .filter(|p| !read.contains(p.name()))
            .collect()
    }

    /// Stops background work and releases the log file.
    pub(crate) fn close(&self) {
        self.cancel.cancel();
        self.log.close();
    }

    /// The start gate: a node with peers that holds URL entries reads the
    /// logs of its live peers before it serves, so an entry purged while it
    /// was down is gone before the first request. Waits at most `first_read`;
    /// peers still unreachable then are read when they come up.
    pub(crate) async fn read_logs_before_serving(self: &Arc<Self>) {
        if !self.has_peers || self.store.stats().records == 0 {
            return;
        }
        let deadline = Instant::now() + self.first_read;
        loop {
            let peers = self.swarm.peers();
            let settled =
                !peers.is_empty() && peers.iter().all(|p| p.state != PeerState::Connecting);
            let unread = self.unread_peers();
            if settled && unread.is_empty() {
                tracing::info!("read the purge logs of every live peer before serving");
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    unread = unread.len(),
                    "serving before every peer's purge log was read; the rest are read when they answer"
                );
                return;
            }
            // A connection made before the service was installed fired no
            // `peer_connected`: read those peers here.
            for peer in unread {
                self.read_log(peer).await;
            }
            tokio::time::sleep(GATE_POLL).await;
        }
    }

    /// `POST /purge` on this node: apply, keep, push to every live peer.
    pub(crate) async fn purge(
        self: &Arc<Self>,
        request: PurgeRequest,
    ) -> Result<FleetAnswer, RequestError> {
        let created = now_ms();
        let purges: Vec<Purge> = message::split(request)?
            .into_iter()
            .map(|select| Purge {
                id: PurgeId::random(),
                created,
                origin: self.swarm.name().to_string(),
                select,
            })
            .collect();
        let ids: Vec<String> = purges.iter().map(|p| p.id.to_hex()).collect();
        let span = tracing::info_span!("fleet_purge", id = %ids.join(","));
        async move {
            let mut local = PurgeAnswer::default();
            for purge in &purges {
                local.merge(self.apply(purge, "local").await?);
            }
            let kept = purges.clone();
            let retention = self.retention;
            let keep = in_log(&self.log, move |log| {
                log.keep(&kept, created, retention, None)
            });
            if let Err(err) = keep.await {
                // Applied here and pushed below; peers that confirm keep it,
                // so nodes that are away still find it in their logs.
                tracing::error!("keeping the purge in this node's log: {err}");
            }
            self.update_kept().await;
            let (confirmed, unconfirmed) = self.push(&purges).await;
            let mut answer = FleetAnswer {
                confirmed: vec![Confirmed {
                    node: self.swarm.name().to_string(),
                    removed: local.removed as u64,
                }],
                local,
                ids,
                unconfirmed,
            };
            answer.confirmed.extend(confirmed);
            tracing::info!(
                confirmed = answer.confirmed.len(),
                unconfirmed = answer.unconfirmed.len(),
                "fleet purge"
            );
            Ok(answer)
        }
        .instrument(span)
        .await
    }

    /// Sends `purges` to every live peer at once; returns who confirmed and
    /// who did not (known members that are down included).
    async fn push(&self, purges: &[Purge]) -> (Vec<Confirmed>, Vec<Unconfirmed>) {
        let mut messages = Vec::with_capacity(purges.len());
        for purge in purges {
            match message::encode_push(purge) {
                Ok(bytes) => messages.push(bytes),
                // `split` keeps every part under the limit.
                Err(err) => tracing::error!("encoding a purge: {err}"),
            }
        }
        let live = live_peers(&self.swarm);
        let mut sends = JoinSet::new();
        for peer in &live {
            let peer = peer.clone();
            let swarm = self.swarm.clone();
            let messages = messages.clone();
            let timeout = self.timeout;
            self.metrics.purges.sent.inc_by(messages.len() as u64);
            let node = peer.name().to_string();
            sends.spawn(
                async move {
                    let mut removed = 0;
                    for message in messages {
                        let answer = match swarm.purge(&peer, message, timeout).await {
                            Ok(answer) => answer,
                            Err(PeerError::NotFound) => return (node, Err("declined".to_owned())),
                            Err(err) => return (node, Err(err.to_string())),
                        };
                        match message::decode_push_answer(&answer) {
                            Ok(answer) => removed += answer.removed,
                            Err(err) => return (node, Err(format!("bad answer: {err}"))),
                        }
                    }
                    (node, Ok(removed))
                }
                .in_current_span(),
            );
        }
        let mut confirmed = Vec::new();
        let mut unconfirmed = Vec::new();
        while let Some(joined) = sends.join_next().await {
            match joined {
                Ok((node, Ok(removed))) => confirmed.push(Confirmed { node, removed }),
                Ok((node, Err(error))) => {
                    tracing::warn!(peer = %node, "peer did not confirm the purge: {error}");
                    unconfirmed.push(Unconfirmed { node, error });
                }
                Err(err) => tracing::error!("a purge send task failed: {err}"),
            }
        }
        // Members this node knows by name but cannot reach now.
        let mut down: Vec<String> = self
            .swarm
            .peers()
            .into_iter()
            .filter(|p| p.state != PeerState::Up && p.state != PeerState::Myself)
            .filter_map(|p| p.name)
            .filter(|name| name != self.swarm.name() && live.iter().all(|l| l.name() != name))
            .map(|name| name.to_string())
            .collect();
        down.sort();
        down.dedup();
        unconfirmed.extend(down.into_iter().map(|node| Unconfirmed {
            node,
            error: "down".into(),
        }));
        confirmed.sort_by(|a, b| a.node.cmp(&b.node));
        unconfirmed.sort_by(|a, b| a.node.cmp(&b.node));
        self.metrics
            .purges
            .unconfirmed
            .inc_by(unconfirmed.len() as u64);
        (confirmed, unconfirmed)
    }

    /// Removes what `purge` selects now, and once more later (see the module
    /// docs: fills that were running, peers that had not applied it yet).
    async fn apply(
        self: &Arc<Self>,
        purge: &Purge,
        via: &'static str,
    ) -> Result<PurgeAnswer, RequestError> {
        let answer =
            crate::proxy::purge::purge(&self.store, &self.metrics, purge.select.clone()).await?;
        self.metrics.purges.applied.with_label_values(&[via]).inc();
        let weak = Arc::downgrade(self);
        let cancel = self.cancel.clone();
        let select = purge.select.clone();
        let delay = self.timeout * 2;
        tokio::spawn(
            async move {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                let Some(this) = weak.upgrade() else { return };
                match crate::proxy::purge::sweep(&this.store, &this.metrics, select).await {
                    Ok(swept) if swept.removed > 0 => {
                        tracing::info!(removed = swept.removed, "second sweep of a purge");
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!("second sweep of a purge: {err}"),
                }
            }
            .in_current_span(),
        );
        Ok(answer)
    }

    /// A PURGE from `from`: applied once, kept, confirmed; `None` declines.
    pub(crate) async fn on_push(
        self: &Arc<Self>,
        from: &NodeName,
        request: Bytes,
    ) -> Option<Bytes> {
        self.metrics
            .purges
            .received
            .with_label_values(&["push"])
            .inc();
        let purge = match message::decode_push(from.as_str(), &request) {
            Ok(purge) => purge,
            Err(err) => {
                tracing::warn!(peer = %from, "declined a PURGE: {err}");
                self.metrics
                    .purges
                    .declined
                    .with_label_values(&["purge"])
                    .inc();
                return None;
            }
        };
        let span = tracing::info_span!("purge_from_peer", peer = %from, id = %purge.id);
        async move {
            let id = purge.id;
            let known = match in_log(&self.log, move |log| log.contains(&id)).await {
                Ok(known) => known,
                Err(err) => {
                    tracing::warn!("declined a PURGE: {err}");
                    return None;
                }
            };
            if known {
                return message::encode_push_answer(false, 0).ok();
            }
            let answer = match self.apply(&purge, "push").await {
                Ok(answer) => answer,
                Err(err) => {
                    tracing::warn!("declined a PURGE: applying it failed: {err}");
                    return None;
                }
            };
            let now = now_ms();
            let retention = self.retention;
            let kept = vec![purge];
            if let Err(err) =
                in_log(&self.log, move |log| log.keep(&kept, now, retention, None)).await
            {
                tracing::warn!("keeping a peer's purge: {err}");
            }
            self.update_kept().await;
            message::encode_push_answer(true, answer.removed as u64).ok()
        }
        .instrument(span)
        .await
    }

    /// A PURGE_LOG from `from`: one page of this node's log; `None` declines.
    pub(crate) async fn on_log_request(&self, from: &NodeName, request: Bytes) -> Option<Bytes> {
        let after = match message::decode_log_request(&request) {
            Ok(after) => after,
            Err(err) => {
                tracing::warn!(peer = %from, "declined a PURGE_LOG: {err}");
                self.metrics
                    .purges
                    .declined
                    .with_label_values(&["purge_log"])
                    .inc();
                return None;
            }
        };
        let now = now_ms();
        let retention = self.retention;
        let page = in_log(&self.log, move |log| {
            log.page(after, LOG_PAGE_BUDGET, now, retention)
        })
        .await;
        let page = match page {
            Ok(page) => page,
            Err(err) => {
                tracing::warn!(peer = %from, "declined a PURGE_LOG: {err}");
                return None;
            }
        };
        let answer = LogAnswer {
            v: message::FORMAT,
            through: page.through,
            dropped_through: page.dropped_through,
            more: page.more,
            purges: page.purges,
        };
        match message::encode_log_answer(&answer) {
            Ok(bytes) => Some(bytes),
            Err(err) => {
                tracing::error!(peer = %from, "answering a PURGE_LOG: {err}");
                None
            }
        }
    }

    /// A new connection to `peer` is up: read its log.
    pub(crate) fn on_peer_connected(self: &Arc<Self>, peer: PeerHandle) {
        let this = Arc::clone(self);
        tokio::spawn(async move { this.read_log(peer).await });
    }

    async fn read_every_log(self: &Arc<Self>) {
        let now = now_ms();
        let retention = self.retention;
        if let Err(err) = in_log(&self.log, move |log| log.prune(now, retention)).await {
            tracing::warn!("pruning the purge log: {err}");
        }
        self.update_kept().await;
        for peer in live_peers(&self.swarm) {
            if self.cancel.is_cancelled() {
                return;
            }
            self.read_log(peer).await;
        }
    }

    /// Reads `peer`'s log from where this node read to last time and applies
    /// what it has not applied.
    async fn read_log(self: &Arc<Self>, peer: PeerHandle) {
        let _reading = self.reading.lock().await;
        let name = peer.name().clone();
        let span = tracing::info_span!("purge_log_read", peer = %name);
        async {
            match self.read_pages(&peer).await {
                Ok(applied) => {
                    if applied > 0 {
                        tracing::info!(applied, "applied purges from a peer's log");
                    }
                    let reads = &self.metrics.purges.log_reads;
                    reads.with_label_values(&["ok"]).inc();
                }
                Err(err) => {
                    if err == NOT_CONNECTED {
                        // Up a moment ago, its connection gone: it is read
                        // again when a new one comes up.
                        tracing::debug!("reading a peer's purge log: {err}");
                    } else {
                        tracing::warn!("reading a peer's purge log: {err}");
                    }
                    let reads = &self.metrics.purges.log_reads;
                    reads.with_label_values(&["failed"]).inc();
                }
            }
        }
        .instrument(span)
        .await;
        lock(&self.read_once).insert(name);
        self.update_kept().await;
    }

    async fn read_pages(self: &Arc<Self>, peer: &PeerHandle) -> Result<usize, String> {
        let name = peer.name().to_string();
        let cursor_of = name.clone();
        let (mut after, last_contact) = in_log(&self.log, move |log| {
            Ok((log.cursor(&cursor_of)?, log.last_contact()?))
        })
        .await
        .map_err(|e| e.to_string())?;
        let mut applied = 0;
        for page_number in 0..MAX_PAGES {
            let request = message::encode_log_request(after).map_err(|e| e.to_string())?;
            let bytes = self
                .swarm
                .purge_log(peer, request, self.timeout)
                .await
                .map_err(|err| match err {
                    PeerError::NotConnected => NOT_CONNECTED.to_owned(),
                    other => other.to_string(),
                })?;
            let page = message::decode_log_answer(&bytes).map_err(|err| {
                self.metrics
                    .purges
                    .declined
                    .with_label_values(&["answer"])
                    .inc();
                err.to_string()
            })?;
            let now = now_ms();
            // Out of touch is a property of this node, judged once per read.
            let contact = if page_number == 0 { last_contact } else { None };
            if let Some(gap) =
                retention::gap(contact, after, page.dropped_through, now, self.retention)
            {
                self.flush(gap, &name).await?;
            }
            self.metrics
                .purges
                .received
                .with_label_values(&["log"])
                .inc_by(page.purges.len() as u64);
            let ids: Vec<PurgeId> = page.purges.iter().map(|p| p.id).collect();
            let known = in_log(&self.log, move |log| {
                ids.iter()
                    .map(|id| log.contains(id))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| e.to_string())?;
            for (purge, known) in page.purges.iter().zip(known) {
                if !known {
                    self.apply(purge, "log").await.map_err(|e| e.to_string())?;
                    applied += 1;
                }
            }
            let retention = self.retention;
            let through = page.through;
            let peer_name = name.clone();
            let purges = page.purges;
            in_log(&self.log, move |log| {
                let read_to = ReadTo {
                    peer: &peer_name,
                    through,
                };
                log.keep(&purges, now, retention, Some(read_to))
            })
            .await
            .map_err(|e| e.to_string())?;
            after = Some(through);
            if !page.more {
                break;
            }
        }
        Ok(applied)
    }

    /// Drops every URL entry: this node may have missed a purge that no peer
    /// keeps any more, and cannot tell which entries it would have removed.
    /// Bodies stay in the store and age out by LRU (or serve refills).
    async fn flush(&self, gap: Gap, peer: &str) -> Result<(), String> {
        tracing::warn!(
            ?gap,
            %peer,
            "this node may have missed a purge the fleet no longer keeps; dropping every URL entry"
        );
        let store = self.store.clone();
        let removed = blocking(move || store.remove_records_by_prefix(b"", None))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        self.metrics.purges.flushes.inc();
        self.metrics
            .origin
            .purged_entries
            .inc_by(removed.len() as u64);
        tracing::warn!(removed = removed.len(), "dropped every URL entry");
        Ok(())
    }

    async fn update_kept(&self) {
        if let Ok(kept) = in_log(&self.log, PurgeLog::len).await {
            self.metrics
                .purges
                .kept
                .set(i64::try_from(kept).unwrap_or(i64::MAX));
        }
    }
}
