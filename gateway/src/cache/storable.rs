//! Whether a response may be stored by a shared cache (RFC 9111 §3), and
//! what exactly is stored.
//!
//! Choices where the RFCs leave room (each one errs on storing less):
//! - only `GET` responses are stored; `HEAD` responses never (they have no
//!   body to serve later), other methods never;
//! - never stored: anything outside 100..=599 (RFC 9110 §15: not a status
//!   code, whatever a broken origin sent), 1xx, 206 (no partial-content
//!   assembly), 304, and 428, 429, 431, 511 (RFC 6585 forbids caching
//!   them); the heuristically cacheable
//!   statuses are stored like RFC 9111 allows; any other final status only
//!   with explicit freshness or `public`;
//! - `must-understand` counts as understood for the statuses in
//!   [`is_understood_status`] (those RFC 9110 and RFC 7725 define); with one
//!   of those it overrides a response `no-store` (§5.2.2.3), with any other
//!   the response is not stored;
//! - a response with `Set-Cookie` is not stored unless it says `public` or
//!   has a valid `s-maxage`, or names `Set-Cookie` in `private=` (then the
//!   cookie is removed from the stored copy). RFC 9111 would allow storing it
//!   (and serving the cookie to everyone); nginx and Varnish refuse by
//!   default, and so do we: one user's session cookie must not reach another;
//! - which fields decide is [`EffectiveControl`]'s business: a valid,
//!   non-empty targeted field (RFC 9213, e.g. `CDN-Cache-Control`) replaces
//!   `Cache-Control`, `Expires` and `Surrogate-Control`, so its `no-store`,
//!   `private`, `public`, `s-maxage` stand where `Cache-Control`'s would,
//!   and `Cache-Control: no-store` or `private` next to it is for other
//!   caches. Targeted fields are stored and forwarded (RFC 9213 §3);
//! - without one, `Surrogate-Control` addressed to us decides storage before
//!   `Cache-Control`: its `no-store` refuses, its `max-age` overrides a
//!   `Cache-Control: no-store` and counts as explicit freshness. It never
//!   overrides `private`, `Authorization`, `Set-Cookie` or `Vary: *`, which
//!   protect one user's data from another;
//! - a response that could never be reused (no freshness, no validator to
//!   revalidate with, and no stale window it may be served in: its own
//!   `stale-while-revalidate` / `stale-if-error`, or the operator's
//!   stale-if-error default, none of which count under `must-revalidate`,
//!   `proxy-revalidate` or `s-maxage`) is refused as `no-freshness` rather
//!   than written to disk for nothing.

use std::time::SystemTime;

use http::header::{
    AUTHORIZATION, CONNECTION, DATE, ETAG, HeaderName, HeaderValue, LAST_MODIFIED,
    PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, SET_COOKIE, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, Method};

use super::date::{format_http_date, unix_seconds};
use super::directives::RequestCacheControl;
use super::effective::{Defaults, EffectiveControl};
use super::freshness::{is_heuristically_cacheable, lifetime_from};
use super::stored::StoredResponse;
use super::surrogate::SURROGATE_CONTROL;
use super::vary::{VaryKey, vary_names};

/// One request/response exchange with the origin, as the storage decision
/// sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exchange<'a> {
    /// The request method.
    pub(crate) method: &'a Method,
    /// The client's request header fields (what `Vary` selects on).
    pub(crate) request_headers: &'a HeaderMap,
    /// The response status code.
    pub(crate) status: u16,
    /// The response's header fields, as received.
    pub(crate) response_headers: &'a HeaderMap,
    /// When the request was sent.
    pub(crate) request_time: SystemTime,
    /// When the response (its header section) was received.
    pub(crate) response_time: SystemTime,
}

