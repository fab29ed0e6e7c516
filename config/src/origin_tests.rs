#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::test_case::Case;
use crate::{Sources, load};

/// A file error: names `field`, the file, and says `why`.
fn file_fails(text: &str, field: &str, why: &str) {
    let case = Case::new().file(text);
    let message = case.fails_on_from(field, &case.file_source());
    assert!(message.contains(why), "{message}");
}

fn url(text: &str) -> OriginUrl {
    text.parse().unwrap()
}

#[test]
fn urls_parse_into_their_parts() {
    let cases: &[(&str, bool, &str, u16, &str)] = &[
        ("http://a", false, "a", 80, "a"),
        (
            "https://origin.example/",
            true,
            "origin.example",
            443,
            "origin.example",
        ),
        (
            "HTTPS://Origin.Example:8443",
            true,
            "origin.example",
            8443,
            "origin.example:8443",
        ),
        (
            "http://10.0.0.5:8080",
            false,
            "10.0.0.5",
            8080,
            "10.0.0.5:8080",
        ),
        ("http://a:80", false, "a", 80, "a"),
        ("https://a:80", true, "a", 80, "a:80"),
        ("http://[::1]", false, "::1", 80, "[::1]"),
        (
            "https://[FD00::2]:9443/",
            true,
            "fd00::2",
            9443,
            "[fd00::2]:9443",
        ),
        (
            "http://under_score.internal",
            false,
            "under_score.internal",
            80,
            "under_score.internal",
        ),
    ];
    for &(text, https, host, port, authority) in cases {
        let parsed = url(text);
        assert_eq!(parsed.is_https(), https, "{text}");
        assert_eq!(parsed.host(), host, "{text}");
        assert_eq!(parsed.port(), port, "{text}");
        assert_eq!(parsed.authority(), authority, "{text}");
        assert_eq!(parsed.as_str(), text);
        assert_eq!(parsed.to_string(), text);
    }
}

#[test]
fn bad_urls_say_what_is_wrong() {
    for (text, why) in [
        ("", "empty"),
        ("   ", "empty"),
        ("notaurl", "not a URL"),
        ("origin.example:80", "not a URL"),
        ("ftp://x", "scheme \"ftp\" is not supported"),
        ("http://", "has no host"),
        ("http:///a", "has no host"),
        ("http://a/b", "path \"/b\""),
        ("http://a//", "path \"//\""),
        ("http://u:p@a", "user or password"),
        ("http://u@a", "user or password"),
        ("http://a?x", "query"),
        ("http://a/?", "query"),
        ("http://a#top", "fragment"),
        ("http://a:", "port \"\" is not 1-65535"),
        ("http://a:0", "is not 1-65535"),
        ("http://a:65536", "is not 1-65535"),
        ("http://a:+80", "is not 1-65535"),
        ("http://:80", "host is empty"),
        ("http://a b", "not a valid host name"),
        ("http://a..b", "not a valid host name"),
        ("http://a%41", "not a valid host name"),
        ("http://fd00::2", "brackets"),
        ("http://[fd00::zz]", "not a valid IPv6"),
        ("http://[::1", "no closing"),
        ("http://[::1]x", "after the IPv6 address"),
    ] {
        let err = text.parse::<OriginUrl>().unwrap_err().to_string();
        assert!(err.contains(why), "{text:?}: {err}");
    }
    let err = "http://a/b".parse::<OriginUrl>().unwrap_err().to_string();
    assert!(err.contains("must be empty or \"/\""), "{err}");
    assert!(err.contains("use \"http://a\""), "{err}");
}

#[test]
fn host_keys() {
    for good in [
        "www.example.com",
        "www.example.com:8080",
        "10.0.0.1",
        "[::1]:8080",
        "[fd00::1]",
    ] {
        assert_eq!(host_key_problem(good), None, "{good}");
    }
    for (bad, why) in [
        ("", "host is empty"),
        ("a b", "not a valid host name"),
        ("a/b", "not a valid host name"),
        ("*.example.com", "not a valid host name"),
        ("a:0", "not 1-65535"),
        ("a:x", "not 1-65535"),
        ("fd00::1", "brackets"),
    ] {
        let problem = host_key_problem(bad).unwrap_or_default();
        assert!(problem.contains(why), "{bad:?}: {problem}");
        assert!(problem.contains("Host header"), "{bad:?}: {problem}");
    }
}

