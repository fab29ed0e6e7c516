//! Origin mode: `[[origin]]` tables, the validated origin URL, the checks
//! on each entry and between entries, and Host-based origin selection.
//!
//! Entries are named in errors by 0-based position in the merged list,
//! `origin[0].url` being the first table's url, as `swarm.peers[1]` is the
//! second peer. An entry added by `--origin`/`FLEETCACHE_ORIGIN` comes after
//! the file's entries.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer};

use crate::duration;
use crate::error::ConfigError;
use crate::load::Layered;
use crate::size::ByteSize;
use crate::types::Config;
use crate::validate::positive_timeout;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_OBJECT_SIZE: ByteSize = ByteSize(1 << 30);
const DEFAULT_MAX_FETCHES: usize = 256;
const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_STALE_IF_ERROR: Duration = Duration::from_secs(3600);
/// Far beyond any useful concurrency; a typo, not a plan.
const MAX_FETCHES: usize = 100_000;
/// RFC 9111 §1.2.2: caches treat larger delta-seconds as 2^31 seconds, so a
/// larger default freshness could not be told apart from it anyway.
const MAX_DEFAULT_TTL: Duration = Duration::from_secs(1 << 31);

const URL_SHAPE: &str = "write it like \"https://origin.example\" or \"http://10.0.0.5:8080\"";

/// One `[[origin]]` table: an origin server the node caches in front of.
///
/// Field documentation and defaults are in `default.toml`'s commented
/// `# [[origin]]` block; [`OriginConfig::new`] has the same defaults.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    /// The origin server (required).
    pub url: OriginUrl,
    /// Requests whose Host is this go to this origin; lowercase, optionally
    /// with `:port`. `None`: the default origin.
    #[serde(default, deserialize_with = "deserialize_host")]
    pub host: Option<String>,
    /// Extra PEM CA certificates for an https origin.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Time to connect, TLS included (default 5s).
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub connect_timeout: Duration,
    /// Time from sending the request to the response head (default 30s).
    #[serde(
        default = "default_first_byte_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub first_byte_timeout: Duration,
    /// Most time without a body byte from the origin (default 30s).
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub idle_timeout: Duration,
    /// Larger responses are streamed through, not stored (default 1GiB).
    #[serde(default = "default_max_object_size")]
    pub max_object_size: ByteSize,
    /// Concurrent fetches from this origin (default 256).
    #[serde(default = "default_max_fetches")]
    pub max_fetches: usize,
    /// How long a request waits for a fetch slot before 503 (default 10s).
    #[serde(
        default = "default_queue_timeout",
        deserialize_with = "duration::deserialize"
    )]
    pub queue_timeout: Duration,
    /// Freshness for responses without explicit freshness; `None`: only the
    /// RFC 9111 heuristic applies.
    #[serde(default, deserialize_with = "deserialize_some_duration")]
    pub default_ttl: Option<Duration>,
    /// How long past its freshness a stored response may still be served when
    /// the origin cannot be reached, times out or answers 500/502/503/504
    /// (default 1h; 0s turns it off). Never for responses that forbid serving
    /// stale (`must-revalidate`, `proxy-revalidate`, `s-maxage`, `no-cache`).
    #[serde(
        default = "default_stale_if_error",
        deserialize_with = "duration::deserialize"
    )]
    pub stale_if_error: Duration,
    /// Add `X-Forwarded-For` and `Forwarded` to origin requests (default true).
    #[serde(default = "default_forwarded")]
    pub forwarded: bool,
}

impl OriginConfig {
    /// An origin at `url` with every other key at its default: the default
    /// origin (no `host`), as `--origin URL` adds it.
    pub fn new(url: OriginUrl) -> OriginConfig {
        OriginConfig {
            url,
            host: None,
            ca_file: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_object_size: DEFAULT_MAX_OBJECT_SIZE,
            max_fetches: DEFAULT_MAX_FETCHES,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            default_ttl: None,
            stale_if_error: DEFAULT_STALE_IF_ERROR,
            forwarded: true,
        }
    }
}

fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}
fn default_first_byte_timeout() -> Duration {
    DEFAULT_FIRST_BYTE_TIMEOUT
}
fn default_idle_timeout() -> Duration {
    DEFAULT_IDLE_TIMEOUT
}
fn default_max_object_size() -> ByteSize {
    DEFAULT_MAX_OBJECT_SIZE
}
fn default_max_fetches() -> usize {
    DEFAULT_MAX_FETCHES
}
fn default_queue_timeout() -> Duration {
    DEFAULT_QUEUE_TIMEOUT
}
fn default_stale_if_error() -> Duration {
    DEFAULT_STALE_IF_ERROR
}
fn default_forwarded() -> bool {
    true
}

fn deserialize_some_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration::deserialize(deserializer).map(Some)
}

fn deserialize_host<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let host = String::deserialize(deserializer)?.to_ascii_lowercase();
    match host_key_problem(&host) {
        None => Ok(Some(host)),
        Some(problem) => Err(de::Error::custom(problem)),
    }
}

