//! The list-of-directives syntax shared by `Cache-Control`, `Pragma` and
//! `Surrogate-Control`: `#( token [ "=" ( token / quoted-string ) ] )`, plus
//! Surrogate-Control's `;target` suffix, and delta-seconds (RFC 9111 §1.2.2).
//!
//! The parser works on bytes (values may hold obs-text), never fails, and
//! skips what it cannot read up to the next comma outside a quoted string,
//! so garbage in one directive never hides the directives after it.

use http::HeaderMap;
use http::header::HeaderName;

/// The value a delta-seconds argument saturates at (RFC 9111 §1.2.2).
pub(crate) const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// Parses `1*DIGIT`, saturating at [`DELTA_SECONDS_MAX`] (RFC 9111 §1.2.2).
pub(crate) fn parse_delta_seconds(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut seconds: u64 = 0;
    for digit in value {
        seconds = seconds
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'));
        if seconds >= DELTA_SECONDS_MAX {
            return Some(DELTA_SECONDS_MAX);
        }
    }
    Some(seconds)
}

/// The argument of one directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Argument {
    /// `name` alone.
    Absent,
    /// `name=token` or `name="quoted string"` (unescaped).
    Value(Vec<u8>),
    /// `name=` followed by something that is neither, or trailing garbage.
    Malformed,
}

/// One directive as written: lowercase name, argument, optional target
/// (`directive;target`, a Surrogate-Control form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawDirective {
    /// The directive name, lowercased.
    pub(crate) name: String,
    /// Its argument.
    pub(crate) argument: Argument,
    /// `;target`, lowercased.
    pub(crate) target: Option<String>,
}

/// Like [`raw_directives`] for fields without the `;target` form
/// (`Cache-Control`, `Pragma`): a target there is garbage after the argument.
pub(crate) fn cache_control_directives(
    headers: &HeaderMap,
    field: &HeaderName,
) -> Vec<RawDirective> {
    let mut directives = raw_directives(headers, field);
    for directive in &mut directives {
        if directive.target.take().is_some() {
            directive.argument = Argument::Malformed;
        }
    }
    directives
}

/// Every directive of every line of `field`, in order.
pub(crate) fn raw_directives(headers: &HeaderMap, field: &HeaderName) -> Vec<RawDirective> {
    let mut directives = Vec::new();
    for value in headers.get_all(field) {
        parse_line(value.as_bytes(), &mut directives);
    }
    directives
}

/// `tchar` (RFC 9110 §5.6.2): the characters of a token.
pub(crate) fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Optional whitespace (RFC 9110 §5.6.3): space or tab.
pub(crate) fn is_ows(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// `bytes` without leading and trailing OWS.
pub(crate) fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes
        && is_ows(*first)
    {
        bytes = rest;
    }
    while let [rest @ .., last] = bytes
        && is_ows(*last)
    {
        bytes = rest;
    }
    bytes
}

fn skip_ows(line: &[u8], mut pos: usize) -> usize {
    while line.get(pos).copied().is_some_and(is_ows) {
        pos += 1;
    }
    pos
}

fn skip_token(line: &[u8], mut pos: usize) -> usize {
    while line.get(pos).copied().is_some_and(is_tchar) {
        pos += 1;
    }
    pos
}

/// From just after an opening quote, the unescaped content and the position
/// after the closing quote; `None` if the string never closes.
fn quoted_string(line: &[u8], mut pos: usize) -> Option<(Vec<u8>, usize)> {
    let mut content = Vec::new();
    loop {
        match *line.get(pos)? {
            b'"' => return Some((content, pos + 1)),
            b'\\' => {
                content.push(*line.get(pos + 1)?);
                pos += 2;
            }
            byte => {
                content.push(byte);
                pos += 1;
            }
        }
    }
}

/// The position of the next comma outside a quoted string, or the end.
fn skip_element(line: &[u8], mut pos: usize) -> usize {
    let mut in_quotes = false;
    while let Some(&byte) = line.get(pos) {
        match byte {
            b',' if !in_quotes => return pos,
            b'"' => in_quotes = !in_quotes,
            b'\\' if in_quotes => pos += 1,
            _ => {}
        }
        pos += 1;
    }
    line.len()
}

