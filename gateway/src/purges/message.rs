//! What fleet members say to each other about purges (`swarm/PROTOCOL.md`,
//! *Purges*): the PURGE a purge's origin sends every live peer and its answer,
//! and the PURGE_LOG exchange with which a node catches up on what it missed.
//!
//! JSON, because a purge is a `POST /purge` body and that is JSON already;
//! every message carries `"v": 1`. Everything from a peer is decoded into typed
//! values (unknown fields refused) and checked as a local `POST /purge` body
//! would be: anything else is an error the caller declines, never a panic.

use bytes::Bytes;
use fleetcache_swarm::{MAX_LOG_LEN, MAX_MESSAGE_LEN, NodeName};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::RequestError;
use crate::proxy::purge::PurgeRequest;

/// The message format this build speaks.
pub(crate) const FORMAT: u8 = 1;

/// Room left in a PURGE for everything but the selectors (id, time, origin
/// name, field names): the selectors of one part fit in the rest.
const ENVELOPE: usize = 1024;

/// Longest selector, JSON-encoded. Store keys are at most 8 KiB and tags 1 KiB,
/// so a longer one could never match anything; escaping may double a string.
pub(crate) const SELECTOR_MAX: usize = 16 * 1024;

/// A purge's fleet-wide identity: 128 random bits, written as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PurgeId(pub(crate) [u8; 16]);

impl PurgeId {
    pub(crate) fn random() -> PurgeId {
        PurgeId(rand::random())
    }

    pub(crate) fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn from_hex(text: &str) -> Option<PurgeId> {
        if text.len() != 32 || !text.is_ascii() {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            let digits = text.get(2 * i..2 * i + 2)?;
            if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            *byte = u8::from_str_radix(digits, 16).ok()?;
        }
        Some(PurgeId(id))
    }
}

impl std::fmt::Display for PurgeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for PurgeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for PurgeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        PurgeId::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("a purge id is 32 lower-case hex digits"))
    }
}

/// One fleet purge: what it removes, and who made it when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Purge {
    pub(crate) id: PurgeId,
    /// Unix milliseconds on the origin node's clock; the purge is kept until
    /// `created + retention` by each keeper's clock.
    pub(crate) created: u64,
    /// The node name of the node that was asked (`POST /purge`) and fanned it out.
    pub(crate) origin: String,
    /// What it removes: a `POST /purge` body, or one part of a large one.
    pub(crate) select: PurgeRequest,
}

impl Purge {
    /// The checks a purge from a peer must pass before it is applied or kept.
    fn check(&self) -> Result<(), MessageError> {
        self.origin
            .parse::<NodeName>()
            .map_err(|err| MessageError::Invalid(format!("origin {:?}: {err}", self.origin)))?;
        self.select
            .check()
            .map_err(|err| MessageError::Invalid(err.to_string()))?;
        let longest = selectors(&self.select).map(encoded_len).max().unwrap_or(0);
        if longest > SELECTOR_MAX {
            return Err(MessageError::Invalid(format!(
                "a selector of {longest} bytes; at most {SELECTOR_MAX}"
            )));
        }
        Ok(())
    }
}

/// PURGE: a purge from the node that made it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushRequest {
    pub(crate) v: u8,
    pub(crate) purge: Purge,
}

/// The answer to a PURGE: applied (`applied: false` if it was known already)
/// and how many entries it removed there.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushAnswer {
    pub(crate) v: u8,
    pub(crate) applied: bool,
    pub(crate) removed: u64,
}

/// PURGE_LOG: the purges the responder received after `after` (a value of its
/// own clock from an earlier answer), or all it keeps.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogRequest {
    pub(crate) v: u8,
    pub(crate) after: Option<u64>,
}

/// The answer to a PURGE_LOG: one page of kept purges, oldest received first.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogAnswer {
    pub(crate) v: u8,
    /// Where the next request starts (`after`): the receive time of the last
    /// purge in this page when `more`, else the responder's clock.
    pub(crate) through: u64,
    /// The latest receive time of a purge the responder dropped at the end
    /// of its retention; a requester whose `after` is older may have missed it.
    pub(crate) dropped_through: Option<u64>,
    /// More purges follow: ask again from `through`.
    pub(crate) more: bool,
    pub(crate) purges: Vec<Purge>,
}