#[test]
fn no_origins_by_default() {
    let config = load(Sources::default()).unwrap();
    assert!(config.origins.is_empty());
    assert!(config.default_origin().is_none());
    assert!(config.origin_for_host("a.example").is_none());
}

#[test]
fn file_entries_get_the_documented_defaults() {
    let case = Case::new().file(
        "[[origin]]\nurl = \"https://origin.example\"\n\n\
         [[origin]]\nurl = \"http://10.0.0.5:8080\"\nhost = \"WWW.Example.COM\"\n\
         connect_timeout = \"1s\"\nfirst_byte_timeout = \"2s\"\nidle_timeout = \"3s\"\n\
         max_object_size = \"10MiB\"\nmax_fetches = 8\nqueue_timeout = \"4s\"\n\
         default_ttl = \"1h\"\nstale_if_error = \"0s\"\nforwarded = false\n",
    );
    let config = case.load().unwrap();
    assert_eq!(
        config.origins[0],
        OriginConfig::new(url("https://origin.example"))
    );
    let first = &config.origins[0];
    assert_eq!(first.connect_timeout, Duration::from_secs(5));
    assert_eq!(first.first_byte_timeout, Duration::from_secs(30));
    assert_eq!(first.idle_timeout, Duration::from_secs(30));
    assert_eq!(first.max_object_size, ByteSize(1 << 30));
    assert_eq!(first.max_fetches, 256);
    assert_eq!(first.queue_timeout, Duration::from_secs(10));
    assert_eq!(first.default_ttl, None);
    assert_eq!(first.stale_if_error, Duration::from_secs(3600));
    assert!(first.forwarded);
    assert_eq!(
        config.origins[1],
        OriginConfig {
            url: url("http://10.0.0.5:8080"),
            host: Some("www.example.com".into()),
            ca_file: None,
            connect_timeout: Duration::from_secs(1),
            first_byte_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(3),
            max_object_size: ByteSize(10 << 20),
            max_fetches: 8,
            queue_timeout: Duration::from_secs(4),
            default_ttl: Some(Duration::from_secs(3600)),
            stale_if_error: Duration::ZERO,
            forwarded: false,
        }
    );
    assert_eq!(config.default_origin(), Some(first));

    let https = Case::new()
        .file("[[origin]]\nurl = \"https://a\"\nca_file = \"/etc/ca.pem\"\n")
        .load()
        .unwrap();
    assert_eq!(
        https.origins[0].ca_file.as_deref(),
        Some(Path::new("/etc/ca.pem"))
    );
    let empty = Case::new().file("origin = []\n").load().unwrap();
    assert!(empty.origins.is_empty());
}

#[test]
fn env_and_flag_add_a_default_origin() {
    let config = Case::new()
        .env("FLEETCACHE_ORIGIN", "https://env.example")
        .load()
        .unwrap();
    assert_eq!(
        config.origins,
        [OriginConfig::new(url("https://env.example"))]
    );

    let config = Case::new()
        .env("FLEETCACHE_ORIGIN", "https://env.example")
        .flag("origin", "http://flag.example:8080")
        .load()
        .unwrap();
    assert_eq!(
        config.origins,
        [OriginConfig::new(url("http://flag.example:8080"))]
    );

    // The file's named origins stay; the default one is appended after them.
    let config = Case::new()
        .file("[[origin]]\nurl = \"http://a\"\nhost = \"a.example\"\n")
        .flag("origin", "http://flag.example")
        .load()
        .unwrap();
    assert_eq!(config.origins.len(), 2);
    assert_eq!(config.origins[0].host.as_deref(), Some("a.example"));
    assert_eq!(
        config.origins[1],
        OriginConfig::new(url("http://flag.example"))
    );
}