/// Parses one field line: `#( token [ "=" ( token / quoted-string ) ] [ ";" token ] )`,
/// tolerating whitespace around `=` and `;`, and skipping elements that do
/// not start with a token.
pub(crate) fn parse_line(line: &[u8], out: &mut Vec<RawDirective>) {
    let mut pos = 0;
    loop {
        while line
            .get(pos)
            .is_some_and(|&byte| is_ows(byte) || byte == b',')
        {
            pos += 1;
        }
        if pos >= line.len() {
            return;
        }
        let name_end = skip_token(line, pos);
        if name_end == pos {
            pos = skip_element(line, pos);
            continue;
        }
        let name = String::from_utf8_lossy(&line[pos..name_end]).to_ascii_lowercase();
        pos = skip_ows(line, name_end);
        let mut argument = Argument::Absent;
        let mut malformed = false;
        if line.get(pos) == Some(&b'=') {
            pos = skip_ows(line, pos + 1);
            if line.get(pos) == Some(&b'"') {
                match quoted_string(line, pos + 1) {
                    Some((value, end)) => {
                        argument = Argument::Value(value);
                        pos = end;
                    }
                    None => {
                        malformed = true;
                        pos = line.len();
                    }
                }
            } else {
                let value_end = skip_token(line, pos);
                if value_end == pos {
                    malformed = true;
                } else {
                    argument = Argument::Value(line[pos..value_end].to_vec());
                }
                pos = value_end;
            }
            pos = skip_ows(line, pos);
        }
        let mut target = None;
        if line.get(pos) == Some(&b';') {
            pos = skip_ows(line, pos + 1);
            let target_end = skip_token(line, pos);
            if target_end == pos {
                malformed = true;
            } else {
                target = Some(String::from_utf8_lossy(&line[pos..target_end]).to_ascii_lowercase());
            }
            pos = skip_ows(line, target_end);
        }
        if pos < line.len() && line.get(pos) != Some(&b',') {
            malformed = true;
            pos = skip_element(line, pos);
        }
        out.push(RawDirective {
            name,
            argument: if malformed {
                Argument::Malformed
            } else {
                argument
            },
            target,
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(line: &[u8]) -> Vec<RawDirective> {
        let mut out = Vec::new();
        parse_line(line, &mut out);
        out
    }

    fn directive(name: &str, argument: Argument, target: Option<&str>) -> RawDirective {
        RawDirective {
            name: name.to_owned(),
            argument,
            target: target.map(str::to_owned),
        }
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(parse_delta_seconds(b"0"), Some(0));
        assert_eq!(parse_delta_seconds(b"0060"), Some(60));
        assert_eq!(parse_delta_seconds(b"2147483647"), Some(2_147_483_647));
        assert_eq!(parse_delta_seconds(b"2147483648"), Some(DELTA_SECONDS_MAX));
        assert_eq!(
            parse_delta_seconds(b"99999999999999999999"),
            Some(DELTA_SECONDS_MAX)
        );
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"1.5",
            b"1e3",
            b" 1",
            b"0x10",
            b"\xff",
        ] {
            assert_eq!(parse_delta_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn directives_arguments_and_targets() {
        assert_eq!(
            parse(b"A, b=1, c=\"x, \\\"y\\\"\", d=;e, f=2;Edge , g h, i"),
            [
                directive("a", Argument::Absent, None),
                directive("b", Argument::Value(b"1".to_vec()), None),
                directive("c", Argument::Value(b"x, \"y\"".to_vec()), None),
                directive("d", Argument::Malformed, Some("e")),
                directive("f", Argument::Value(b"2".to_vec()), Some("edge")),
                directive("g", Argument::Malformed, None),
                directive("i", Argument::Absent, None),
            ]
        );
        assert_eq!(
            parse(b"x=\"open"),
            [directive("x", Argument::Malformed, None)]
        );
        assert!(parse(b"").is_empty());
        assert!(parse(b" , ,\t").is_empty());
    }
}
