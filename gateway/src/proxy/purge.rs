//! Removing URL entries: `POST /purge` on the admin listener (by URL, by prefix,
//! by surrogate key), and the invalidation that follows unsafe requests. Only
//! entries go; their bodies stay in the store (other URLs may share them) and
//! age out by LRU.

use fleetcache_store::{KeyFilter, RecordRef, Store};
use serde::{Deserialize, Serialize};

use super::key::{Selection, UrlKey};
use crate::error::RequestError;
use crate::metrics::Metrics;
use crate::sync::blocking;

/// Most removed URLs listed in an answer; the count is always complete.
const MAX_LISTED: usize = 1000;
/// Most selectors in one purge request.
const MAX_SELECTORS: usize = 10_000;

/// The body of `POST /purge`; also what a fleet purge carries to peers
/// (`crate::purges`), which is why it serializes.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PurgeRequest {
    /// Absolute URLs (one host) or paths with query (every host).
    #[serde(default)]
    pub(crate) urls: Vec<String>,
    /// URL or path prefixes.
    #[serde(default)]
    pub(crate) prefixes: Vec<String>,
    /// Surrogate keys, as the origin sent them in `Surrogate-Key`.
    #[serde(default)]
    pub(crate) surrogate_keys: Vec<String>,
}

/// What a purge removed.
#[derive(Debug, Default, Serialize)]
pub(crate) struct PurgeAnswer {
    /// Entries removed (variants count separately).
    pub(crate) removed: usize,
    /// The URLs removed, at most [`MAX_LISTED`].
    pub(crate) urls: Vec<String>,
    /// Whether `urls` was cut short.
    pub(crate) truncated: bool,
}

impl PurgeAnswer {
    /// Folds in the answer of another part of the same purge.
    pub(crate) fn merge(&mut self, other: PurgeAnswer) {
        self.removed += other.removed;
        self.truncated |= other.truncated;
        for url in other.urls {
            if self.urls.len() == MAX_LISTED {
                self.truncated = true;
                break;
            }
            self.urls.push(url);
        }
    }

    fn add(&mut self, removed: Vec<RecordRef>) {
        self.removed += removed.len();
        for record in removed {
            if self.urls.len() == MAX_LISTED {
                self.truncated = true;
                break;
            }
            self.urls.push(UrlKey::display(&record.key));
        }
    }
}

/// One removal to run on the store.
enum Removal {
    Key(UrlKey),
    Prefix(Selection),
    Tag(String),
}

impl PurgeRequest {
    /// Parses and checks a purge body; a 400 names the first bad entry.
    pub(crate) fn parse(body: &[u8]) -> Result<PurgeRequest, RequestError> {
        let request: PurgeRequest = serde_json::from_slice(body).map_err(|err| {
            RequestError::BadRequest(format!(
                "purge body: {err}; expected JSON with \"urls\", \"prefixes\" and/or \"surrogate_keys\" lists"
            ))
        })?;
        request.check_counts()?;
        Ok(request)
    }

    /// Every check `parse` and the removals make, without removing anything:
    /// what a purge from a peer must pass before it is applied or kept.
    pub(crate) fn check(&self) -> Result<(), RequestError> {
        self.check_counts()?;
        self.clone().removals().map(|_| ())
    }

    fn check_counts(&self) -> Result<(), RequestError> {
        let request = self;
        let total = request.urls.len() + request.prefixes.len() + request.surrogate_keys.len();
        if total == 0 {
            return Err(RequestError::BadRequest(
                "purge body selects nothing: give \"urls\", \"prefixes\" or \"surrogate_keys\""
                    .into(),
            ));
        }
        if total > MAX_SELECTORS {
            return Err(RequestError::BadRequest(format!(
                "purge body has {total} selectors; at most {MAX_SELECTORS} per request"
            )));
        }
        Ok(())
    }

    fn removals(self) -> Result<Vec<(&'static str, Removal)>, RequestError> {
        let bad =
            |field: &str, err: String| RequestError::BadRequest(format!("purge {field}: {err}"));
        let mut removals = Vec::new();
        let urls = self.urls.into_iter().map(|url| ("url", "urls", url, true));
        let prefixes = self
            .prefixes
            .into_iter()
            .map(|prefix| ("prefix", "prefixes", prefix, false));
        for (kind, field, text, exact) in urls.chain(prefixes) {
            let selection = Selection::parse(&text, exact).map_err(|e| bad(field, e))?;
            let removal = match selection.exact_key() {
                Some(key) => Removal::Key(key),
                None => Removal::Prefix(selection),
            };
            removals.push((kind, removal));
        }
        for tag in self.surrogate_keys {
            let tag = tag.trim().to_owned();
            if tag.is_empty() || tag.contains(char::is_whitespace) || tag.contains('\0') {
                return Err(bad(
                    "surrogate_keys",
                    format!("{tag:?} is not a surrogate key"),
                ));
            }
            removals.push(("surrogate_key", Removal::Tag(tag)));
        }
        Ok(removals)
    }
}

/// Runs a purge against the store.
pub(crate) async fn purge(
    store: &Store,
    metrics: &Metrics,
    request: PurgeRequest,
) -> Result<PurgeAnswer, RequestError> {
    remove(store, metrics, request, true).await
}

/// Runs a purge's removals again (a fleet purge's second sweep): entries
/// removed are counted, the purge request is not.
pub(crate) async fn sweep(
    store: &Store,
    metrics: &Metrics,
    request: PurgeRequest,
) -> Result<PurgeAnswer, RequestError> {
    remove(store, metrics, request, false).await
}

async fn remove(
    store: &Store,
    metrics: &Metrics,
    request: PurgeRequest,
    count_request: bool,
) -> Result<PurgeAnswer, RequestError> {
    let mut answer = PurgeAnswer::default();
    for (kind, removal) in request.removals()? {
        let store = store.clone();
        let removed = blocking(move || match removal {
            Removal::Key(key) => store.remove_records(key.as_str().as_bytes()),
            Removal::Prefix(selection) => {
                let prefix = selection.scan_prefix();
                let filter: Option<KeyFilter> = selection
                    .origin
                    .is_some()
                    .then(|| Box::new(move |key: &[u8]| selection.matches(key)) as KeyFilter);
                store.remove_records_by_prefix(prefix.as_bytes(), filter)
            }
            Removal::Tag(tag) => store.remove_records_by_tag(tag.as_bytes()),
        })
        .await??;
        if count_request {
            metrics.origin.purges.with_label_values(&[kind]).inc();
        }
        metrics.origin.purged_entries.inc_by(removed.len() as u64);
        answer.add(removed);
    }
    if count_request || answer.removed > 0 {
        tracing::info!(removed = answer.removed, "purged");
    }
    Ok(answer)
}

/// Drops every variant of the given URL keys (RFC 9111 §4.4 invalidation).
pub(crate) async fn invalidate(store: &Store, metrics: &Metrics, keys: Vec<UrlKey>) {
    if keys.is_empty() {
        return;
    }
    let store = store.clone();
    let removed = blocking(move || {
        let mut removed = 0;
        for key in keys {
            match store.remove_records(key.as_str().as_bytes()) {
                Ok(records) => removed += records.len(),
                Err(err) => tracing::warn!(key = key.as_str(), "invalidating: {err}"),
            }
        }
        removed
    })
    .await
    .unwrap_or(0);
    if removed > 0 {
        metrics
            .origin
            .purges
            .with_label_values(&["invalidation"])
            .inc();
        metrics.origin.purged_entries.inc_by(removed as u64);
        tracing::debug!(removed, "invalidated after an unsafe request");
    }
}
