//! Checks that need more than a type: ranges, relations between keys, and
//! the admin-exposure rule. Each failure names the key and where its value
//! came from.

use std::time::Duration;

use crate::duration;
use crate::error::ConfigError;
use crate::load::Layered;
use crate::size::ByteSize;
use crate::types::Config;

/// hyper refuses a read buffer below 8 KiB, so a smaller head bound cannot
/// be honoured.
const MIN_HEADER_BYTES: u64 = 8 * 1024;
/// Heads beyond this are an attack or a bug, not a request.
const MAX_HEADER_BYTES: u64 = 1 << 20;
const MAX_HEADERS: usize = 1000;
/// Timeouts are added to `Instant`s downstream, which panics on overflow;
/// a week is far beyond any useful timeout and far from the overflow.
const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Purges are kept in a small database, not timed with `Instant`s; ten years
/// only keeps the millisecond arithmetic far from overflowing.
const MAX_RETENTION: Duration = Duration::from_secs(3650 * 24 * 3600);

/// Beyond this, one connection holds more requests than a whole client needs.
const MAX_STREAMS: u32 = 10_000;
/// HTTP/3 handshakes in progress without address validation; far beyond any
/// honest burst, small enough to bound a spoofed flood's cost.
const MAX_UNVALIDATED_HANDSHAKES: usize = 100_000;

/// Runs every check in key order and reports the first failure.
pub(crate) fn validate(config: &Config, layered: &Layered) -> Result<(), ConfigError> {
    let fail = |field: &str, problem: String| Err(layered.error(field, problem));

    let http = &config.http;
    if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&http.max_header_bytes.0) {
        return fail(
            "http.max_header_bytes",
            format!(
                "must be between {} and {} (hyper needs at least {} to read a request head)",
                ByteSize(MIN_HEADER_BYTES),
                ByteSize(MAX_HEADER_BYTES),
                ByteSize(MIN_HEADER_BYTES)
            ),
        );
    }
    if !(1..=MAX_HEADERS).contains(&http.max_headers) {
        return fail(
            "http.max_headers",
            format!("must be between 1 and {MAX_HEADERS}"),
        );
    }
    for (field, value) in [
        ("http.header_read_timeout", http.header_read_timeout),
        ("http.idle_timeout", http.idle_timeout),
    ] {
        positive_timeout(field, value, layered)?;
    }
    if http.max_connections == 0 {
        return fail("http.max_connections", "must be at least 1".to_owned());
    }
    if !(1..=MAX_STREAMS).contains(&http.max_concurrent_streams) {
        return fail(
            "http.max_concurrent_streams",
            format!("must be between 1 and {MAX_STREAMS}"),
        );
    }
    validate_tls(config, layered)?;

    let admin = &config.admin;
    if let Some(token) = &admin.token {
        if admin.token_file.is_some() {
            return fail(
                "admin.token",
                format!(
                    "admin.token and admin.token_file ({}) are both set; set only one",
                    layered.origin("admin.token_file")
                ),
            );
        }
        if let Some(problem) = token_problem(token) {
            return fail("admin.token", problem.to_owned());
        }
    }
    if admin
        .token_file
        .as_ref()
        .is_some_and(|path| path.as_os_str().is_empty())
    {
        return fail("admin.token_file", "must not be empty".to_owned());
    }
    if !config.admin_is_loopback() && admin.token.is_none() && admin.token_file.is_none() {
        return fail(
            "admin.listen",
            format!(
                "admin.listen {} is not loopback, so admin.token or admin.token_file is required",
                admin.listen
            ),
        );
    }
    if admin.max_upload_size.0 == 0 {
        return fail("admin.max_upload_size", "must be greater than 0".to_owned());
    }

    // The store's own rules (data_dir, capacity, watermarks) are checked once,
    // by the store when the node opens it; the gateway reports a failure there
    // as a configuration error naming the key.

    let swarm = &config.swarm;
    for (index, peer) in swarm.peers.iter().enumerate() {
        if let Some(problem) = peer_problem(peer) {
            return fail(&format!("swarm.peers[{index}]"), problem);
        }
    }
    if !swarm.peers.is_empty() && swarm.cert_dir.is_none() {
        return fail(
            "swarm.cert_dir",
            format!(
                "swarm.peers ({}) are set but swarm.cert_dir is not: peers only talk mutual TLS; \
                 create certificates with `fleetcache cert ca` and `fleetcache cert node`",
                layered.origin("swarm.peers")
            ),
        );
    }
    if swarm
        .cert_dir
        .as_ref()
        .is_some_and(|path| path.as_os_str().is_empty())
    {
        return fail("swarm.cert_dir", "must not be empty".to_owned());
    }
    for (field, value) in [
        ("swarm.peer_timeout", swarm.peer_timeout),
        ("swarm.ping_interval", swarm.ping_interval),
        ("swarm.resolve_interval", swarm.resolve_interval),
    ] {
        positive_timeout(field, value, layered)?;
    }
    if swarm.max_uploads == 0 {
        return fail("swarm.max_uploads", "must be at least 1".to_owned());
    }
    if swarm.purge_retention.is_zero() || swarm.purge_retention > MAX_RETENTION {
        return fail(
            "swarm.purge_retention",
            format!(
                "must be greater than 0s and at most {}",
                duration::format(MAX_RETENTION)
            ),
        );
    }

    timeout_bound(
        "shutdown.grace_period",
        config.shutdown.grace_period,
        layered,
    )?;

    if config.log.level.trim().is_empty() {
        return fail("log.level", "must not be empty; try \"info\"".to_owned());
    }
    crate::origin::validate(config, layered)
}