#[test]
fn env_and_flag_replace_only_the_default_origins_url() {
    let file = "[[origin]]\nurl = \"http://a\"\nhost = \"a.example\"\nmax_fetches = 3\n\n\
                [[origin]]\nurl = \"https://file.example\"\nmax_fetches = 7\n\
                ca_file = \"/etc/ca.pem\"\n";
    let config = Case::new()
        .file(file)
        .env("FLEETCACHE_ORIGIN", "https://env.example")
        .load()
        .unwrap();
    assert_eq!(config.origins.len(), 2);
    assert_eq!(config.origins[0].url.as_str(), "http://a");
    assert_eq!(config.origins[0].max_fetches, 3);
    assert_eq!(config.origins[1].url.as_str(), "https://env.example");
    assert_eq!(config.origins[1].max_fetches, 7);
    assert_eq!(
        config.origins[1].ca_file.as_deref(),
        Some(Path::new("/etc/ca.pem"))
    );

    let config = Case::new()
        .file(file)
        .env("FLEETCACHE_ORIGIN", "https://env.example")
        .flag("origin", "https://flag.example")
        .load()
        .unwrap();
    assert_eq!(config.origins[1].url.as_str(), "https://flag.example");
    assert_eq!(config.origins[1].max_fetches, 7);

    // The file's other keys are checked against the new url.
    let case = Case::new()
        .file(file)
        .flag("origin", "http://plain.example");
    let text = case.fails_on_from("origin[1].ca_file", &case.file_source());
    assert!(
        text.contains("origin[1].url is http://plain.example (from flag --origin)"),
        "{text}"
    );
}

#[test]
fn bad_urls_name_the_entry_and_the_source() {
    for (url, why) in [
        (
            "ftp://x",
            "scheme \"ftp\" is not supported; use http:// or https://",
        ),
        ("http://", "has no host"),
        ("http://a/b", "the path must be empty or \"/\""),
        ("http://u:p@a", "must not contain a user or password"),
        ("http://a?x", "must not have a query"),
        ("http://a#x", "must not have a fragment"),
    ] {
        let case = Case::new().file(&format!(
            "[[origin]]\nurl = \"http://a\"\nhost = \"a\"\n[[origin]]\nurl = \"{url}\"\n"
        ));
        let text = case.fails_on_from("origin[1].url", &case.file_source());
        assert!(
            text.contains(&format!("origin[1].url = \"{url}\"")),
            "{text}"
        );
        assert!(text.contains(why), "{text}");
    }

    let text = Case::new()
        .env("FLEETCACHE_ORIGIN", "notaurl")
        .fails_on_from("origin[0].url", "(from env FLEETCACHE_ORIGIN)");
    assert_eq!(
        text,
        "invalid config: origin[0].url = \"notaurl\" (from env FLEETCACHE_ORIGIN): not a URL \
         (no \"://\"); write it like \"https://origin.example\" or \"http://10.0.0.5:8080\""
    );
    let text = Case::new()
        .flag("origin", "")
        .fails_on_from("origin[0].url", "(from flag --origin)");
    assert!(
        text.contains("origin[0].url = \"\" (from flag --origin): the URL is empty"),
        "{text}"
    );
    Case::new()
        .env("FLEETCACHE_ORIGIN", "")
        .fails_on_from("origin[0].url", "(from env FLEETCACHE_ORIGIN)");

    // The flag's value is blamed on the flag even when the file holds the entry.
    let case = Case::new()
        .file("[[origin]]\nurl = \"http://a\"\nmax_fetches = 3\n")
        .flag("origin", "ftp://a");
    case.fails_on_from("origin[0].url", "(from flag --origin)");

    file_fails(
        "[[origin]]\nurl = 5\n",
        "origin[0].url",
        "expected a URL string",
    );
    file_fails(
        "[[origin]]\nhost = \"a\"\n",
        "origin[0].url",
        "required, but not set",
    );
}

