//! A strict parser for Structured Field Dictionaries (RFC 8941 §3.2,
//! §4.2.2), the syntax of targeted cache-control fields (RFC 9213 §2.1).
//!
//! It follows the parsing algorithms of RFC 8941 §4.2 step by step, on
//! bytes, and keeps only what cache directives can use: each member's key
//! and, when the member is an Item, its bare value. Parameters and the
//! contents of Inner Lists are parsed (they must be valid, or the field is)
//! and then dropped: RFC 9213 §2.1 says parameters on cache directives are
//! ignored, and no cache directive takes a list. Byte Sequences are checked
//! for the base64 alphabet but not decoded, for the same reason.
//!
//! Unlike the lenient `Cache-Control` parser in [`super::syntax`], any error
//! fails the whole field (RFC 8941 §4.2: "fail parsing"), and the caller then
//! ignores the field (RFC 9213 §2.1). Nothing here can panic or allocate more
//! than the input's size.

use http::HeaderMap;
use http::header::HeaderName;

/// The value of a dictionary member that is an Item (RFC 8941 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BareItem {
    /// An Integer: at most 15 digits, so always within `i64`.
    Integer(i64),
    /// A Decimal, in thousandths (at most three fractional digits).
    Decimal(i64),
    /// A String: printable ASCII, unescaped.
    String(String),
    /// A Token.
    Token(String),
    /// A Byte Sequence (content not kept).
    ByteSequence,
    /// A Boolean; a member without `=` is `true`.
    Boolean(bool),
}

/// A dictionary member's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Member {
    /// An Item (its parameters dropped).
    Item(BareItem),
    /// An Inner List (its contents dropped).
    InnerList,
}

/// A parsed Dictionary, as the members in field order, repeated keys
/// included. RFC 8941 §4.2.2 has a repeated key overwrite the earlier value;
/// a consumer that reads the members in order and lets each overwrite gets
/// exactly that, without a de-duplication pass that would be quadratic in
/// a hostile field's size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Dictionary {
    members: Vec<(String, Member)>,
}

impl Dictionary {
    /// The members, in order, repeated keys included (the last one counts).
    pub(crate) fn members(&self) -> &[(String, Member)] {
        &self.members
    }

    /// Whether it has no member (an empty field, RFC 9213 §2.1).
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The value of `key`'s last occurrence, if present.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &str) -> Option<&Member> {
        self.members
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, member)| member)
    }
}

/// Parses every line of `field` as one Dictionary, the lines combined with
/// `, ` (RFC 8941 §4.2 step 1); `None` if the field is absent or does not
/// parse.
pub(crate) fn parse_dictionary_field(
    headers: &HeaderMap,
    field: &HeaderName,
) -> Option<Dictionary> {
    let mut lines = headers.get_all(field).iter().peekable();
    lines.peek()?;
    let mut combined = Vec::new();
    for (index, line) in lines.enumerate() {
        if index > 0 {
            combined.extend_from_slice(b", ");
        }
        combined.extend_from_slice(line.as_bytes());
    }
    parse_dictionary(&combined)
}