fn validate_tls(config: &Config, layered: &Layered) -> Result<(), ConfigError> {
    let fail = |field: &str, problem: String| Err(layered.error(field, problem));
    let tls = &config.http.tls;
    let empty = |path: &Option<std::path::PathBuf>| {
        path.as_ref()
            .is_some_and(|path| path.as_os_str().is_empty())
    };
    for (field, path) in [
        ("http.tls.cert_file", &tls.cert_file),
        ("http.tls.key_file", &tls.key_file),
    ] {
        if empty(path) {
            return fail(field, "must not be empty".to_owned());
        }
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(_), None) => {
            return fail(
                "http.tls.key_file",
                format!(
                    "http.tls.cert_file ({}) is set but its key is not; set http.tls.key_file too",
                    layered.origin("http.tls.cert_file")
                ),
            );
        }
        (None, Some(_)) => {
            return fail(
                "http.tls.cert_file",
                format!(
                    "http.tls.key_file ({}) is set but no certificate; set http.tls.cert_file too",
                    layered.origin("http.tls.key_file")
                ),
            );
        }
        _ => {}
    }
    for (index, path) in tls.certificates.iter().enumerate() {
        if path.as_os_str().is_empty() {
            return fail(
                &format!("http.tls.certificates[{index}]"),
                "must not be empty".to_owned(),
            );
        }
    }
    if !config.http.plaintext && !tls.enabled() {
        return fail(
            "http.plaintext",
            "is false but [http.tls] has no certificate (cert_file/key_file or certificates), \
             so the node would have no public listener"
                .to_owned(),
        );
    }
    if tls.enabled()
        && config.http.plaintext
        && tls.listen == config.http.listen
        && tls.listen.port() != 0
    {
        return fail(
            "http.tls.listen",
            format!(
                "is the same address as http.listen ({}); give HTTPS its own port",
                config.http.listen
            ),
        );
    }
    if tls.http3_unvalidated_handshakes > MAX_UNVALIDATED_HANDSHAKES {
        return fail(
            "http.tls.http3_unvalidated_handshakes",
            format!("must be at most {MAX_UNVALIDATED_HANDSHAKES}"),
        );
    }
    timeout_bound("http.tls.reload_interval", tls.reload_interval, layered)
}

