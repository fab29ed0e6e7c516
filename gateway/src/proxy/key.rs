//! Cache keys of URL objects, and what a purge request selects.
//!
//! A key is `path?query SP host SP scheme`: path first, so that one range scan
//! of the store finds a path prefix under every host (what `POST /purge` with a
//! path needs); space-separated, because a request target and a host never
//! contain a space (hyper refuses them) and the store keeps keys free of NUL.

use http::uri::Scheme;

/// The cache key of a URL: scheme, host and target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct UrlKey(String);

impl UrlKey {
    /// `host` must be normalised already (see [`normalise_host`]).
    pub(crate) fn new(scheme: &str, host: &str, target: &str) -> UrlKey {
        // Built by hand: `format!` was 1 % of a URL hit.
        let mut key = String::with_capacity(target.len() + host.len() + scheme.len() + 2);
        for part in [target, " ", host, " ", scheme] {
            key.push_str(part);
        }
        UrlKey(key)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The parts of a stored key: (target, host, scheme).
    pub(crate) fn split(key: &[u8]) -> Option<(&str, &str, &str)> {
        let text = std::str::from_utf8(key).ok()?;
        let (rest, scheme) = text.rsplit_once(' ')?;
        let (target, host) = rest.rsplit_once(' ')?;
        Some((target, host, scheme))
    }

    /// The URL as a client would write it, for logs and purge answers.
    pub(crate) fn display(key: &[u8]) -> String {
        match UrlKey::split(key) {
            Some((target, host, scheme)) => format!("{scheme}://{host}{target}"),
            None => String::from_utf8_lossy(key).into_owned(),
        }
    }
}

/// Lower-cases a host and drops the scheme's default port, so `Example.com:80`
/// and `example.com` are one key. `None` for anything that is not a host.
pub(crate) fn normalise_host(host: &str, scheme: &Scheme) -> Option<String> {
    let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
    plain_host(host, default_port).or_else(|| parsed_host(host, default_port))
}

/// What [`normalise_host`] makes of the common host, lower-case name and
/// maybe a port, without parsing an `Authority` (which copies it, then is
/// copied again): `None` sends anything else to [`parsed_host`].
fn plain_host(host: &str, default_port: u16) -> Option<String> {
    let (name, port) = match host.split_once(':') {
        Some((name, digits)) if digits.bytes().all(|b| b.is_ascii_digit()) => {
            (name, Some((digits, digits.parse::<u16>().ok()?)))
        }
        Some(_) => return None,
        None => (host, None),
    };
    let plain = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-';
    if name.is_empty() || !name.bytes().all(plain) {
        return None;
    }
    match port {
        None => Some(host.to_owned()),
        Some((_, port)) if port == default_port => Some(name.to_owned()),
        // Already as `with_port` would write it: no leading zeros.
        Some((digits, _)) if digits.len() == 1 || !digits.starts_with('0') => Some(host.to_owned()),
        Some(_) => None,
    }
}

/// Any host, through the `Authority` parse.
fn parsed_host(host: &str, default_port: u16) -> Option<String> {
    let authority: http::uri::Authority = host.parse().ok()?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    let name = authority.host().to_ascii_lowercase();
    Some(with_port(name, authority.port_u16(), default_port))
}

fn with_port(name: String, port: Option<u16>, default_port: u16) -> String {
    match port {
        Some(port) if port != default_port => format!("{name}:{port}"),
        _ => name,
    }
}

/// What one purge entry selects: keys starting with `prefix`, optionally only
/// those of one host and scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    /// Key prefix (a target or target prefix).
    pub(crate) prefix: String,
    /// `(host, scheme)` when the purge named an absolute URL.
    pub(crate) origin: Option<(String, String)>,
    /// Exact target: the key's target must equal the prefix.
    pub(crate) exact: bool,
}

