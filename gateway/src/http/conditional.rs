//! Conditional requests (RFC 9110 §13) against a representation's validators:
//! an entity tag (strong or weak) and a last-modification date.
//!
//! Objects served by hash have a strong tag (the hash) and no date; URL objects
//! carry whatever validators their origin sent.

use http::HeaderMap;
use http::header::{IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE};

use crate::cache::date::parse_http_date;

/// What the preconditions of a GET or HEAD request decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Carry on and build the normal response.
    Proceed,
    /// `If-None-Match` or `If-Modified-Since` says the client has it: 304.
    NotModified,
    /// `If-Match` or `If-Unmodified-Since` failed: 412 Precondition Failed.
    Failed,
}

/// A representation's validators.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Validators<'a> {
    /// The `ETag` value as sent, e.g. `"abc"` or `W/"abc"`.
    pub(crate) etag: Option<&'a str>,
    /// `Last-Modified`, in Unix seconds.
    pub(crate) last_modified: Option<u64>,
    /// For a stored response without `Last-Modified`: when it was generated
    /// (its `Date`, else when it arrived). Only `If-Modified-Since` compares
    /// with it (RFC 9111 §4.3.2); `If-Unmodified-Since` and `If-Range` need a
    /// real modification date.
    pub(crate) generated: Option<u64>,
}

impl Validators<'_> {
    /// The tag and whether it is weak; `None` when absent or malformed.
    fn tag(&self) -> Option<(bool, &str)> {
        let etag = self.etag?.trim();
        let (weak, tag) = match etag.strip_prefix("W/") {
            Some(tag) => (true, tag),
            None => (false, etag),
        };
        let well_formed = tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"');
        well_formed.then_some((weak, tag))
    }
}