/// Why a response is not stored. `Display` gives a short reason fit for a
/// `Cache-Status` detail or a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NotStorable {
    /// The request method is not GET.
    #[error("method")]
    Method,
    /// A status code that is never stored (outside 100..=599, 1xx, 206, 304,
    /// 428, 429, 431, 511).
    #[error("status")]
    Status,
    /// The request said `Cache-Control: no-store`.
    #[error("request-no-store")]
    RequestNoStore,
    /// The response said `no-store` (in `Cache-Control`, or in the targeted
    /// field that replaces it).
    #[error("no-store")]
    NoStore,
    /// The response said `Surrogate-Control: no-store` (or `no-store-remote`).
    #[error("surrogate-no-store")]
    SurrogateNoStore,
    /// `must-understand` on a status code we do not understand.
    #[error("must-understand")]
    MustUnderstand,
    /// Unqualified `private`.
    #[error("private")]
    Private,
    /// The request carried `Authorization` and the response did not allow a
    /// shared cache to store it (§3.5).
    #[error("authorization")]
    Authorization,
    /// `Vary: *`, or a Vary member that is not a field name.
    #[error("vary-star")]
    VaryStar,
    /// `Set-Cookie` without `public` or `s-maxage`.
    #[error("set-cookie")]
    SetCookie,
    /// Nothing would let the stored response be reused: a status that needs
    /// explicit freshness without it, or no freshness and no validator.
    #[error("no-freshness")]
    NoFreshness,
}

/// Statuses whose caching rules we implement, for `must-understand`
/// (§5.2.2.3): the final codes RFC 9110 §15 defines, and 451 (RFC 7725).
pub(crate) fn is_understood_status(status: u16) -> bool {
    matches!(
        status,
        200..=206 | 300..=305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 451 | 500..=505
    )
}

/// Statuses never stored whatever the headers say: anything that is not a
/// three-digit final status code (RFC 9110 §15: 100..=599; 1xx are interim),
/// and the ones listed in the module docs.
fn is_never_stored(status: u16) -> bool {
    !(200..=599).contains(&status) || matches!(status, 206 | 304 | 428 | 429 | 431 | 511)
}

/// Decides whether a shared cache may store this exchange's response (RFC
/// 9111 §3) and builds the record to store: header fields minus hop-by-hop
/// fields, `Surrogate-Control` and the fields named by `private=`, plus a
/// `Date` if the origin sent none (RFC 9110 §6.6.1).
pub(crate) fn storable(
    exchange: &Exchange<'_>,
    defaults: Defaults,
) -> Result<StoredResponse, NotStorable> {
    if exchange.method != Method::GET {
        return Err(NotStorable::Method);
    }
    let status = exchange.status;
    if is_never_stored(status) {
        return Err(NotStorable::Status);
    }
    if RequestCacheControl::from_headers(exchange.request_headers).no_store {
        return Err(NotStorable::RequestNoStore);
    }
    let response = exchange.response_headers;
    let control = EffectiveControl::from_response(response);
    check_response(status, &control, response)?;
    // §3.5: a shared cache stores the response to an authenticated request
    // only when the origin explicitly allows it.
    if exchange.request_headers.contains_key(AUTHORIZATION) && !control.allows_authorized() {
        return Err(NotStorable::Authorization);
    }
    if !(is_heuristically_cacheable(status)
        || control.has_explicit_freshness(response)
        || control.directives.public)
    {
        return Err(NotStorable::NoFreshness);
    }

    let mut headers = response.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(SURROGATE_CONTROL);
    remove_fields(&mut headers, control.directives.private.fields());
    let response_time = unix_seconds(exchange.response_time);
    ensure_date(&mut headers, response_time);
    let vary =
        VaryKey::for_request(response, exchange.request_headers).ok_or(NotStorable::VaryStar)?;
    let stored = StoredResponse::new(
        status,
        headers,
        unix_seconds(exchange.request_time),
        response_time,
        vary,
        joined(response, &SURROGATE_CONTROL),
    );

    let lifetime = lifetime_from(&stored, &control, defaults);
    let has_validator =
        stored.headers.contains_key(ETAG) || stored.headers.contains_key(LAST_MODIFIED);
    let always_revalidate = control.no_cache().is_unqualified();
    let stale_window = !control.never_stale()
        && [
            control.stale_while_revalidate(),
            control.stale_if_error(),
            defaults.stale_if_error_seconds(),
        ]
        .into_iter()
        .any(|window| window.is_some_and(|seconds| seconds > 0));
    let reusable = has_validator || (!always_revalidate && (lifetime.seconds > 0 || stale_window));
    if !reusable {
        return Err(NotStorable::NoFreshness);
    }
    Ok(stored)
}