/// Parses a field value as a Dictionary (RFC 8941 §4.2, §4.2.2); `None` on
/// any error. An empty value is an empty Dictionary.
pub(crate) fn parse_dictionary(input: &[u8]) -> Option<Dictionary> {
    let mut parser = Parser { input, pos: 0 };
    parser.skip_sp();
    let mut dictionary = Dictionary::default();
    while !parser.at_end() {
        let key = parser.key()?;
        let member = if parser.eat(b'=') {
            parser.item_or_inner_list()?
        } else {
            parser.parameters()?;
            Member::Item(BareItem::Boolean(true))
        };
        dictionary.members.push((key, member));
        parser.skip_ows();
        if parser.at_end() {
            break;
        }
        if !parser.eat(b',') {
            return None;
        }
        parser.skip_ows();
        if parser.at_end() {
            // A trailing comma.
            return None;
        }
    }
    // §4.2 steps 4-6: trailing SP is discarded, anything else left fails;
    // the loop above only ends at the end of the input.
    Some(dictionary)
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

fn is_lcalpha(byte: u8) -> bool {
    byte.is_ascii_lowercase()
}

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_sp(&mut self) {
        while self.eat(b' ') {}
    }

    /// OWS: space or tab (RFC 9110 §5.6.3).
    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// §4.2.3.3: `( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`.
    fn key(&mut self) -> Option<String> {
        let start = self.pos;
        if !self.peek().is_some_and(|b| is_lcalpha(b) || b == b'*') {
            return None;
        }
        self.pos += 1;
        while self
            .peek()
            .is_some_and(|b| is_lcalpha(b) || b.is_ascii_digit() || b"_-.*".contains(&b))
        {
            self.pos += 1;
        }
        ascii(self.input.get(start..self.pos)?)
    }

    /// §4.2.1.1.
    fn item_or_inner_list(&mut self) -> Option<Member> {
        if self.peek() == Some(b'(') {
            self.inner_list()?;
            Some(Member::InnerList)
        } else {
            let item = self.bare_item()?;
            self.parameters()?;
            Some(Member::Item(item))
        }
    }

    /// §4.2.1.2: `"(" *SP [ item *( 1*SP item ) *SP ] ")" parameters`.
    fn inner_list(&mut self) -> Option<()> {
        if !self.eat(b'(') {
            return None;
        }
        while !self.at_end() {
            self.skip_sp();
            if self.eat(b')') {
                return self.parameters();
            }
            self.bare_item()?;
            self.parameters()?;
            if !matches!(self.peek(), Some(b' ' | b')')) {
                return None;
            }
        }
        None
    }

    /// §4.2.3.2: `*( ";" *SP key [ "=" bare-item ] )`, parsed and dropped.
    fn parameters(&mut self) -> Option<()> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Some(())
    }

    /// §4.2.3.1.
    fn bare_item(&mut self) -> Option<BareItem> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string(),
            b'*' | b'A'..=b'Z' | b'a'..=b'z' => self.token(),
            b':' => self.byte_sequence(),
            b'?' => self.boolean(),
            _ => None,
        }
    }

    /// §4.2.4: Integer (at most 15 digits) or Decimal (at most 12 integer
    /// and 3 fractional digits).
    fn number(&mut self) -> Option<BareItem> {
        let negative = self.eat(b'-');
        let mut integer: i64 = 0;
        let mut digits = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            self.pos += 1;
            digits += 1;
            if digits > 15 {
                return None;
            }
            integer = integer * 10 + i64::from(digit - b'0');
        }
        if digits == 0 {
            return None;
        }
        let sign = if negative { -1 } else { 1 };
        if !self.eat(b'.') {
            return Some(BareItem::Integer(sign * integer));
        }
        if digits > 12 {
            return None;
        }
        let mut fraction: i64 = 0;
        let mut fraction_digits = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            self.pos += 1;
            fraction_digits += 1;
            if fraction_digits > 3 {
                return None;
            }
            fraction = fraction * 10 + i64::from(digit - b'0');
        }
        if fraction_digits == 0 {
            // "1." : a decimal point must be followed by a digit.
            return None;
        }
        for _ in fraction_digits..3 {
            fraction *= 10;
        }
        Some(BareItem::Decimal(sign * (integer * 1000 + fraction)))
    }

    /// §4.2.5: `DQUOTE *( unescaped / "\" ( DQUOTE / "\" ) ) DQUOTE`, where
    /// `unescaped` is printable ASCII.
    fn string(&mut self) -> Option<BareItem> {
        if !self.eat(b'"') {
            return None;
        }
        let mut content = String::new();
        loop {
            let byte = self.peek()?;
            self.pos += 1;
            match byte {
                b'\\' => {
                    let escaped = self.peek()?;
                    if escaped != b'"' && escaped != b'\\' {
                        return None;
                    }
                    self.pos += 1;
                    content.push(char::from(escaped));
                }
                b'"' => return Some(BareItem::String(content)),
                0x20..=0x7e => content.push(char::from(byte)),
                _ => return None,
            }
        }
    }

    /// §4.2.6: `( ALPHA / "*" ) *( tchar / ":" / "/" )`.
    fn token(&mut self) -> Option<BareItem> {
        let start = self.pos;
        if !self
            .peek()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'*')
        {
            return None;
        }
        self.pos += 1;
        while self
            .peek()
            .is_some_and(|b| is_tchar(b) || b == b':' || b == b'/')
        {
            self.pos += 1;
        }
        ascii(self.input.get(start..self.pos)?).map(BareItem::Token)
    }

    /// §4.2.7: `":" *( base64 alphabet / "=" ) ":"`, not decoded.
    fn byte_sequence(&mut self) -> Option<BareItem> {
        if !self.eat(b':') {
            return None;
        }
        loop {
            match self.peek()? {
                b':' => {
                    self.pos += 1;
                    return Some(BareItem::ByteSequence);
                }
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => self.pos += 1,
                _ => return None,
            }
        }
    }

    /// §4.2.8: `"?" ( "0" / "1" )`.
    fn boolean(&mut self) -> Option<BareItem> {
        if !self.eat(b'?') {
            return None;
        }
        let value = match self.peek()? {
            b'1' => true,
            b'0' => false,
            _ => return None,
        };
        self.pos += 1;
        Some(BareItem::Boolean(value))
    }
}