#[test]
fn ranges_and_relations_are_checked() {
    let one = |keys: &str| format!("[[origin]]\nurl = \"https://a\"\n{keys}\n");
    for (keys, field, why) in [
        (
            "connect_timeout = \"0s\"",
            "origin[0].connect_timeout",
            "greater than 0s",
        ),
        (
            "first_byte_timeout = \"169h\"",
            "origin[0].first_byte_timeout",
            "at most 168h",
        ),
        (
            "idle_timeout = \"0ms\"",
            "origin[0].idle_timeout",
            "greater than 0s",
        ),
        (
            "queue_timeout = \"0s\"",
            "origin[0].queue_timeout",
            "greater than 0s",
        ),
        (
            "max_object_size = 0",
            "origin[0].max_object_size",
            "greater than 0",
        ),
        (
            "max_fetches = 0",
            "origin[0].max_fetches",
            "between 1 and 100000",
        ),
        (
            "max_fetches = 100001",
            "origin[0].max_fetches",
            "between 1 and 100000",
        ),
        ("max_fetches = -1", "origin[0].max_fetches", "at least 0"),
        (
            "default_ttl = \"0s\"",
            "origin[0].default_ttl",
            "RFC 9111 heuristic",
        ),
        (
            "default_ttl = \"100000d\"",
            "origin[0].default_ttl",
            "unknown duration unit",
        ),
        (
            "default_ttl = \"600000h\"",
            "origin[0].default_ttl",
            "2^31 seconds",
        ),
        (
            "stale_if_error = \"600000h\"",
            "origin[0].stale_if_error",
            "2^31 seconds",
        ),
        ("stale_if_error = 60", "origin[0].stale_if_error", ""),
        (
            "connect_timeout = 5",
            "origin[0].connect_timeout",
            "ambiguous",
        ),
        ("ca_file = \"\"", "origin[0].ca_file", "must not be empty"),
        ("host = \"\"", "origin[0].host", "host is empty"),
        ("host = \"a b\"", "origin[0].host", "not a valid host name"),
        ("host = \"a/b\"", "origin[0].host", "not a valid host name"),
        ("forwarded = \"yes\"", "origin[0].forwarded", "invalid type"),
    ] {
        file_fails(&one(keys), field, why);
    }
    let text = Case::new()
        .file(&one("connect_timeout = \"0s\""))
        .fails_on_from("origin[0].connect_timeout", "from file");
    assert!(
        text.contains("origin[0].connect_timeout = \"0s\" (from file "),
        "{text}"
    );

    let text = Case::new()
        .file("[[origin]]\nurl = \"http://a\"\nhost = \"a\"\n[[origin]]\nurl = \"http://b\"\nmax_fetches = 0\n")
        .fails_on_from("origin[1].max_fetches", "from file");
    assert!(
        text.contains("origin[1].max_fetches = 0 (from file"),
        "{text}"
    );

    let case = Case::new().file("[[origin]]\nurl = \"http://a\"\nca_file = \"/etc/ca.pem\"\n");
    let text = case.fails_on_from("origin[0].ca_file", &case.file_source());
    assert!(text.contains("only applies to https origins"), "{text}");
    assert!(
        text.contains("origin[0].url is http://a (from file"),
        "{text}"
    );
}

#[test]
fn one_default_and_one_origin_per_host() {
    let case = Case::new().file(
        "[[origin]]\nurl = \"http://a\"\n[[origin]]\nurl = \"http://b\"\nhost = \"b\"\n\
         [[origin]]\nurl = \"http://c\"\n",
    );
    let text = case.fails_on_from("origin[2].host", &case.file_source());
    assert!(text.contains("origin[0] (from file"), "{text}");
    assert!(
        text.contains("only one origin may be the default"),
        "{text}"
    );

    let case = Case::new().file(
        "[[origin]]\nurl = \"http://a\"\nhost = \"www.example.com\"\n\
         [[origin]]\nurl = \"http://b\"\nhost = \"WWW.example.com\"\n",
    );
    let text = case.fails_on_from("origin[1].host", &case.file_source());
    assert!(
        text.contains("origin[1].host = \"WWW.example.com\""),
        "{text}"
    );
    assert!(text.contains("origin[0] (from file"), "{text}");
    assert!(text.contains("same host"), "{text}");

    // A port makes a different host.
    let config = Case::new()
        .file(
            "[[origin]]\nurl = \"http://a\"\nhost = \"www.example.com\"\n\
             [[origin]]\nurl = \"http://b\"\nhost = \"www.example.com:8080\"\n",
        )
        .load()
        .unwrap();
    assert_eq!(config.origins.len(), 2);
}