/// An origin URL that passed every check: `http` or `https`, a host, an
/// optional port, and nothing else (no user, path, query or fragment).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OriginUrl {
    text: String,
    https: bool,
    /// Lowercase; IPv6 without brackets.
    host: String,
    port: u16,
    /// Host header form: brackets for IPv6, the port only if not the default.
    authority: String,
}

impl OriginUrl {
    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host to connect to and, for https, to verify: a lowercase DNS
    /// name, an IPv4 address, or an IPv6 address *without* brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port: the URL's, else 443 for https and 80 for http.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host[:port]` as a Host header or URI authority carries it: IPv6 in
    /// brackets, the port only when the URL gives a non-default one.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The URL exactly as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for OriginUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OriginUrl({:?})", self.text)
    }
}

impl fmt::Display for OriginUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for OriginUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<OriginUrl, D::Error> {
        struct UrlVisitor;

        impl de::Visitor<'_> for UrlVisitor {
            type Value = OriginUrl;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URL string like \"https://origin.example\"")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<OriginUrl, E> {
                value.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(UrlVisitor)
    }
}

/// Why a string is not an origin URL; `Display` says how to write one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseOriginUrlError(String);

impl FromStr for OriginUrl {
    type Err = ParseOriginUrlError;

    fn from_str(text: &str) -> Result<OriginUrl, ParseOriginUrlError> {
        let fail = |problem: String| Err(ParseOriginUrlError(problem));
        if text.trim().is_empty() {
            return fail(format!("the URL is empty; {URL_SHAPE}"));
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return fail(format!("not a URL (no \"://\"); {URL_SHAPE}"));
        };
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return fail(format!(
                "scheme {scheme:?} is not supported; use http:// or https://"
            ));
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if authority.contains('@') {
            return fail(
                "must not contain a user or password (user:password@); credentials in origin URLs are not supported"
                    .to_owned(),
            );
        }
        if authority.is_empty() {
            return fail(format!("has no host; {URL_SHAPE}"));
        }
        if tail.contains('#') {
            return fail("must not have a fragment (#...)".to_owned());
        }
        if tail.contains('?') {
            return fail("must not have a query (?...)".to_owned());
        }
        if !tail.is_empty() && tail != "/" {
            return fail(format!(
                "has path {tail:?}, but the path must be empty or \"/\": requests keep their own \
                 path on the way to the origin; use \"{scheme}://{authority}\""
            ));
        }
        let (host, port) = split_host_port(authority).map_err(ParseOriginUrlError)?;
        if let Some(problem) = host_problem(host) {
            return fail(problem);
        }
        // The gateway builds request URIs from this text; make sure it can.
        if let Err(err) = text.parse::<http::Uri>() {
            return fail(format!("invalid URL: {err}; {URL_SHAPE}"));
        }
        let default_port = if https { 443 } else { 80 };
        let port = port.unwrap_or(default_port);
        let host = unbracket(host).to_ascii_lowercase();
        let mut authority = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        if port != default_port {
            authority = format!("{authority}:{port}");
        }
        Ok(OriginUrl {
            text: text.to_owned(),
            https,
            host,
            port,
            authority,
        })
    }
}

/// Splits `host[:port]`; the host keeps IPv6 brackets.
fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if authority.starts_with('[') {
        let Some(end) = authority.find(']') else {
            return Err(format!(
                "{authority:?} has an invalid IPv6 address (no closing \"]\")"
            ));
        };
        let (host, rest) = authority.split_at(end + 1);
        match rest.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if rest.is_empty() => (host, None),
            None => {
                return Err(format!("{authority:?} has {rest:?} after the IPv6 address"));
            }
        }
    } else if authority.matches(':').count() > 1 {
        // Which colon would start the port?
        return Err(format!(
            "{authority:?}: put an IPv6 address in brackets, like \"[fd00::1]:8080\""
        ));
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let Some(port) = port else {
        return Ok((host, None));
    };
    // `u16::from_str` accepts a leading '+'; a port is digits only.
    let digits = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    match port.parse::<u16>() {
        Ok(number) if digits && number > 0 => Ok((host, Some(number))),
        _ => Err(format!("port {port:?} is not 1-65535")),
    }
}

fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host)
}

/// Why `host` (no port; IPv6 in brackets) is not a DNS name or IP address.
fn host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("the host is empty".to_owned());
    }
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.strip_suffix(']').map(str::parse::<Ipv6Addr>) {
            Some(Ok(_)) => None,
            _ => Some(format!("{host:?} is not a valid IPv6 address")),
        };
    }
    let name_ok = host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if name_ok {
        None
    } else {
        Some(format!(
            "{host:?} is not a valid host name: use letters, digits, '-', '_' and '.', or an IP address"
        ))
    }
}

/// Why a `host` key is not `HOST[:PORT]` as clients send it in Host.
fn host_key_problem(host: &str) -> Option<String> {
    const SHAPE: &str = "write the host as clients send it in the Host header, like \
                         \"www.example.com\" or \"www.example.com:8080\"";
    let problem = match split_host_port(host) {
        Err(problem) => problem,
        Ok((name, _)) => host_problem(name)?,
    };
    Some(format!("{problem}; {SHAPE}"))
}