/// Bytes already checked to be ASCII, as a `String`.
fn ascii(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes).ok().map(str::to_owned)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cache::test_support::headers;

    fn parse(input: &str) -> Option<Dictionary> {
        parse_dictionary(input.as_bytes())
    }

    fn item(input: &str, key: &str) -> BareItem {
        match parse(input).unwrap().get(key).unwrap() {
            Member::Item(item) => item.clone(),
            Member::InnerList => panic!("{key} is a list"),
        }
    }

    fn keys(input: &str) -> Vec<String> {
        parse(input)
            .unwrap()
            .members()
            .iter()
            .map(|(key, _)| key.clone())
            .collect()
    }

    #[test]
    fn rfc_8941_examples() {
        // §3.2
        let example = parse("en=\"Applepie\", da=:w4ZibGV0w6ZydGUK:").unwrap();
        assert_eq!(
            example.get("en"),
            Some(&Member::Item(BareItem::String("Applepie".into())))
        );
        assert_eq!(
            example.get("da"),
            Some(&Member::Item(BareItem::ByteSequence))
        );
        let booleans = parse("a=?0, b, c; foo=bar").unwrap();
        assert_eq!(
            booleans.members(),
            [
                ("a".into(), Member::Item(BareItem::Boolean(false))),
                ("b".into(), Member::Item(BareItem::Boolean(true))),
                ("c".into(), Member::Item(BareItem::Boolean(true))),
            ]
        );
        let lists = parse("rating=1.5, feelings=(joy sadness)").unwrap();
        assert_eq!(
            lists.get("rating"),
            Some(&Member::Item(BareItem::Decimal(1500)))
        );
        assert_eq!(lists.get("feelings"), Some(&Member::InnerList));
        assert_eq!(
            keys("a=(1 2), b=3, c=4;aa=bb, d=(5 6);valid"),
            ["a", "b", "c", "d"]
        );
    }

    #[test]
    fn every_bare_item_type() {
        assert_eq!(item("a=42", "a"), BareItem::Integer(42));
        assert_eq!(item("a=-42", "a"), BareItem::Integer(-42));
        assert_eq!(item("a=0042", "a"), BareItem::Integer(42));
        assert_eq!(
            item("a=999999999999999", "a"),
            BareItem::Integer(999_999_999_999_999)
        );
        assert_eq!(item("a=-0.5", "a"), BareItem::Decimal(-500));
        assert_eq!(
            item("a=123456789012.123", "a"),
            BareItem::Decimal(123_456_789_012_123)
        );
        assert_eq!(
            item("a=\"say \\\"hi\\\" \\\\ \"", "a"),
            BareItem::String("say \"hi\" \\ ".into())
        );
        assert_eq!(item("a=\"\"", "a"), BareItem::String(String::new()));
        assert_eq!(
            item("a=*foo:bar/baz!", "a"),
            BareItem::Token("*foo:bar/baz!".into())
        );
        assert_eq!(item("a=Foo", "a"), BareItem::Token("Foo".into()));
        assert_eq!(item("a=::", "a"), BareItem::ByteSequence);
        assert_eq!(item("a=?1", "a"), BareItem::Boolean(true));
        assert_eq!(item("a", "a"), BareItem::Boolean(true));
        assert_eq!(parse("a=()").unwrap().get("a"), Some(&Member::InnerList));
        assert_eq!(
            parse("a=( 1  \"x\";p=2 )").unwrap().get("a"),
            Some(&Member::InnerList)
        );
    }

    #[test]
    fn keys_whitespace_and_duplicates() {
        assert_eq!(keys("*a_b-c.d*9=1"), ["*a_b-c.d*9"]);
        assert_eq!(keys("a=1,b=2"), ["a", "b"]);
        assert_eq!(keys("a=1 ,\tb=2"), ["a", "b"]);
        assert_eq!(keys("   a=1   "), ["a"]);
        // OWS after a member is part of the dictionary syntax (§4.2.2).
        assert_eq!(keys("a=1\t"), ["a"]);
        // A repeated key: its last value counts.
        let repeated = parse("a=1, b=2, a=3").unwrap();
        assert_eq!(keys("a=1, b=2, a=3"), ["a", "b", "a"]);
        assert_eq!(repeated.get("a"), Some(&Member::Item(BareItem::Integer(3))));
        assert!(parse("").unwrap().is_empty());
        assert!(parse("   ").unwrap().is_empty());
        // Parameters may follow a space after `;`, never before.
        assert_eq!(keys("a=1; q=2;r"), ["a"]);
    }

    #[test]
    fn invalid_dictionaries_fail() {
        for bad in [
            "A=1",                  // uppercase key
            "MaX-aGe=3600",         // keys are lowercase (§3.2)
            "1a=1",                 // key starting with a digit
            "a=1,",                 // trailing comma
            "a=1,,b=2",             // empty member
            ",a=1",                 // leading comma
            "a =1",                 // space before `=`
            "a= 1",                 // space after `=`
            "a=1 b=2",              // missing comma
            "max-age=10000, &&&&&", // not a key
            "a=1;",                 // parameter without a key
            "a=1 ;q=2",             // space before `;`
            "a=1;q =0.5",           // space before a parameter's `=`
            "a=1234567890123456",   // 16-digit integer
            "a=1234567890123.5",    // 13 integer digits in a decimal
            "a=1.2345",             // 4 fractional digits
            "a=1.",                 // dangling decimal point
            "a=-",                  // sign without digits
            "a=--1",                // double sign
            "a=\"open",             // unterminated string
            "a=\"bad \\n escape\"", // only \" and \\ escape
            "a=\"tab\there\"",      // control character in a string
            "a=:not base64!:",      // byte sequence alphabet
            "a=:open",              // unterminated byte sequence
            "a=?2",                 // boolean other than 0 or 1
            "a=?",                  // boolean without a value
            "a=(1 2",               // unterminated inner list
            "a=(1,2)",              // comma in an inner list
            "a=#1",                 // unknown type
            "\ta=1",                // leading tab
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(parse_dictionary(b"a=\"caf\xc3\xa9\""), None);
        assert_eq!(parse_dictionary(b"a=1, \xff"), None);
        assert_eq!(parse_dictionary(b"a=1\0"), None);
    }

    #[test]
    fn lines_are_combined() {
        let name = HeaderName::from_static("cdn-cache-control");
        let parsed = parse_dictionary_field(
            &headers(&[("cdn-cache-control", "a=1"), ("cdn-cache-control", "b")]),
            &name,
        )
        .unwrap();
        assert_eq!(parsed.members().len(), 2);
        assert_eq!(parse_dictionary_field(&headers(&[]), &name), None);
        // An error in any line fails the whole field.
        assert_eq!(
            parse_dictionary_field(
                &headers(&[("cdn-cache-control", "a=1"), ("cdn-cache-control", "B")]),
                &name
            ),
            None
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(8941);
        let alphabet = b"abz*AZ09-._=,;:?()\"\\ \t/+!#\x00\x7f\xff";
        for _ in 0..20_000 {
            let len = rng.random_range(0..40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            if let Some(parsed) = parse_dictionary(&bytes) {
                assert!(parsed.members().len() <= bytes.len());
            }
        }
    }
}