/// Evaluates the preconditions in the order RFC 9110 §13.2.2 prescribes:
/// `If-Match`, else `If-Unmodified-Since`; then `If-None-Match`, else
/// `If-Modified-Since`. `now` (Unix seconds) makes a date in the future invalid.
pub(crate) fn evaluate(headers: &HeaderMap, validators: &Validators<'_>, now: u64) -> Precondition {
    let tag = validators.tag();
    if let Some(list) = header_str(headers, IF_MATCH) {
        if !list_matches(&list, tag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let (Some(date), Some(modified)) = (
        header_date(headers, IF_UNMODIFIED_SINCE, now),
        validators.last_modified,
    ) && modified > date
    {
        return Precondition::Failed;
    }
    if let Some(list) = header_str(headers, IF_NONE_MATCH) {
        if list_matches(&list, tag, Comparison::Weak) {
            return Precondition::NotModified;
        }
    } else if let (Some(date), Some(modified)) = (
        header_date(headers, IF_MODIFIED_SINCE, now),
        validators.last_modified.or(validators.generated),
    ) && date <= now
        && modified <= date
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Whether a `Range` header may be honoured given `If-Range` (§13.1.5): true
/// when there is no `If-Range`, when it carries our strong entity tag, or when
/// it carries exactly our modification date.
pub(crate) fn if_range_allows(headers: &HeaderMap, validators: &Validators<'_>) -> bool {
    let Some(value) = header_str(headers, IF_RANGE) else {
        return true;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return matches!(validators.tag(), Some((false, tag)) if tag == value);
    }
    match (
        validators.last_modified,
        parse_http_date(value.as_bytes(), 0),
    ) {
        (Some(modified), Some(date)) => modified == date,
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

/// A date header's value; `None` if absent, repeated, malformed, or (for
/// `If-Modified-Since`, checked by the caller) in the future.
fn header_date(headers: &HeaderMap, name: http::header::HeaderName, now: u64) -> Option<u64> {
    let mut values = headers.get_all(&name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_http_date(value.as_bytes(), now)
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

/// `*` or a comma-separated list of entity tags; true if any matches `ours`
/// (`*` matches any current representation, which there always is here).
fn list_matches(list: &str, ours: Option<(bool, &str)>, comparison: Comparison) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let Some((our_weak, our_tag)) = ours else {
        return false;
    };
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
            Comparison::Strong => !weak && !our_weak && tag == our_tag,
            Comparison::Weak => tag == our_tag,
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

    const ETAG: Validators<'static> = Validators {
        etag: Some("\"abc\""),
        last_modified: None,
        generated: None,
    };
    const NOW: u64 = 1_800_000_000;

    fn evaluate(headers: &HeaderMap, validators: Validators<'_>) -> Precondition {
        super::evaluate(headers, &validators, NOW)
    }

    fn if_range_allows(headers: &HeaderMap, validators: Validators<'_>) -> bool {
        super::if_range_allows(headers, &validators)
    }

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

    #[test]
    fn weak_tags_match_weakly_only() {
        let weak = Validators {
            etag: Some("W/\"abc\""),
            ..Validators::default()
        };
        let h = headers(&[("if-none-match", "\"abc\"")]);
        assert_eq!(evaluate(&h, weak), Precondition::NotModified);
        let h = headers(&[("if-match", "\"abc\"")]);
        assert_eq!(evaluate(&h, weak), Precondition::Failed);
        assert!(!if_range_allows(
            &headers(&[("if-range", "W/\"abc\"")]),
            weak
        ));
        let none = Validators::default();
        assert_eq!(
            evaluate(&headers(&[("if-match", "\"abc\"")]), none),
            Precondition::Failed
        );
        assert_eq!(
            evaluate(&headers(&[("if-match", "*")]), none),
            Precondition::Proceed
        );
    }

    #[test]
    fn dates_compare_with_last_modified() {
        let modified = NOW - 1000;
        let v = Validators {
            last_modified: Some(modified),
            ..Validators::default()
        };
        let at = |t: u64| crate::cache::date::format_http_date(t);
        // If-Modified-Since: not modified at or after the date.
        let h = headers(&[("if-modified-since", &at(modified))]);
        assert_eq!(evaluate(&h, v), Precondition::NotModified);
        let h = headers(&[("if-modified-since", &at(modified - 1))]);
        assert_eq!(evaluate(&h, v), Precondition::Proceed);
        // A date in the future is invalid and ignored.
        let h = headers(&[("if-modified-since", &at(NOW + 60))]);
        assert_eq!(evaluate(&h, v), Precondition::Proceed);
        // If-None-Match wins over If-Modified-Since.
        let h = headers(&[
            ("if-none-match", "\"other\""),
            ("if-modified-since", &at(modified)),
        ]);
        assert_eq!(evaluate(&h, v), Precondition::Proceed);
        // If-Unmodified-Since.
        let h = headers(&[("if-unmodified-since", &at(modified - 1))]);
        assert_eq!(evaluate(&h, v), Precondition::Failed);
        let h = headers(&[("if-unmodified-since", &at(modified))]);
        assert_eq!(evaluate(&h, v), Precondition::Proceed);
        let h = headers(&[("if-unmodified-since", "garbage")]);
        assert_eq!(evaluate(&h, v), Precondition::Proceed);
        // If-Range with the exact date.
        assert!(if_range_allows(&headers(&[("if-range", &at(modified))]), v));
        assert!(!if_range_allows(
            &headers(&[("if-range", &at(modified + 1))]),
            v
        ));
    }

    #[test]
    fn without_last_modified_if_modified_since_uses_the_generation_date() {
        let generated = NOW - 3600;
        let v = Validators {
            generated: Some(generated),
            ..Validators::default()
        };
        let at = |t: u64| crate::cache::date::format_http_date(t);
        let h = headers(&[("if-modified-since", &at(generated))]);
        assert_eq!(evaluate(&h, v), Precondition::NotModified);
        let h = headers(&[("if-modified-since", &at(generated - 1))]);
        assert_eq!(evaluate(&h, v), Precondition::Proceed);
        // Never for If-Unmodified-Since or If-Range.
        let h = headers(&[("if-unmodified-since", &at(generated - 1))]);
        assert_eq!(evaluate(&h, v), Precondition::Proceed);
        assert!(!if_range_allows(
            &headers(&[("if-range", &at(generated))]),
            v
        ));
    }
}
