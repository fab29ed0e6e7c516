//! The serving decision for a stored response and a request at `now`
//! (RFC 9111 §4, §4.2.4, §5.2; RFC 5861; RFC 8246).
//!
//! Choices where the RFCs leave room:
//! - a stale response is served without asking the origin only when the
//!   request's `max-stale` allows it, or within the response's
//!   `stale-while-revalidate` window (then with a background revalidation).
//!   Neither applies when the response says `must-revalidate`,
//!   `proxy-revalidate` or `s-maxage` (which implies `proxy-revalidate` for a
//!   shared cache, §5.2.2.10): §5.2.2.2 forbids reusing such a response
//!   stale in any way, and RFC 5861's windows do not override that;
//! - after a failed revalidation (origin unreachable, or 500, 502, 503, 504)
//!   a *stale* response may be served within the largest window any party
//!   granted: the response's `stale-if-error`, the request's
//!   `stale-if-error`, the request's `max-stale` (§4.2.4: "explicitly
//!   permitted by the client or origin server"), or the operator's
//!   [`Defaults::stale_if_error`] (§4.2.4 lets a cache disconnected from the
//!   origin serve stale, and §4.3.3 lets it take a 5xx as not hearing back;
//!   the operator bounds how stale); never with
//!   `must-revalidate`/`proxy-revalidate`/`s-maxage`. A *fresh* response
//!   whose revalidation the request forced (`no-cache`, `max-age`,
//!   `min-fresh`) may always be served on error: it is not stale, so §4.2.4
//!   does not restrict it. A response with unqualified `no-cache` never is;
//! - the request's `no-cache` and `max-age` do not force revalidation of a
//!   fresh `immutable` response (RFC 8246: it will not change while fresh,
//!   so a reload storm costs the origin nothing); `min-fresh` still applies;
//! - the response's directives are those of its [`EffectiveControl`]: a
//!   targeted field (RFC 9213) when it has a valid one, else `Cache-Control`
//!   and `Expires`; when `Surrogate-Control` gives the freshness lifetime,
//!   `Cache-Control`'s `no-cache`, `must-revalidate`, `proxy-revalidate` and
//!   `s-maxage` are taken as meant for downstream caches and ignored here;
//!   its `stale-while-revalidate` / `stale-if-error` apply when
//!   `Surrogate-Control` has none of its own.

use std::time::SystemTime;

use http::header::AGE;
use http::{HeaderMap, HeaderName};

use super::directives::{MaxStale, RequestCacheControl};
use super::effective::Defaults;
use super::freshness::{Lifetime, age_at, age_header_value, lifetime_from};
use super::status::ForwardReason;
use super::storable::remove_fields;
use super::stored::StoredResponse;

/// What to do with a stored response for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Serve it without contacting the origin: it is fresh, or stale within
    /// the request's `max-stale`.
    Serve,
    /// Serve it now although stale, and revalidate it in the background
    /// (RFC 5861 §3).
    ServeStaleWhileRevalidate,
    /// Contact the origin before answering: a conditional request when
    /// [`super::validation::revalidation_headers`] gives any, else a plain
    /// fetch. If the request says `only-if-cached`, answer 504 instead
    /// (§5.2.1.7).
    Revalidate {
        /// Why the stored response cannot be served as it is.
        reason: RevalidateReason,
        /// Whether the stored response may be served if the origin cannot be
        /// reached or answers 500, 502, 503 or 504 (RFC 5861 §4, RFC 9111
        /// §4.2.4, with the operator's [`Defaults::stale_if_error`]).
        serve_stale_on_error: bool,
    },
}

/// Why a stored response needs the origin first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RevalidateReason {
    /// It is stale and no stale use applies.
    Stale,
    /// It says unqualified `no-cache`: every reuse needs validation.
    NoCache,
    /// It is fresh, but the request's `no-cache`, `max-age` or `min-fresh`
    /// does not accept it.
    Request,
}

impl RevalidateReason {
    /// The `fwd` parameter of `Cache-Status` (RFC 9211 §2.2) for this reason.
    pub(crate) fn forward_reason(self) -> ForwardReason {
        match self {
            RevalidateReason::Stale | RevalidateReason::NoCache => ForwardReason::Stale,
            RevalidateReason::Request => ForwardReason::Request,
        }
    }
}

