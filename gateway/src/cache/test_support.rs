//! Helpers shared by the policy's unit tests.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::date::format_http_date;

/// A fixed "now" for tests: 2025-01-01T00:00:00Z.
pub(crate) const T0: u64 = 1_735_689_600;

/// A header map from (name, value) pairs, appended in order.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// The instant `seconds` after the Unix epoch.
pub(crate) fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// An HTTP-date for `seconds` after the Unix epoch.
pub(crate) fn date(seconds: u64) -> String {
    format_http_date(seconds)
}

/// A stored 200-or-other response without Vary, received at `response_time`
/// for a request sent at `request_time`.
pub(crate) fn stored(
    status: u16,
    pairs: &[(&str, &str)],
    request_time: u64,
    response_time: u64,
) -> super::stored::StoredResponse {
    let mut headers = headers(pairs);
    let surrogate_control = headers
        .remove("surrogate-control")
        .map(|value| value.as_bytes().to_vec());
    super::stored::StoredResponse::new(
        status,
        headers,
        request_time,
        response_time,
        super::vary::VaryKey::default(),
        surrogate_control,
    )
}
