//! RFC 9111 shared-cache policy: pure code, `now` passed in, no I/O.
//!
//! The origin-mode pipeline (origin client, single-flight fills, the record
//! store) calls these decisions; nothing here touches a socket, a clock or
//! the disk, so every rule is unit-tested with fixed times. Times are whole
//! Unix seconds; every computation saturates instead of overflowing, and no
//! input (huge numbers, garbage or non-UTF-8 header values) can panic.
//!
//! The flow, and the function for each step:
//! - which response fields set the policy (a targeted field such as
//!   `CDN-Cache-Control`, else `Cache-Control` + `Expires` under
//!   `Surrogate-Control`): [`effective::EffectiveControl`], computed once
//!   per response (a stored one keeps it); the operator's per-origin [`effective::Defaults`]
//!   (default TTL, stale-if-error window) go with it;
//! - request arrives: [`directives::RequestCacheControl::from_headers`]; look
//!   up the URL's variants and pick one with [`vary::select_variant`];
//! - a stored response was found: [`evaluate::evaluate`] says serve it, serve
//!   it stale and refresh in the background, or revalidate first (with
//!   whether it may still be served if that fails);
//!   [`evaluate::serving_headers`] and [`freshness::age_header_value`] build
//!   what the client sees;
//! - revalidating: [`validation::revalidation_headers`], then on a 304
//!   [`validation::freshen`];
//! - a response came from the origin: [`storable::storable`] decides whether
//!   and what to store ([`stored::StoredResponse`], encoded with
//!   [`stored::StoredResponse::encode`] under
//!   [`stored::StoredResponse::variant`]); [`storable::strip_hop_by_hop`]
//!   cleans anything forwarded;
//! - an unsafe request succeeded: [`invalidation::invalidations`];
//! - every response: [`status::CacheStatus`] and [`status::append_via`].
//!
//! This is the policy of a *shared* cache (RFC 9111 §3, §4.2.1, §5.2.2.7,
//! §5.2.2.10); the module docs of each file list the choices made where the
//! RFCs leave room.

/// This cache's name, where a `const` cannot go (`concat!`).
macro_rules! pseudonym {
    () => {
        "fleetcache"
    };
}

pub(crate) mod date;
pub(crate) mod directives;
pub(crate) mod effective;
pub(crate) mod evaluate;
pub(crate) mod freshness;
pub(crate) mod invalidation;
pub(crate) mod sf;
pub(crate) mod status;
pub(crate) mod storable;
pub(crate) mod stored;
pub(crate) mod surrogate;
pub(crate) mod syntax;
pub(crate) mod targeted;
pub(crate) mod validation;
pub(crate) mod vary;

#[cfg(test)]
mod test_support;

/// How this cache names itself in `Via`, `Cache-Status`, targeted
/// `Surrogate-Control` directives and its own targeted field
/// (`Fleetcache-Cache-Control`).
pub(crate) const PSEUDONYM: &str = pseudonym!();