/// The decision and the numbers behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Evaluation {
    /// What to do.
    pub(crate) decision: Decision,
    /// Whether the stored response is fresh (`lifetime > current_age`).
    pub(crate) fresh: bool,
    /// Its freshness lifetime and where that came from.
    pub(crate) lifetime: Lifetime,
    /// Its current age in seconds (§4.2.3), for the `Age` header.
    pub(crate) current_age: u64,
    /// `lifetime − current_age`: negative once stale; `Cache-Status`'s `ttl`.
    pub(crate) ttl: i64,
    /// Fields to remove whenever the stored response is sent without a
    /// successful revalidation (qualified `no-cache`, §5.2.2.4).
    pub(crate) strip_fields: Vec<HeaderName>,
}

/// Decides how a stored response (already matched by URL and Vary) may
/// answer a request at `now`, under its origin's operator `defaults`.
pub(crate) fn evaluate(
    request: &RequestCacheControl,
    stored: &StoredResponse,
    now: SystemTime,
    defaults: Defaults,
) -> Evaluation {
    let control = stored.control();
    let lifetime = lifetime_from(stored, control, defaults);
    let current_age = age_at(stored, now).current_age;
    let fresh = lifetime.seconds > current_age;
    let staleness = current_age.saturating_sub(lifetime.seconds);
    let ttl = to_i64(lifetime.seconds).saturating_sub(to_i64(current_age));

    let no_cache = control.no_cache();
    let never_stale = control.never_stale();
    let stale_while_revalidate = control.stale_while_revalidate();
    let max_stale = match request.max_stale {
        Some(MaxStale::Any) => Some(u64::MAX),
        Some(MaxStale::Seconds(seconds)) => Some(seconds),
        None => None,
    };
    let error_window = [
        control.stale_if_error(),
        request.stale_if_error,
        max_stale,
        defaults.stale_if_error_seconds(),
    ]
    .into_iter()
    .flatten()
    .max();
    let serve_stale_on_error = !no_cache.is_unqualified()
        && (fresh || (!never_stale && error_window.is_some_and(|window| staleness <= window)));

    let revalidate = |reason| Decision::Revalidate {
        reason,
        serve_stale_on_error,
    };
    let immutable_and_fresh = fresh && control.directives.immutable;
    let request_refuses = (!immutable_and_fresh
        && (request.no_cache || request.max_age.is_some_and(|max_age| current_age > max_age)))
        || request
            .min_fresh
            .is_some_and(|min_fresh| lifetime.seconds < current_age.saturating_add(min_fresh));

    let decision = if no_cache.is_unqualified() {
        revalidate(RevalidateReason::NoCache)
    } else if fresh {
        if request_refuses {
            revalidate(RevalidateReason::Request)
        } else {
            Decision::Serve
        }
    } else if request_refuses || never_stale {
        revalidate(RevalidateReason::Stale)
    } else {
        let within = |window: Option<u64>| window.is_some_and(|window| staleness <= window);
        match (within(max_stale), within(stale_while_revalidate)) {
            (_, true) => Decision::ServeStaleWhileRevalidate,
            (true, false) => Decision::Serve,
            (false, false) => revalidate(RevalidateReason::Stale),
        }
    };

    Evaluation {
        decision,
        fresh,
        lifetime,
        current_age,
        ttl,
        strip_fields: no_cache.fields().to_vec(),
    }
}

/// The header fields to send with a stored response: the stored ones minus
/// `strip_fields`, with `Age` set to `current_age` (§5.1). `Content-Length`
/// is left as stored; the caller sets it from the body blob.
pub(crate) fn serving_headers(
    stored: &StoredResponse,
    current_age: u64,
    strip_fields: &[HeaderName],
) -> HeaderMap {
    let mut headers = stored.headers.clone();
    remove_fields(&mut headers, strip_fields);
    // Only fails past 2^15 distinct fields, when the response goes without Age.
    let _ = headers.try_insert(AGE, age_header_value(current_age));
    headers
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
