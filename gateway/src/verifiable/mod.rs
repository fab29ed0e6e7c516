//! Responses a client can verify: `GET|HEAD /blake3/<hash>?format=bao`.
//!
//! The body is the object's size as a little-endian `u64`, then bao-tree's
//! pre-order encoding of the selected 16 KiB chunk groups (hash pairs and data
//! interleaved, the same encoding peers exchange). A client holding only the
//! hash checks every group against it as it arrives, so it needs to trust no
//! node: the framing, the range semantics and a decoding example are in the
//! README (*Verifiable downloads*). `geometry.rs` holds what the server and
//! `fleetcache get` must agree on (which groups a range selects, the encoded
//! length, the entity tag); `serve.rs` answers the request.

mod geometry;
mod serve;

pub(crate) use geometry::{Selection, group_start};
pub(crate) use serve::serve;

use crate::error::RequestError;

/// The media type of a verifiable body.
pub(crate) const MEDIA_TYPE: &str = "application/vnd.fleetcache.bao";

/// The object's size, also sent as the body's prefix (handy for HEAD).
pub(crate) const SIZE_HEADER: &str = "fleetcache-object-size";

/// On an answer to a `Range`, the object's bytes the groups sent cover.
pub(crate) const GROUPS_HEADER: &str = "fleetcache-bao-range";

/// The representations of an object by hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The object's bytes (no `format`, or `format=raw`).
    Raw,
    /// The bao encoding with its size prefix (`format=bao`).
    Bao,
}

impl Format {
    /// The `format` parameter of a request's query. Other parameters are
    /// ignored, as on every route; a `format` we do not know (or two that
    /// disagree) is a 400 naming the values we do.
    pub(crate) fn from_query(query: Option<&str>) -> Result<Format, RequestError> {
        let mut format = None;
        for pair in query.unwrap_or("").split('&') {
            let Some(value) = pair.strip_prefix("format=") else {
                continue;
            };
            let this = match value {
                "raw" => Format::Raw,
                "bao" => Format::Bao,
                other => {
                    return Err(RequestError::BadRequest(format!(
                        "unknown format {other:?}; allowed: raw, bao"
                    )));
                }
            };
            if format.is_some_and(|f| f != this) {
                return Err(RequestError::BadRequest(
                    "conflicting format parameters; give one of: raw, bao".into(),
                ));
            }
            format = Some(this);
        }
        Ok(format.unwrap_or(Format::Raw))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_query() {
        assert_eq!(Format::from_query(None).unwrap(), Format::Raw);
        assert_eq!(Format::from_query(Some("")).unwrap(), Format::Raw);
        assert_eq!(Format::from_query(Some("format=raw")).unwrap(), Format::Raw);
        assert_eq!(Format::from_query(Some("format=bao")).unwrap(), Format::Bao);
        assert_eq!(
            Format::from_query(Some("x=1&format=bao&y")).unwrap(),
            Format::Bao
        );
        assert_eq!(
            Format::from_query(Some("format=bao&format=bao")).unwrap(),
            Format::Bao
        );
        let err = Format::from_query(Some("format=car")).unwrap_err();
        assert!(err.to_string().contains("allowed: raw, bao"), "{err}");
        assert!(Format::from_query(Some("format=")).is_err());
        assert!(Format::from_query(Some("format=raw&format=bao")).is_err());
    }
}