impl Selection {
    /// Parses a purge entry: an absolute `http(s)://host/target` or a `/target`.
    pub(crate) fn parse(text: &str, exact: bool) -> Result<Selection, String> {
        if text.starts_with('/') {
            if text.contains(' ') {
                return Err(format!("{text:?} contains a space"));
            }
            return Ok(Selection {
                prefix: text.to_owned(),
                origin: None,
                exact,
            });
        }
        let uri: http::Uri = text
            .parse()
            .map_err(|e| format!("{text:?} is neither /path nor an absolute URL: {e}"))?;
        let scheme = uri
            .scheme()
            .filter(|s| **s == Scheme::HTTP || **s == Scheme::HTTPS)
            .ok_or_else(|| format!("{text:?}: only http and https URLs are cached"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{text:?} has no host"))?;
        let host = normalise_host(authority.as_str(), scheme)
            .ok_or_else(|| format!("{text:?} has an invalid host"))?;
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        Ok(Selection {
            prefix: target.to_owned(),
            origin: Some((host, scheme.as_str().to_owned())),
            exact,
        })
    }

    /// The one key selected, when the selection names an exact URL on one host.
    pub(crate) fn exact_key(&self) -> Option<UrlKey> {
        let (host, scheme) = self.origin.as_ref().filter(|_| self.exact)?;
        Some(UrlKey::new(scheme, host, &self.prefix))
    }

    /// The key prefix a store scan starts from: an exact path is followed by
    /// the separator, so `/a` does not select `/ab`. Keys found are checked
    /// with [`Selection::matches`] when the selection names a host.
    pub(crate) fn scan_prefix(&self) -> String {
        if self.exact {
            format!("{} ", self.prefix)
        } else {
            self.prefix.clone()
        }
    }

    /// Whether a stored key is selected.
    pub(crate) fn matches(&self, key: &[u8]) -> bool {
        let Some((target, host, scheme)) = UrlKey::split(key) else {
            return false;
        };
        let target_ok = if self.exact {
            target == self.prefix
        } else {
            target.starts_with(&self.prefix)
        };
        target_ok
            && self
                .origin
                .as_ref()
                .is_none_or(|(h, s)| h == host && s == scheme)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_put_the_target_first_and_split_back() {
        let key = UrlKey::new("http", "example.com", "/a/b?c=d");
        assert_eq!(key.as_str(), "/a/b?c=d example.com http");
        assert_eq!(
            UrlKey::split(key.as_str().as_bytes()),
            Some(("/a/b?c=d", "example.com", "http"))
        );
        assert_eq!(
            UrlKey::display(key.as_str().as_bytes()),
            "http://example.com/a/b?c=d"
        );
        assert_eq!(UrlKey::split(b"nospace"), None);
    }

    #[test]
    fn hosts_are_normalised() {
        let http = Scheme::HTTP;
        assert_eq!(normalise_host("Example.COM", &http).unwrap(), "example.com");
        assert_eq!(
            normalise_host("example.com:80", &http).unwrap(),
            "example.com"
        );
        assert_eq!(
            normalise_host("example.com:8080", &http).unwrap(),
            "example.com:8080"
        );
        assert_eq!(
            normalise_host("example.com:443", &Scheme::HTTPS).unwrap(),
            "example.com"
        );
        assert_eq!(normalise_host("[::1]:80", &http).unwrap(), "[::1]");
        assert!(normalise_host("", &http).is_none());
        assert!(normalise_host("a b", &http).is_none());
        assert!(normalise_host("user@host", &http).is_none());
        assert!(normalise_host("host/path", &http).is_none());
    }

    #[test]
    fn the_plain_host_shortcut_agrees_with_the_authority_parse() {
        let mut hosts: Vec<String> = [
            "example.com",
            "example.com:80",
            "example.com:080",
            "example.com:8080",
            "example.com:08080",
            "example.com:443",
            "127.0.0.1:18080",
            "a-b.c",
            "-",
            ".",
            "x:0",
            "x:00",
            "x:0443",
            "x:65535",
            "x:65536",
            "x:99999",
            "x:",
            ":80",
            "x:1:2",
            "x:+1",
            "localhost",
        ]
        .iter()
        .map(|h| (*h).to_owned())
        .collect();
        // Every short string over the shortcut's alphabet and its neighbours.
        let alphabet = ['a', 'z', '0', '9', '.', '-', ':', 'A', '_'];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    hosts.push(format!("{a}{b}{c}"));
                    hosts.push(format!("{a}{b}:{c}8"));
                }
            }
        }
        for host in &hosts {
            for default_port in [80, 443] {
                if let Some(fast) = plain_host(host, default_port) {
                    assert_eq!(Some(fast), parsed_host(host, default_port), "{host:?}");
                }
            }
        }
    }

    #[test]
    fn selections_match_paths_under_every_host_or_one() {
        let a = UrlKey::new("http", "a.example", "/img/1.png");
        let b = UrlKey::new("http", "b.example", "/img/1.png");
        let c = UrlKey::new("http", "a.example", "/img/1.png?v=2");
        let any_host = Selection::parse("/img/1.png", true).unwrap();
        assert!(any_host.matches(a.as_str().as_bytes()));
        assert!(any_host.matches(b.as_str().as_bytes()));
        assert!(!any_host.matches(c.as_str().as_bytes()));
        let one_host = Selection::parse("http://A.example/img/", false).unwrap();
        assert!(one_host.matches(a.as_str().as_bytes()));
        assert!(one_host.matches(c.as_str().as_bytes()));
        assert!(!one_host.matches(b.as_str().as_bytes()));
        let https = Selection::parse("https://a.example/img/", false).unwrap();
        assert!(!https.matches(a.as_str().as_bytes()));
        assert!(Selection::parse("ftp://a/b", false).is_err());
        assert!(Selection::parse("img/1.png", false).is_err());
        assert!(Selection::parse("/a b", false).is_err());
    }
}
