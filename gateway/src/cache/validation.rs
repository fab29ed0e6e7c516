//! Revalidation: the conditional request (RFC 9111 §4.3.1) and freshening a
//! stored response with a 304 (§4.3.4, §3.2).
//!
//! Choices where the RFCs leave room:
//! - the conditional request carries `If-None-Match` with the stored `ETag`
//!   (strong or weak) and, when the stored response has a valid
//!   `Last-Modified`, `If-Modified-Since` too (§4.3.1: both when both exist).
//!   A stored `ETag` that is not a syntactically valid entity-tag is not
//!   sent. With neither validator there is nothing to ask: plain refetch;
//! - which stored response a 304 applies to (§4.3.4): a strong `ETag` in the
//!   304 must equal the stored one by strong comparison; a weak one by weak
//!   comparison; without an `ETag`, a `Last-Modified` must name the same
//!   instant as the stored one; a 304 with no validator at all applies to
//!   the one response we revalidated. (§4.3.4 asks that the stored response
//!   also lack validators in that last case; but the 304 answers the
//!   conditional request we built from exactly this response, so we take the
//!   origin at its word.) Anything else (including an `ETag` we cannot
//!   parse) means refetch unconditionally;
//! - fields from the 304 replace the stored fields of the same name (§3.2),
//!   except hop-by-hop fields, `Content-Length`, `Content-Range`, and
//!   `Content-Encoding` (the stored body bytes are encoded as the stored
//!   `Content-Encoding` says; §3.2 allows keeping fields that assure the
//!   stored response's integrity), and `Vary` (the stored variant key was
//!   computed from the stored `Vary`; keeping both consistent);
//! - `Date` and `Age` describe the message, not the representation: a 304
//!   without `Age` removes the stored one, and a 304 without `Date` gets
//!   `Date: <now>` (RFC 9110 §6.6.1). Otherwise the old values, combined with
//!   the new request and response times, would make the freshened response
//!   look as old as it was before;
//! - `Surrogate-Control` in a 304 replaces the stored one, and a targeted
//!   field (`CDN-Cache-Control`) in it replaces the stored one like any
//!   other field;
//! - a 304 can withdraw permission to store (`no-store`, `private`,
//!   `Set-Cookie` without `public`): the updated response is then served
//!   once and the caller drops the stored record.

use std::time::SystemTime;

use http::HeaderMap;
use http::header::{
    AGE, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, DATE, ETAG, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED, VARY,
};

use super::date::{parse_http_date, unix_seconds};
use super::effective::EffectiveControl;
use super::storable::{
    NotStorable, check_response, ensure_date, joined, remove_fields, strip_hop_by_hop,
};
use super::stored::StoredResponse;
use super::surrogate::{SURROGATE_CONTROL, SurrogateControl};

/// The conditional header fields to revalidate a stored response with;
/// empty when it has no usable validator (then refetch without conditions).
pub(crate) fn revalidation_headers(stored: &StoredResponse) -> HeaderMap {
    let mut conditions = HeaderMap::new();
    if let Some(etag) = stored.headers.get(ETAG)
        && EntityTag::parse(etag.as_bytes()).is_some()
    {
        conditions.insert(IF_NONE_MATCH, etag.clone());
    }
    if let Some(last_modified) = stored.headers.get(LAST_MODIFIED)
        && parse_http_date(last_modified.as_bytes(), stored.response_time).is_some()
    {
        conditions.insert(IF_MODIFIED_SINCE, last_modified.clone());
    }
    conditions
}

/// What a 304 does to the stored response it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Freshened {
    /// The 304 applies: serve `response`; replace the stored record with it
    /// if `keep` is `Ok`, else delete the stored record.
    Updated {
        /// The stored response with the 304's fields and the new times.
        response: Box<StoredResponse>,
        /// Whether the updated response may still be stored.
        keep: Result<(), NotStorable>,
    },
    /// The 304's validators do not match the stored response: fetch again
    /// without conditions (§4.3.4).
    Refetch,
}

/// Applies a 304 received at `now` for a conditional request sent at
/// `request_time` to the stored response it revalidated.
pub(crate) fn freshen(
    stored: &StoredResponse,
    not_modified: &HeaderMap,
    request_time: SystemTime,
    now: SystemTime,
) -> Freshened {
    if !validators_match(stored, not_modified) {
        return Freshened::Refetch;
    }
    let now = unix_seconds(now);
    let mut update = not_modified.clone();
    strip_hop_by_hop(&mut update);
    let surrogate_control =
        joined(&update, &SURROGATE_CONTROL).or_else(|| stored.surrogate_control.clone());
    for kept in [
        CONTENT_LENGTH,
        CONTENT_RANGE,
        CONTENT_ENCODING,
        VARY,
        SURROGATE_CONTROL,
    ] {
        update.remove(kept);
    }

    let mut headers = stored.headers.clone();
    for name in update.keys() {
        headers.remove(name);
    }
    for (name, value) in &update {
        // Only fails past 2^15 distinct fields; the field is then not updated.
        let _ = headers.try_append(name.clone(), value.clone());
    }
    if !update.contains_key(AGE) {
        headers.remove(AGE);
    }
    if !update.contains_key(DATE) {
        headers.remove(DATE);
        ensure_date(&mut headers, now);
    }

    let surrogate = surrogate_control
        .as_deref()
        .map(SurrogateControl::parse)
        .unwrap_or_default();
    let control = EffectiveControl::new(&headers, surrogate);
    let keep = check_response(stored.status, &control, &headers);
    remove_fields(&mut headers, control.directives.private.fields());

    Freshened::Updated {
        response: Box::new(StoredResponse::new(
            stored.status,
            headers,
            unix_seconds(request_time),
            now,
            stored.vary.clone(),
            surrogate_control,
        )),
        keep,
    }
}

/// Whether a 304 identifies this stored response for update (§4.3.4).
fn validators_match(stored: &StoredResponse, not_modified: &HeaderMap) -> bool {
    if let Some(new_tag) = not_modified.get(ETAG) {
        let Some(new_tag) = EntityTag::parse(new_tag.as_bytes()) else {
            return false;
        };
        let Some(stored_tag) = stored
            .headers
            .get(ETAG)
            .and_then(|tag| EntityTag::parse(tag.as_bytes()))
        else {
            return false;
        };
        return if new_tag.weak {
            new_tag.opaque == stored_tag.opaque
        } else {
            !stored_tag.weak && new_tag.opaque == stored_tag.opaque
        };
    }
    if let Some(new_date) = not_modified.get(LAST_MODIFIED) {
        let new_date = parse_http_date(new_date.as_bytes(), stored.response_time);
        let stored_date = stored.date_field(&LAST_MODIFIED);
        return new_date.is_some() && new_date == stored_date;
    }
    true
}

/// An entity-tag (RFC 9110 §8.8.3): `[W/] " *etagc "`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    /// The opaque tag including its quotes.
    opaque: &'a [u8],
}

impl<'a> EntityTag<'a> {
    fn parse(value: &'a [u8]) -> Option<EntityTag<'a>> {
        let value = value.trim_ascii();
        let (weak, opaque) = match value.strip_prefix(b"W/") {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let inner = opaque.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        // etagc = %x21 / %x23-7E / obs-text
        if inner
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            Some(EntityTag { weak, opaque })
        } else {
            None
        }
    }
}

#[cfg(test)]
#[path = "validation_tests.rs"]
mod tests;
