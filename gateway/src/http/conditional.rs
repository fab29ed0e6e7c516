//! Conditional requests (RFC 9110 §13) against one strong entity tag.
//!
//! Objects are immutable and addressed by hash, so the entity tag is the hash
//! and there is no Last-Modified: date-based preconditions never apply, and a
//! date in `If-Range` never matches (so the full object is sent).

use http::HeaderMap;
use http::header::{IF_MATCH, IF_NONE_MATCH, IF_RANGE};

/// What the preconditions of a GET or HEAD request decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Carry on and build the normal response.
    Proceed,
    /// `If-None-Match` matched: 304 Not Modified.
    NotModified,
    /// `If-Match` did not match: 412 Precondition Failed.
    Failed,
}

/// Evaluates `If-Match` then `If-None-Match`, in the order RFC 9110 §13.2.2
/// prescribes, for a representation whose strong entity tag is `etag`
/// (including the quotes).
pub(crate) fn evaluate(headers: &HeaderMap, etag: &str) -> Precondition {
    if let Some(list) = header_str(headers, IF_MATCH)
        && !list_matches(&list, etag, Comparison::Strong)
    {
        return Precondition::Failed;
    }
    if let Some(list) = header_str(headers, IF_NONE_MATCH)
        && list_matches(&list, etag, Comparison::Weak)
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Whether a `Range` header may be honoured given `If-Range`: true when there
/// is no `If-Range`, or when it carries our strong entity tag.
pub(crate) fn if_range_allows(headers: &HeaderMap, etag: &str) -> bool {
    match header_str(headers, IF_RANGE) {
        None => true,
        // A weak tag or an HTTP date never validates here.
        Some(value) => value.trim() == etag,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

/// All values of a list header joined with commas, as one string. Values that
/// are not visible ASCII make the header count as malformed (absent for
/// If-None-Match; non-matching for If-Match, via `list_matches` on "").
fn header_str(headers: &HeaderMap, name: http::header::HeaderName) -> Option<String> {
    let mut values = headers.get_all(&name).iter().peekable();
    values.peek()?;
    let mut joined = String::new();
    for value in values {
        let Ok(text) = value.to_str() else {
            return Some(String::new());
        };
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(text);
    }
    Some(joined)
}

/// `*` or a comma-separated list of entity tags; true if any matches `etag`.
fn list_matches(list: &str, etag: &str, comparison: Comparison) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        let (weak, tagged) = match rest.strip_prefix("W/") {
            Some(tagged) => (true, tagged),
            None => (false, rest),
        };
        let Some(body) = tagged.strip_prefix('"') else {
            return false;
        };
        let Some(close) = body.find('"') else {
            return false;
        };
        let tag = &tagged[..close + 2];
        let matches = match comparison {
            Comparison::Strong => !weak && tag == etag,
            Comparison::Weak => tag == etag,
        };
        if matches {
            return true;
        }
        rest = &body[close + 1..];
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ETAG: &str = "\"abc\"";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn no_preconditions_proceed() {
        assert_eq!(evaluate(&headers(&[]), ETAG), Precondition::Proceed);
    }

    #[test]
    fn if_none_match() {
        for value in [
            "\"abc\"",
            "*",
            "\"x\", \"abc\"",
            "W/\"abc\"",
            "\"x\",W/\"abc\"",
        ] {
            assert_eq!(
                evaluate(&headers(&[("if-none-match", value)]), ETAG),
                Precondition::NotModified,
                "{value}"
            );
        }
        for value in ["\"abd\"", "abc", "\"ab\"", "", "W/"] {
            assert_eq!(
                evaluate(&headers(&[("if-none-match", value)]), ETAG),
                Precondition::Proceed,
                "{value}"
            );
        }
    }

    #[test]
    fn if_none_match_across_repeated_headers() {
        let h = headers(&[("if-none-match", "\"x\""), ("if-none-match", "\"abc\"")]);
        assert_eq!(evaluate(&h, ETAG), Precondition::NotModified);
    }

    #[test]
    fn if_match_is_strong() {
        assert_eq!(
            evaluate(&headers(&[("if-match", "\"abc\"")]), ETAG),
            Precondition::Proceed
        );
        assert_eq!(
            evaluate(&headers(&[("if-match", "*")]), ETAG),
            Precondition::Proceed
        );
        assert_eq!(
            evaluate(&headers(&[("if-match", "W/\"abc\"")]), ETAG),
            Precondition::Failed
        );
        assert_eq!(
            evaluate(&headers(&[("if-match", "\"nope\"")]), ETAG),
            Precondition::Failed
        );
        assert_eq!(
            evaluate(&headers(&[("if-match", "garbage")]), ETAG),
            Precondition::Failed
        );
    }

    #[test]
    fn if_match_is_checked_before_if_none_match() {
        let h = headers(&[("if-match", "\"nope\""), ("if-none-match", "\"abc\"")]);
        assert_eq!(evaluate(&h, ETAG), Precondition::Failed);
    }

    #[test]
    fn if_range() {
        assert!(if_range_allows(&headers(&[]), ETAG));
        assert!(if_range_allows(&headers(&[("if-range", "\"abc\"")]), ETAG));
        assert!(!if_range_allows(
            &headers(&[("if-range", "W/\"abc\"")]),
            ETAG
        ));
        assert!(!if_range_allows(
            &headers(&[("if-range", "\"other\"")]),
            ETAG
        ));
        assert!(!if_range_allows(
            &headers(&[("if-range", "Tue, 24 Nov 2026 10:00:00 GMT")]),
            ETAG
        ));
    }
}