/// A timeout that must be set (not 0s) and within [`MAX_TIMEOUT`].
pub(crate) fn positive_timeout(
    field: &str,
    value: Duration,
    layered: &Layered,
) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(layered.error(field, "must be greater than 0s".to_owned()));
    }
    timeout_bound(field, value, layered)
}

pub(crate) fn timeout_bound(
    field: &str,
    value: Duration,
    layered: &Layered,
) -> Result<(), ConfigError> {
    if value > MAX_TIMEOUT {
        return Err(layered.error(
            field,
            format!("must be at most {}", duration::format(MAX_TIMEOUT)),
        ));
    }
    Ok(())
}

/// Why `token` cannot be a bearer token, if it cannot.
pub(crate) fn token_problem(token: &str) -> Option<&'static str> {
    if token.is_empty() {
        Some("the token is empty")
    } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
        // It travels in an Authorization header: spaces would split it and
        // non-ASCII bytes are not portable there.
        Some(
            "the token contains whitespace or non-printable-ASCII characters; it must be printable ASCII",
        )
    } else {
        None
    }
}

/// Why `peer` is not `HOST:PORT`, if it is not. Hosts are DNS names, IPv4
/// addresses, or IPv6 addresses in brackets.
pub(crate) fn peer_problem(peer: &str) -> Option<String> {
    const SHAPE: &str =
        "write peers as HOST:PORT, e.g. \"node-a.example:7070\" or \"[fd00::2]:7070\"";
    let Some((host, port)) = peer.rsplit_once(':') else {
        return Some(format!("{peer:?} has no port; {SHAPE}"));
    };
    // `u16::from_str` accepts a leading '+'; a port is digits only.
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|port| port > 0);
    if !port_ok {
        return Some(format!(
            "{peer:?} has port {port:?}, which is not 1-65535; {SHAPE}"
        ));
    }
    if host.is_empty() {
        return Some(format!("{peer:?} has an empty host; {SHAPE}"));
    }
    if let Some(inner) = host.strip_prefix('[') {
        return match inner
            .strip_suffix(']')
            .map(str::parse::<std::net::Ipv6Addr>)
        {
            Some(Ok(_)) => None,
            _ => Some(format!("{peer:?} has an invalid IPv6 address; {SHAPE}")),
        };
    }
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some(format!("{peer:?}: put an IPv6 host in brackets; {SHAPE}"));
    }
    let name_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if !name_ok {
        return Some(format!(
            "{peer:?} has an invalid host name {host:?}; {SHAPE}"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_shapes() {
        for good in [
            "node-a.example:7070",
            "10.0.0.2:7070",
            "[fd00::2]:7070",
            "[::1]:1",
            "localhost:65535",
            "peer_1.internal:7070",
        ] {
            assert_eq!(peer_problem(good), None, "{good}");
        }
        for (bad, why) in [
            ("node-a", "no port"),
            ("node-a:", "not 1-65535"),
            ("node-a:0", "not 1-65535"),
            ("node-a:65536", "not 1-65535"),
            ("node-a:+80", "not 1-65535"),
            ("node-a:http", "not 1-65535"),
            (":7070", "empty host"),
            ("fd00::2:7070", "brackets"),
            ("[fd00::zz]:7070", "invalid IPv6"),
            ("[fd00::2:7070", "invalid IPv6"),
            ("bad host:7070", "invalid host name"),
            ("a..b:7070", "invalid host name"),
            ("http://a:7070", "invalid host name"),
        ] {
            let problem = peer_problem(bad).unwrap_or_default();
            assert!(problem.contains(why), "{bad}: {problem}");
        }
    }

    #[test]
    fn token_shapes() {
        assert_eq!(token_problem("s3cret-token_~+/="), None);
        assert!(token_problem("").is_some());
        assert!(token_problem("two words").is_some());
        assert!(token_problem("tab\there").is_some());
        assert!(token_problem("caf\u{e9}").is_some());
    }
}