/// The response-side rules of §3 that also apply when a 304 updates a stored
/// response: storage refusals by `Surrogate-Control`, `must-understand`,
/// `no-store`, `private`, `Vary` and `Set-Cookie`, each read from the
/// fields `control` says govern.
pub(crate) fn check_response(
    status: u16,
    control: &EffectiveControl,
    headers: &HeaderMap,
) -> Result<(), NotStorable> {
    if control.surrogate.no_store {
        return Err(NotStorable::SurrogateNoStore);
    }
    let cache_control = &control.directives;
    let no_store_overridden = if cache_control.must_understand {
        if !is_understood_status(status) {
            return Err(NotStorable::MustUnderstand);
        }
        true
    } else {
        control.surrogate_rules()
    };
    if cache_control.no_store && !no_store_overridden {
        return Err(NotStorable::NoStore);
    }
    if cache_control.private.is_unqualified() {
        return Err(NotStorable::Private);
    }
    if vary_names(headers).is_none() {
        return Err(NotStorable::VaryStar);
    }
    if headers.contains_key(SET_COOKIE)
        && !(cache_control.public || cache_control.has_valid_s_maxage())
        && !cache_control.private.fields().contains(&SET_COOKIE)
    {
        return Err(NotStorable::SetCookie);
    }
    Ok(())
}

/// Removes the hop-by-hop fields (RFC 9110 §7.6.1): `Connection` and every
/// field it names, `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`,
/// `Upgrade`, `Proxy-Connection`, and every `Proxy-*` field (which covers
/// `Proxy-Authenticate`, `Proxy-Authorization` and
/// `Proxy-Authentication-Info`, excluded from storage by RFC 9111 §3.1).
/// For stored responses, requests forwarded to the origin and responses
/// passed through.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|line| line.as_bytes().split(|&b| b == b','))
        .filter_map(|option| HeaderName::from_bytes(option.trim_ascii()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        CONNECTION,
        HeaderName::from_static("keep-alive"),
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
        HeaderName::from_static("proxy-connection"),
        PROXY_AUTHENTICATE,
        PROXY_AUTHORIZATION,
    ] {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

/// Removes every named field.
pub(crate) fn remove_fields(headers: &mut HeaderMap, names: &[HeaderName]) {
    for name in names {
        headers.remove(name);
    }
}

/// Adds `Date: <response_time>` when there is none, as a recipient with a
/// clock must before caching (RFC 9110 §6.6.1).
pub(crate) fn ensure_date(headers: &mut HeaderMap, response_time: u64) {
    if headers.contains_key(DATE) {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&format_http_date(response_time)) {
        // Only fails past 2^15 distinct fields; the response then goes
        // without Date and ages from `response_time` all the same.
        let _ = headers.try_insert(DATE, value);
    }
}

/// Every line of a field joined with `, `, or `None` if absent.
pub(crate) fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<Vec<u8>> {
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    let mut out = Vec::new();
    for line in lines {
        if !out.is_empty() {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(line.as_bytes());
    }
    Some(out)
}

impl NotStorable {
    /// The reason as a `'static` string (the same as `Display`), for metric
    /// labels.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::Status => "status",
            NotStorable::RequestNoStore => "request-no-store",
            NotStorable::NoStore => "no-store",
            NotStorable::SurrogateNoStore => "surrogate-no-store",
            NotStorable::MustUnderstand => "must-understand",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::VaryStar => "vary-star",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::NoFreshness => "no-freshness",
        }
    }
}

#[cfg(test)]
#[path = "storable_tests.rs"]
mod tests;