#[test]
fn unknown_and_misshapen_origin_tables() {
    let case = Case::new()
        .file("[[origin]]\nurl = \"http://a\"\nhost = \"a\"\n[[origin]]\nurll = \"http://b\"\n");
    let err = case.load().unwrap_err();
    assert_eq!(err.field(), Some("origin[1].urll"));
    assert_eq!(
        err.to_string(),
        format!(
            "invalid config: unknown key `origin[1].urll` {}; did you mean origin[1].url?",
            case.file_source()
        )
    );
    let text = Case::new()
        .file("[[origin]]\nurl = \"http://a\"\n[origin.tls]\ncert = \"x\"\n")
        .load()
        .unwrap_err()
        .to_string();
    assert!(text.contains("unknown key `origin[0].tls`"), "{text}");

    let text = Case::new()
        .file("orign = 1\n")
        .load()
        .unwrap_err()
        .to_string();
    assert!(text.contains("did you mean origin?"), "{text}");

    file_fails(
        "[origin]\nurl = \"http://a\"\n",
        "origin",
        "write [[origin]] (double brackets)",
    );
    file_fails("origin.url = \"http://a\"\n", "origin", "[[origin]]");
    file_fails("origin = 5\n", "origin", "expected a list");
    file_fails("origin = [5]\n", "origin[0]", "expected a table");

    let text = Case::new()
        .file("[origin]\nurl = \"http://a\"\n")
        .flag("origin", "http://b")
        .load()
        .unwrap_err()
        .to_string();
    assert!(text.contains("double brackets"), "{text}");

    let err = load(Sources {
        env: vec![("FLEETCACHE_ORIGIN_URL".into(), "http://a".into())],
        ..Sources::default()
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("did you mean FLEETCACHE_ORIGIN?"),
        "{err}"
    );
}

fn with_hosts(hosts: &[Option<&str>]) -> Config {
    let mut config = load(Sources::default()).unwrap();
    config.origins = hosts
        .iter()
        .enumerate()
        .map(|(index, host)| OriginConfig {
            host: host.map(str::to_owned),
            ..OriginConfig::new(url(&format!("http://origin-{index}")))
        })
        .collect();
    config
}

/// Which origin (by its url's host) serves `host`.
fn served_by<'a>(config: &'a Config, host: &str) -> Option<&'a str> {
    config.origin_for_host(host).map(|origin| origin.url.host())
}

#[test]
fn hosts_pick_origins() {
    let config = with_hosts(&[
        Some("www.example.com"),
        None,
        Some("www.example.com:8080"),
        Some("[::1]"),
        Some("10.0.0.1:81"),
    ]);
    assert_eq!(
        config.default_origin().map(|o| o.url.host()),
        Some("origin-1")
    );
    for (host, origin) in [
        ("www.example.com", "origin-0"),
        ("WWW.Example.Com", "origin-0"),
        ("www.example.com:80", "origin-0"),
        ("www.example.com:443", "origin-0"),
        ("www.example.com:8080", "origin-2"),
        ("WWW.EXAMPLE.COM:8080", "origin-2"),
        ("[::1]", "origin-3"),
        ("[::1]:8080", "origin-3"),
        ("10.0.0.1:81", "origin-4"),
        ("10.0.0.1", "origin-1"),
        ("10.0.0.1:80", "origin-1"),
        ("example.com", "origin-1"),
        ("www.example.com.evil", "origin-1"),
        ("", "origin-1"),
        ("::1", "origin-1"),
    ] {
        assert_eq!(served_by(&config, host), Some(origin), "{host:?}");
    }

    let no_default = with_hosts(&[Some("a.example")]);
    assert_eq!(no_default.default_origin(), None);
    assert_eq!(served_by(&no_default, "a.example:1"), Some("origin-0"));
    assert_eq!(served_by(&no_default, "b.example"), None);
}

#[test]
fn origins_round_trip_through_to_toml() {
    let case = Case::new()
        .file(
            "[[origin]]\nurl = \"HTTPS://Origin.Example:8443/\"\nca_file = \"/etc/ca.pem\"\n\
             default_ttl = \"90s\"\nforwarded = false\n\
             [[origin]]\nurl = \"http://[fd00::5]:8080\"\nhost = \"WWW.example.com:8080\"\n\
             max_object_size = \"1500MB\"\n",
        )
        .flag("origin", "https://flag.example");
    let config = case.load().unwrap();
    let printed = case.dir.path().join("printed.toml");
    std::fs::write(&printed, config.to_toml()).unwrap();
    let again = load(Sources {
        file: Some(&printed),
        ..Sources::default()
    })
    .unwrap();
    assert_eq!(again, config);
    assert_eq!(again.origins[0].url.as_str(), "https://flag.example");
    assert_eq!(
        again.origins[1].host.as_deref(),
        Some("www.example.com:8080")
    );
}