/// `host:port` → `host`, `[::1]:80` → `[::1]`; anything else unchanged.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.split_once(':') {
        Some((name, port)) if !port.contains(':') => name,
        _ => host,
    }
}

impl Config {
    /// The origin without `host`, which serves every Host no other origin
    /// claims; `None` when there is none.
    pub fn default_origin(&self) -> Option<&OriginConfig> {
        self.origins.iter().find(|origin| origin.host.is_none())
    }

    /// The origin for a request's Host (header value or URI authority),
    /// compared case-insensitively: an origin whose `host` equals it
    /// exactly; else one whose `host` has no port and equals it without its
    /// port; else the default origin.
    pub fn origin_for_host(&self, host: &str) -> Option<&OriginConfig> {
        OriginConfig::route(&self.origins, host).and_then(|index| self.origins.get(index))
    }
}

impl OriginConfig {
    /// Which of `origins` serves a request's Host: the position of the entry
    /// [`Config::origin_for_host`] picks, for callers that keep their own
    /// per-origin state in the same order.
    pub fn route(origins: &[OriginConfig], host: &str) -> Option<usize> {
        let named = || {
            origins
                .iter()
                .enumerate()
                .filter_map(|(index, origin)| Some((index, origin.host.as_deref()?)))
        };
        let bare = strip_port(host);
        named()
            .find(|(_, configured)| configured.eq_ignore_ascii_case(host))
            .or_else(|| {
                named().find(|(_, configured)| {
                    strip_port(configured) == *configured && configured.eq_ignore_ascii_case(bare)
                })
            })
            .map(|(index, _)| index)
            .or_else(|| origins.iter().position(|origin| origin.host.is_none()))
    }
}

/// The checks serde cannot make: ranges, and relations between entries.
/// Runs entry by entry, in key order, and reports the first failure.
pub(crate) fn validate(config: &Config, layered: &Layered) -> Result<(), ConfigError> {
    for (index, origin) in config.origins.iter().enumerate() {
        let field = |name: &str| format!("origin[{index}].{name}");
        let fail = |name: &str, problem: String| Err(layered.error(&field(name), problem));
        let earlier = &config.origins[..index];

        match &origin.host {
            None => {
                if let Some(other) = earlier.iter().position(|o| o.host.is_none()) {
                    return fail(
                        "host",
                        format!(
                            "not set, and origin[{other}] ({}) has no host either: only one \
                             origin may be the default (the one without host); give one of \
                             them a host",
                            layered.origin(&format!("origin[{other}]"))
                        ),
                    );
                }
            }
            Some(host) => {
                if let Some(other) = earlier.iter().position(|o| o.host.as_deref() == Some(host)) {
                    return fail(
                        "host",
                        format!(
                            "origin[{other}] ({}) has the same host; each host may have only \
                             one origin",
                            layered.origin(&format!("origin[{other}].host"))
                        ),
                    );
                }
            }
        }
        if let Some(ca_file) = &origin.ca_file {
            if ca_file.as_os_str().is_empty() {
                return fail("ca_file", "must not be empty".to_owned());
            }
            if !origin.url.is_https() {
                return fail(
                    "ca_file",
                    format!(
                        "only applies to https origins, but origin[{index}].url is {} ({}); \
                         remove ca_file or use an https:// url",
                        origin.url,
                        layered.origin(&field("url"))
                    ),
                );
            }
        }
        for (name, value) in [
            ("connect_timeout", origin.connect_timeout),
            ("first_byte_timeout", origin.first_byte_timeout),
            ("idle_timeout", origin.idle_timeout),
        ] {
            positive_timeout(&field(name), value, layered)?;
        }
        if origin.max_object_size.0 == 0 {
            return fail("max_object_size", "must be greater than 0".to_owned());
        }
        if !(1..=MAX_FETCHES).contains(&origin.max_fetches) {
            return fail(
                "max_fetches",
                format!("must be between 1 and {MAX_FETCHES}"),
            );
        }
        positive_timeout(&field("queue_timeout"), origin.queue_timeout, layered)?;
        if origin.stale_if_error > MAX_DEFAULT_TTL {
            return fail(
                "stale_if_error",
                format!(
                    "must be at most {} (2^31 seconds)",
                    duration::format(MAX_DEFAULT_TTL)
                ),
            );
        }
        if let Some(ttl) = origin.default_ttl {
            if ttl.is_zero() {
                return fail(
                    "default_ttl",
                    "must be greater than 0s; leave it out to rely on the RFC 9111 heuristic alone"
                        .to_owned(),
                );
            }
            if ttl > MAX_DEFAULT_TTL {
                return fail(
                    "default_ttl",
                    format!(
                        "must be at most {} (2^31 seconds, the most freshness RFC 9111 caches count)",
                        duration::format(MAX_DEFAULT_TTL)
                    ),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "origin_tests.rs"]
mod tests;