/// Why a purge message was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MessageError {
    /// Not JSON of the expected shape.
    #[error("malformed purge message: {0}")]
    Malformed(String),
    /// A format this build does not speak.
    #[error("purge message format {0}; this node speaks {FORMAT}")]
    Version(u8),
    /// Well-formed, but a purge in it is not one this node would accept.
    #[error("invalid purge: {0}")]
    Invalid(String),
    /// Over the swarm's limit for the message.
    #[error("purge message of {len} bytes; at most {max}")]
    TooLarge { len: usize, max: usize },
    /// A PURGE whose purge was made by another node than its sender: only the
    /// origin sends PURGE, so purges never travel in loops.
    #[error("{from} sent a purge made by {origin}")]
    NotItsOwn { from: String, origin: String },
    /// A PURGE_LOG page that says more follows but carries nothing.
    #[error("a purge log page with more to come is empty")]
    EmptyPage,
}

fn encode<T: Serialize>(message: &T, max: usize) -> Result<Bytes, MessageError> {
    let bytes = serde_json::to_vec(message).map_err(|e| MessageError::Malformed(e.to_string()))?;
    if bytes.len() > max {
        return Err(MessageError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    Ok(Bytes::from(bytes))
}

fn decode<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, MessageError> {
    if bytes.len() > max {
        return Err(MessageError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| MessageError::Malformed(e.to_string()))
}

fn version(v: u8) -> Result<(), MessageError> {
    if v == FORMAT {
        Ok(())
    } else {
        Err(MessageError::Version(v))
    }
}

pub(crate) fn encode_push(purge: &Purge) -> Result<Bytes, MessageError> {
    encode(
        &PushRequest {
            v: FORMAT,
            purge: purge.clone(),
        },
        MAX_MESSAGE_LEN,
    )
}

/// A PURGE from `from`: its purge, checked.
pub(crate) fn decode_push(from: &str, bytes: &[u8]) -> Result<Purge, MessageError> {
    let request: PushRequest = decode(bytes, MAX_MESSAGE_LEN)?;
    version(request.v)?;
    request.purge.check()?;
    if request.purge.origin != from {
        return Err(MessageError::NotItsOwn {
            from: from.to_owned(),
            origin: request.purge.origin,
        });
    }
    Ok(request.purge)
}

pub(crate) fn encode_push_answer(applied: bool, removed: u64) -> Result<Bytes, MessageError> {
    encode(
        &PushAnswer {
            v: FORMAT,
            applied,
            removed,
        },
        MAX_MESSAGE_LEN,
    )
}

pub(crate) fn decode_push_answer(bytes: &[u8]) -> Result<PushAnswer, MessageError> {
    let answer: PushAnswer = decode(bytes, MAX_MESSAGE_LEN)?;
    version(answer.v)?;
    Ok(answer)
}

pub(crate) fn encode_log_request(after: Option<u64>) -> Result<Bytes, MessageError> {
    encode(&LogRequest { v: FORMAT, after }, MAX_MESSAGE_LEN)
}

pub(crate) fn decode_log_request(bytes: &[u8]) -> Result<Option<u64>, MessageError> {
    let request: LogRequest = decode(bytes, MAX_MESSAGE_LEN)?;
    version(request.v)?;
    Ok(request.after)
}

pub(crate) fn encode_log_answer(answer: &LogAnswer) -> Result<Bytes, MessageError> {
    encode(answer, MAX_LOG_LEN)
}

/// A PURGE_LOG page, every purge in it checked: one bad purge refuses the page,
/// so a node never moves its cursor past a purge it could not apply.
pub(crate) fn decode_log_answer(bytes: &[u8]) -> Result<LogAnswer, MessageError> {
    let answer: LogAnswer = decode(bytes, MAX_LOG_LEN)?;
    version(answer.v)?;
    for purge in &answer.purges {
        purge.check()?;
    }
    if answer.more && answer.purges.is_empty() {
        return Err(MessageError::EmptyPage);
    }
    Ok(answer)
}

/// The JSON bytes of a kept purge, and the purge back from them.
pub(crate) fn purge_to_json(purge: &Purge) -> Result<Vec<u8>, MessageError> {
    serde_json::to_vec(purge).map_err(|e| MessageError::Malformed(e.to_string()))
}

pub(crate) fn purge_from_json(bytes: &[u8]) -> Result<Purge, MessageError> {
    let purge: Purge =
        serde_json::from_slice(bytes).map_err(|e| MessageError::Malformed(e.to_string()))?;
    purge.check()?;
    Ok(purge)
}

/// How many bytes of a PURGE_LOG answer are left for purges once the page's
/// own fields are written.
pub(crate) const LOG_PAGE_BUDGET: usize = MAX_LOG_LEN - ENVELOPE;

fn selectors(request: &PurgeRequest) -> impl Iterator<Item = &String> {
    request
        .urls
        .iter()
        .chain(&request.prefixes)
        .chain(&request.surrogate_keys)
}

/// A string's length as a JSON array element (quotes, escapes and a comma).
fn encoded_len(text: &String) -> usize {
    serde_json::to_string(text).map_or(usize::MAX, |s| s.len() + 1)
}

/// Splits a purge request into parts that each fit one PURGE message (a
/// `POST /purge` body may be up to 1 MiB; a message at most 64 KiB). Almost
/// every purge is one part. A selector too long to match anything is a 400.
pub(crate) fn split(request: PurgeRequest) -> Result<Vec<PurgeRequest>, RequestError> {
    split_within(request, MAX_MESSAGE_LEN - ENVELOPE)
}

fn split_within(request: PurgeRequest, budget: usize) -> Result<Vec<PurgeRequest>, RequestError> {
    if let Some(long) = selectors(&request).find(|s| encoded_len(s) > SELECTOR_MAX) {
        let shown: String = long.chars().take(60).collect();
        return Err(RequestError::BadRequest(format!(
            "purge selector {shown:?}… is longer than {SELECTOR_MAX} bytes; nothing that long is cached"
        )));
    }
    let mut parts = vec![PurgeRequest::default()];
    let mut used = 0;
    let PurgeRequest {
        urls,
        prefixes,
        surrogate_keys,
    } = request;
    let tagged = urls
        .into_iter()
        .map(|s| (0, s))
        .chain(prefixes.into_iter().map(|s| (1, s)))
        .chain(surrogate_keys.into_iter().map(|s| (2, s)));
    for (list, selector) in tagged {
        let len = encoded_len(&selector);
        if used + len > budget && used > 0 {
            parts.push(PurgeRequest::default());
            used = 0;
        }
        used += len;
        let Some(part) = parts.last_mut() else {
            continue;
        };
        match list {
            0 => part.urls.push(selector),
            1 => part.prefixes.push(selector),
            _ => part.surrogate_keys.push(selector),
        }
    }
    Ok(parts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn purge(select: PurgeRequest) -> Purge {
        Purge {
            id: PurgeId([7; 16]),
            created: 1_700_000_000_123,
            origin: "node-1".into(),
            select,
        }
    }

    fn urls(list: &[&str]) -> PurgeRequest {
        PurgeRequest {
            urls: list.iter().map(|s| (*s).to_owned()).collect(),
            ..PurgeRequest::default()
        }
    }

    #[test]
    fn ids_are_32_hex_digits_both_ways() {
        let id = PurgeId::random();
        assert_eq!(PurgeId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(id.to_hex().len(), 32);
        for bad in [
            "",
            "00",
            "zz000000000000000000000000000000",
            "+0000000000000000000000000000000",
            "0000000000000000000000000000000é",
            "000000000000000000000000000000000",
        ] {
            assert_eq!(PurgeId::from_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_push_round_trips_and_must_come_from_its_origin() {
        let sent = purge(PurgeRequest {
            urls: vec!["http://example.com/a?b".into()],
            prefixes: vec!["/p/".into()],
            surrogate_keys: vec!["group-x".into()],
        });
        let bytes = encode_push(&sent).unwrap();
        assert_eq!(decode_push("node-1", &bytes).unwrap(), sent);
        assert!(matches!(
            decode_push("node-2", &bytes),
            Err(MessageError::NotItsOwn { .. })
        ));
        let answer = encode_push_answer(true, 3).unwrap();
        let answer = decode_push_answer(&answer).unwrap();
        assert!(answer.applied);
        assert_eq!(answer.removed, 3);
    }

    #[test]
    fn log_messages_round_trip() {
        let bytes = encode_log_request(Some(42)).unwrap();
        assert_eq!(decode_log_request(&bytes).unwrap(), Some(42));
        assert_eq!(
            decode_log_request(&encode_log_request(None).unwrap()).unwrap(),
            None
        );
        let page = LogAnswer {
            v: FORMAT,
            through: 9,
            dropped_through: Some(3),
            more: true,
            purges: vec![purge(urls(&["/a"]))],
        };
        let decoded = decode_log_answer(&encode_log_answer(&page).unwrap()).unwrap();
        assert_eq!(decoded.through, 9);
        assert_eq!(decoded.dropped_through, Some(3));
        assert_eq!(decoded.purges, page.purges);
    }

    #[test]
    fn hostile_messages_are_errors_not_panics() {
        let good = String::from_utf8(encode_push(&purge(urls(&["/a"]))).unwrap().to_vec()).unwrap();
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"\x00\xff\xfe".to_vec(),
            b"null".to_vec(),
            b"[]".to_vec(),
            b"{}".to_vec(),
            good.as_bytes()[..good.len() / 2].to_vec(),
            good.replace("\"v\":1", "\"v\":2").into_bytes(),
            good.replace("\"v\":1", "\"v\":-1").into_bytes(),
            good.replace("\"v\":1", "\"v\":1,\"extra\":true")
                .into_bytes(),
            good.replace("0707", "zz07").into_bytes(),
            good.replace("node-1", "not a name").into_bytes(),
            good.replace("node-1", "").into_bytes(),
            good.replace("\"/a\"", "\"ftp://x/y\"").into_bytes(),
            good.replace("[\"/a\"]", "[]").into_bytes(),
            good.replace("\"/a\"", "1").into_bytes(),
            good.replace("\"created\":1700000000123", "\"created\":-5")
                .into_bytes(),
            good.replace(
                "\"created\":1700000000123",
                "\"created\":99999999999999999999999",
            )
            .into_bytes(),
            vec![b'['; 100_000],
            vec![b' '; MAX_MESSAGE_LEN + 1],
        ];
        // Every prefix of a valid message.
        for cut in (0..good.len()).step_by(7) {
            cases.push(good.as_bytes()[..cut].to_vec());
        }
        for case in &cases {
            assert!(decode_push("node-1", case).is_err(), "{case:?}");
            let _ = decode_log_request(case);
            assert!(decode_log_answer(case).is_err(), "{case:?}");
            let _ = decode_push_answer(case);
        }
        // A selector too long for any store key.
        let long = format!("/{}", "a".repeat(SELECTOR_MAX));
        let bytes = serde_json::to_vec(&PushRequest {
            v: FORMAT,
            purge: purge(urls(&[&long])),
        })
        .unwrap();
        assert!(matches!(
            decode_push("node-1", &bytes),
            Err(MessageError::Invalid(_))
        ));
        // A page that promises more but carries nothing would loop a puller.
        let empty = serde_json::to_vec(&LogAnswer {
            v: FORMAT,
            through: 1,
            dropped_through: None,
            more: true,
            purges: Vec::new(),
        })
        .unwrap();
        assert!(matches!(
            decode_log_answer(&empty),
            Err(MessageError::EmptyPage)
        ));
    }

    #[test]
    fn large_requests_split_into_parts_that_fit_and_keep_every_selector() {
        let request = PurgeRequest {
            urls: (0..3000).map(|i| format!("/u/{i:05}")).collect(),
            prefixes: (0..2000).map(|i| format!("/p/{i:05}/")).collect(),
            surrogate_keys: (0..4000).map(|i| format!("key-{i}")).collect(),
        };
        let parts = split(request.clone()).unwrap();
        assert!(parts.len() > 1, "{}", parts.len());
        let mut joined = PurgeRequest::default();
        for part in &parts {
            let bytes = encode_push(&purge(part.clone())).unwrap();
            assert!(bytes.len() <= MAX_MESSAGE_LEN);
            assert!(part.check().is_ok());
            joined.urls.extend(part.urls.iter().cloned());
            joined.prefixes.extend(part.prefixes.iter().cloned());
            joined
                .surrogate_keys
                .extend(part.surrogate_keys.iter().cloned());
        }
        assert_eq!(joined, request);
        // The usual purge is one part.
        assert_eq!(split(urls(&["/a", "/b"])).unwrap().len(), 1);
        // Each part holds at least one selector, even a selector near the budget.
        let parts = split_within(urls(&["/aaaa", "/bbbb", "/cccc"]), 8).unwrap();
        assert_eq!(parts.len(), 3);
        let long = format!("/{}", "a".repeat(SELECTOR_MAX));
        assert!(split(urls(&[&long])).is_err());
    }
}
