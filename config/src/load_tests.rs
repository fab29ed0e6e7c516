#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::test_case::Case;
use crate::{
    AdminConfig, ByteSize, HttpConfig, LogConfig, LogFormat, ShutdownConfig, StoreConfig,
    SwarmConfig, TlsConfig,
};

/// The documented defaults, written out by hand.
fn documented() -> Config {
    Config {
        http: HttpConfig {
            listen: "127.0.0.1:8080".parse().unwrap(),
            max_header_bytes: ByteSize(16 * 1024),
            max_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            plaintext: true,
            max_concurrent_streams: 100,
            tls: TlsConfig {
                listen: "127.0.0.1:8443".parse().unwrap(),
                cert_file: None,
                key_file: None,
                certificates: vec![],
                http3: true,
                http3_unvalidated_handshakes: 64,
                http3_advertised_port: 0,
                reload_interval: Duration::from_secs(10),
            },
        },
        admin: AdminConfig {
            listen: "127.0.0.1:8081".parse().unwrap(),
            token: None,
            token_file: None,
            max_upload_size: ByteSize(64 << 30),
        },
        store: StoreConfig {
            data_dir: PathBuf::from("./fleetcache-data"),
            capacity: ByteSize(10 << 30),
            high_watermark: 0.95,
            low_watermark: 0.90,
            memory_cache: ByteSize(64 << 20),
        },
        swarm: SwarmConfig {
            listen: "127.0.0.1:7070".parse().unwrap(),
            peers: vec![],
            cert_dir: None,
            peer_timeout: Duration::from_secs(2),
            ping_interval: Duration::from_secs(1),
            resolve_interval: Duration::from_secs(30),
            max_uploads: 64,
            purge_retention: Duration::from_secs(24 * 3600),
        },
        shutdown: ShutdownConfig {
            grace_period: Duration::from_secs(30),
        },
        log: LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        },
        origins: vec![],
    }
}

#[test]
fn defaults_load_with_nothing_and_match_the_documentation() {
    let config = load(Sources::default()).unwrap();
    assert_eq!(config, documented());
    assert!(config.admin_is_loopback());
    assert_eq!(config.admin_token().unwrap(), None);
}

#[test]
fn the_file_overrides_only_what_it_names() {
    let case = Case::new().file(
        "[store]\ncapacity = \"50GiB\"\ndata_dir = \"/srv/fc\"\n\n[http]\nmax_headers = 50\n\
         [swarm]\npeers = [\"a.example:7070\"]\ncert_dir = \"/etc/fc\"\n[log]\nformat = \"json\"\n",
    );
    let config = case.load().unwrap();
    let mut expected = documented();
    expected.store.capacity = ByteSize(50 << 30);
    expected.store.data_dir = PathBuf::from("/srv/fc");
    expected.http.max_headers = 50;
    expected.swarm.peers = vec!["a.example:7070".into()];
    expected.swarm.cert_dir = Some(PathBuf::from("/etc/fc"));
    expected.log.format = LogFormat::Json;
    assert_eq!(config, expected);
}

#[test]
fn dotted_keys_and_integer_sizes_in_the_file() {
    let config = Case::new()
        .file("store.capacity = 1048576\nhttp.max_header_bytes = \"10 KB\"\n")
        .load()
        .unwrap();
    assert_eq!(config.store.capacity, ByteSize(1 << 20));
    assert_eq!(config.http.max_header_bytes, ByteSize(10_000));
}

#[test]
fn env_overrides_the_file_and_flags_override_env() {
    let file = "[store]\ncapacity = \"50GiB\"\nhigh_watermark = 0.8\nlow_watermark = 0.5\n\
                [http]\nlisten = \"127.0.0.1:1\"\n";
    let case = Case::new()
        .file(file)
        .env("FLEETCACHE_STORE_CAPACITY", "1.5GB")
        .env("FLEETCACHE_HTTP_LISTEN", "127.0.0.1:2")
        .env("FLEETCACHE_HTTP_MAX_CONNECTIONS", " 42 ")
        .env("FLEETCACHE_STORE_LOW_WATERMARK", "0.6")
        .env("FLEETCACHE_SWARM_PEERS", "a:1, b.example:2,,[::1]:3,")
        .env("FLEETCACHE_SWARM_CERT_DIR", "/etc/fc/certs")
        .env("FLEETCACHE_HTTP_IDLE_TIMEOUT", "1h30m")
        .flag("http.listen", "127.0.0.1:3");
    let config = case.load().unwrap();
    assert_eq!(config.store.capacity, ByteSize(1_500_000_000));
    assert_eq!(config.store.high_watermark, 0.8);
    assert_eq!(config.store.low_watermark, 0.6);
    assert_eq!(config.http.listen, "127.0.0.1:3".parse().unwrap());
    assert_eq!(config.http.max_connections, 42);
    assert_eq!(config.http.idle_timeout, Duration::from_secs(5_400));
    assert_eq!(config.swarm.peers, ["a:1", "b.example:2", "[::1]:3"]);
}

#[test]
fn optional_keys_and_the_log_alias_from_env() {
    let config = Case::new()
        .env("FLEETCACHE_ADMIN_TOKEN_FILE", "/run/secrets/t")
        .env("FLEETCACHE_SWARM_CERT_DIR", "/etc/fc/certs")
        .env("FLEETCACHE_LOG", "debug")
        .env("FLEETCACHE_SWARM_PEERS", "")
        .load()
        .unwrap();
    assert_eq!(
        config.admin.token_file,
        Some(PathBuf::from("/run/secrets/t"))
    );
    assert_eq!(config.swarm.cert_dir, Some(PathBuf::from("/etc/fc/certs")));
    assert_eq!(config.log.level, "debug");
    assert!(config.swarm.peers.is_empty());

    let text = Case::new()
        .env("FLEETCACHE_LOG", "debug")
        .env("FLEETCACHE_LOG_LEVEL", "info")
        .fails_on("log.level");
    assert!(
        text.contains("FLEETCACHE_LOG and FLEETCACHE_LOG_LEVEL are both set"),
        "{text}"
    );
}

#[test]
fn unrelated_env_and_the_config_variable_are_ignored() {
    let config = Case::new()
        .env("FLEETCACHE_CONFIG", "/nonexistent.toml")
        .env("PATH", "/usr/bin")
        .env("RUST_LOG", "trace")
        .load()
        .unwrap();
    assert_eq!(config, documented());
}

#[test]
fn unknown_keys_in_the_file_are_named() {
    let case = Case::new().file("[store]\ncapcity = \"1GiB\"\n");
    let err = case.load().unwrap_err();
    assert_eq!(err.field(), Some("store.capcity"));
    assert_eq!(
        err.to_string(),
        format!(
            "invalid config: unknown key `store.capcity` (from file {}); did you mean store.capacity?",
            case.file_name()
        )
    );

    let case = Case::new().file("verbose = true\n");
    let text = case.load().unwrap_err().to_string();
    assert!(text.contains("unknown key `verbose`"), "{text}");
    assert!(text.contains(&case.file_name()), "{text}");

    let case = Case::new().file("[metrics]\nlisten = \"127.0.0.1:9\"\n");
    let text = case.load().unwrap_err().to_string();
    assert!(text.contains("unknown key `metrics`"), "{text}");

    let case = Case::new().file("[http]\nlisten = \"127.0.0.1:1\"\n[http.quic]\ncert = \"x\"\n");
    let text = case.load().unwrap_err().to_string();
    assert!(text.contains("unknown key `http.quic`"), "{text}");
}

#[test]
fn unknown_env_variables_are_named() {
    let err = Case::new()
        .env("FLEETCACHE_NO_SUCH_THING", "1")
        .load()
        .unwrap_err();
    assert_eq!(err.field(), None);
    assert_eq!(
        err.to_string(),
        "invalid config: unknown environment variable FLEETCACHE_NO_SUCH_THING: it names no config key"
    );
    let text = Case::new()
        .env("FLEETCACHE_STORE_CAPCITY", "1GiB")
        .load()
        .unwrap_err()
        .to_string();
    assert!(text.contains("FLEETCACHE_STORE_CAPCITY"), "{text}");
    assert!(
        text.contains("did you mean FLEETCACHE_STORE_CAPACITY?"),
        "{text}"
    );
    // A table is not a key.
    let text = Case::new()
        .env("FLEETCACHE_STORE", "x")
        .load()
        .unwrap_err()
        .to_string();
    assert!(text.contains("FLEETCACHE_STORE:"), "{text}");
}

#[test]
fn unknown_flag_keys_are_named() {
    let text = Case::new()
        .flag("http.listne", "127.0.0.1:1")
        .load()
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "invalid config: unknown key `http.listne` (from a command-line flag); did you mean http.listen?"
    );
}

#[test]
fn a_bad_size_names_field_value_and_variable() {
    let err = Case::new()
        .env("FLEETCACHE_STORE_CAPACITY", "50XB")
        .load()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config: store.capacity = \"50XB\" (from env FLEETCACHE_STORE_CAPACITY): \
         unknown size unit \"XB\"; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB"
    );
    let text = Case::new()
        .file("[admin]\nmax_upload_size = \"99999999TiB\"\n")
        .fails_on("admin.max_upload_size");
    assert!(text.contains("too large"), "{text}");
    let text = Case::new()
        .file("[store]\ncapacity = -5\n")
        .fails_on("store.capacity");
    assert!(text.contains("negative"), "{text}");
    Case::new()
        .env("FLEETCACHE_STORE_MEMORY_CACHE", "lots")
        .fails_on("store.memory_cache");
}

#[test]
fn a_bad_duration_names_field_and_file() {
    let case = Case::new().file("[http]\nidle_timeout = \"soon\"\n");
    let text = case.fails_on("http.idle_timeout");
    assert!(text.contains("= \"soon\""), "{text}");
    assert!(
        text.contains(&format!("(from file {})", case.file_name())),
        "{text}"
    );
    assert!(text.contains("\"30s\""), "{text}");

    let text = Case::new()
        .env("FLEETCACHE_HTTP_IDLE_TIMEOUT", "soon")
        .fails_on("http.idle_timeout");
    assert!(
        text.contains("(from env FLEETCACHE_HTTP_IDLE_TIMEOUT)"),
        "{text}"
    );
}

#[test]
fn an_integer_duration_is_refused_with_a_hint() {
    let case = Case::new().file("[shutdown]\ngrace_period = 30\n");
    let text = case.fails_on("shutdown.grace_period");
    assert!(
        text.contains("shutdown.grace_period = 30 (from file"),
        "{text}"
    );
    assert!(text.contains("ambiguous"), "{text}");
    assert!(text.contains("\"30s\""), "{text}");
}

#[test]
fn wrong_types_name_field_and_source() {
    let case = Case::new().file("[http]\nmax_headers = \"many\"\n");
    let text = case.fails_on("http.max_headers");
    assert!(text.contains(&case.file_name()), "{text}");
    assert!(text.contains("invalid type"), "{text}");

    let text = Case::new()
        .env("FLEETCACHE_HTTP_MAX_HEADERS", "many")
        .fails_on("http.max_headers");
    assert!(
        text.contains("from env FLEETCACHE_HTTP_MAX_HEADERS): expected a whole number"),
        "{text}"
    );

    let text = Case::new()
        .env("FLEETCACHE_STORE_HIGH_WATERMARK", "high")
        .fails_on("store.high_watermark");
    assert!(text.contains("expected a number"), "{text}");

    let text = Case::new()
        .env("FLEETCACHE_HTTP_MAX_CONNECTIONS", "-1")
        .fails_on("http.max_connections");
    assert!(
        text.contains("(from env FLEETCACHE_HTTP_MAX_CONNECTIONS)"),
        "{text}"
    );

    let text = Case::new()
        .flag("http.listen", "not-an-address")
        .fails_on("http.listen");
    assert!(
        text.contains("= \"not-an-address\" (from a command-line flag)"),
        "{text}"
    );

    let text = Case::new()
        .file("[log]\nformat = \"xml\"\n")
        .fails_on("log.format");
    assert!(text.contains("json"), "{text}");

    let case = Case::new().file("store = 5\n");
    let text = case.fails_on("store");
    assert!(text.contains(&case.file_name()), "{text}");
    // An env value under a table the file broke does not hide the file's error.
    let text = case
        .env("FLEETCACHE_STORE_CAPACITY", "1GiB")
        .fails_on("store");
    assert!(text.contains("from file"), "{text}");

    let text = Case::new()
        .file("[swarm]\npeers = [\"a:1\", 7]\n")
        .fails_on("swarm.peers[1]");
    assert!(text.contains("swarm.peers[1] = 7 (from file"), "{text}");
}

#[test]
fn non_loopback_admin_needs_a_token() {
    let text = Case::new()
        .flag("admin.listen", "0.0.0.0:8081")
        .fails_on("admin.listen");
    assert_eq!(
        text,
        "invalid config: admin.listen = \"0.0.0.0:8081\" (from a command-line flag): \
         admin.listen 0.0.0.0:8081 is not loopback, so admin.token or admin.token_file is required"
    );
    let config = Case::new()
        .flag("admin.listen", "0.0.0.0:8081")
        .env("FLEETCACHE_ADMIN_TOKEN", "s3cret")
        .load()
        .unwrap();
    assert_eq!(config.admin.token.as_deref(), Some("s3cret"));
    assert!(!config.admin_is_loopback());
    Case::new()
        .file("[admin]\nlisten = \"[::]:8081\"\ntoken_file = \"/run/t\"\n")
        .load()
        .unwrap();
}

#[test]
fn token_problems_never_show_the_token() {
    let case = Case::new()
        .file("[admin]\ntoken_file = \"/run/t\"\n")
        .env("FLEETCACHE_ADMIN_TOKEN", "hunter2-secret");
    let text = case.fails_on("admin.token");
    assert!(text.contains("both set"), "{text}");
    assert!(
        text.contains("admin.token = <redacted> (from env FLEETCACHE_ADMIN_TOKEN)"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");

    let text = Case::new()
        .env("FLEETCACHE_ADMIN_TOKEN", "hunter2 secret")
        .fails_on("admin.token");
    assert!(text.contains("whitespace"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let err = Case::new()
        .env("FLEETCACHE_ADMIN_TOKEN", "hunter2 secret")
        .load()
        .unwrap_err();
    assert!(!format!("{err:?}").contains("hunter2"));

    Case::new()
        .env("FLEETCACHE_ADMIN_TOKEN", "")
        .fails_on("admin.token");
}

#[test]
fn ranges_are_checked() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "FLEETCACHE_HTTP_MAX_HEADER_BYTES",
            "4KiB",
            "http.max_header_bytes",
        ),
        (
            "FLEETCACHE_HTTP_MAX_HEADER_BYTES",
            "2MiB",
            "http.max_header_bytes",
        ),
        ("FLEETCACHE_HTTP_MAX_HEADERS", "0", "http.max_headers"),
        ("FLEETCACHE_HTTP_MAX_HEADERS", "1001", "http.max_headers"),
        (
            "FLEETCACHE_HTTP_MAX_CONNECTIONS",
            "0",
            "http.max_connections",
        ),
        (
            "FLEETCACHE_HTTP_HEADER_READ_TIMEOUT",
            "0s",
            "http.header_read_timeout",
        ),
        ("FLEETCACHE_HTTP_IDLE_TIMEOUT", "0ms", "http.idle_timeout"),
        ("FLEETCACHE_HTTP_IDLE_TIMEOUT", "169h", "http.idle_timeout"),
        (
            "FLEETCACHE_SHUTDOWN_GRACE_PERIOD",
            "9999999h",
            "shutdown.grace_period",
        ),
        (
            "FLEETCACHE_ADMIN_MAX_UPLOAD_SIZE",
            "0",
            "admin.max_upload_size",
        ),
        ("FLEETCACHE_ADMIN_TOKEN_FILE", "", "admin.token_file"),
        ("FLEETCACHE_SWARM_CERT_DIR", "", "swarm.cert_dir"),
        ("FLEETCACHE_LOG_LEVEL", "  ", "log.level"),
        ("FLEETCACHE_SWARM_PEERS", "a:1,no-port", "swarm.peers[1]"),
    ];
    for (name, value, field) in cases {
        let text = Case::new().env(name, value).fails_on(field);
        assert!(text.contains(&format!("(from env {name})")), "{text}");
    }
    let text = Case::new()
        .env("FLEETCACHE_HTTP_MAX_HEADER_BYTES", "4KiB")
        .fails_on("http.max_header_bytes");
    assert!(text.contains("between 8KiB and 1MiB"), "{text}");

    let config = Case::new()
        .env("FLEETCACHE_SHUTDOWN_GRACE_PERIOD", "0s")
        .env("FLEETCACHE_HTTP_MAX_HEADER_BYTES", "8192")
        .env("FLEETCACHE_HTTP_MAX_HEADERS", "1000")
        .load()
        .unwrap();
    assert_eq!(config.shutdown.grace_period, Duration::ZERO);
    assert_eq!(config.http.max_header_bytes, ByteSize(8192));
}

#[test]
fn syntax_errors_give_file_line_and_column() {
    let case = Case::new().file("[store]\ncapacity = \"1GiB\"\ndata_dir = \"unterminated\n");
    let err = case.load().unwrap_err();
    assert_eq!(err.field(), None);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "invalid config: TOML syntax error in {} at line 3, column ",
            case.file_name()
        )),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");

    let text = Case::new().file("[store\n").load().unwrap_err().to_string();
    assert!(text.contains("at line 1, column "), "{text}");

    let text = Case::new()
        .file("[http]\nmax_headers = 1\nmax_headers = 2\n")
        .load()
        .unwrap_err()
        .to_string();
    assert!(text.contains("at line 3, column 1"), "{text}");
}

#[test]
fn an_unreadable_file_is_named() {
    let path = std::path::Path::new("/nonexistent/fleetcache.toml");
    let err = load(Sources {
        file: Some(path),
        ..Sources::default()
    })
    .unwrap_err();
    assert_eq!(err.field(), None);
    let text = err.to_string();
    assert!(
        text.starts_with("invalid config: cannot read config file /nonexistent/fleetcache.toml: "),
        "{text}"
    );

    let case = Case::new();
    std::fs::write(case.dir.path().join("bin.toml"), [0xff, 0xfe, 0x00]).unwrap();
    let path = case.dir.path().join("bin.toml");
    let err = load(Sources {
        file: Some(&path),
        ..Sources::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("cannot read config file"), "{err}");
}

#[test]
fn origins_track_the_last_layer() {
    let path = PathBuf::from("/x.toml");
    let mut layered = Layered::defaults().unwrap();
    let file: Table = "[store]\ncapacity = \"1GiB\"\n".parse().unwrap();
    merge(
        &mut layered.table,
        file,
        "",
        &Origin::File(path.clone()),
        &mut layered.origins,
    );
    assert_eq!(layered.origin("store.capacity"), Origin::File(path));
    assert_eq!(layered.origin("store.data_dir"), Origin::Default);
    let key = schema::leaf("store.capacity").unwrap();
    layered.set(key, "2GiB", Origin::Flag).unwrap();
    assert_eq!(layered.origin("store.capacity"), Origin::Flag);
    assert_eq!(layered.origin("swarm.peers[3]"), Origin::Default);
    layered.set_default_origin_url("http://a", Origin::UrlFlag);
    assert_eq!(layered.origin("origin[0].url"), Origin::UrlFlag);
    assert_eq!(layered.origin("origin[0].max_fetches"), Origin::Default);
    assert_eq!(line_column("ab\ncdé\nx", 7), (2, 4));
    assert_eq!(line_column("ab\ncdé\nx", 8), (3, 1));
}

#[test]
fn type_errors_speak_toml() {
    assert_eq!(
        plain_words("invalid type: integer `5`, expected struct StoreConfig"),
        "invalid type: integer `5`, expected a table"
    );
    assert_eq!(
        plain_words("invalid value: integer `-1`, expected usize"),
        "invalid value: integer `-1`, expected a whole number of at least 0"
    );
    assert_eq!(
        plain_words("invalid type: string \"a:1\", expected a sequence"),
        "invalid type: string \"a:1\", expected a list, like [\"a\", \"b\"]"
    );
    let text = Case::new().file("store = 5\n").fails_on("store");
    assert!(text.ends_with("expected a table"), "{text}");
}

#[test]
fn peers_without_certificates_are_refused() {
    let text = Case::new()
        .env("FLEETCACHE_SWARM_PEERS", "10.0.0.2:7070")
        .fails_on("swarm.cert_dir");
    assert!(text.contains("fleetcache cert"), "{text}");
    Case::new()
        .env("FLEETCACHE_SWARM_PEER_TIMEOUT", "0s")
        .fails_on("swarm.peer_timeout");
    Case::new()
        .env("FLEETCACHE_SWARM_MAX_UPLOADS", "0")
        .fails_on("swarm.max_uploads");
    Case::new()
        .env("FLEETCACHE_SWARM_PURGE_RETENTION", "0s")
        .fails_on("swarm.purge_retention");
}

#[test]
fn tls_settings_load_and_are_checked() {
    let config = Case::new()
        .file(
            "[http.tls]\nlisten = \"0.0.0.0:443\"\ncert_file = \"/tls/chain.pem\"\n\
             key_file = \"/tls/key.pem\"\ncertificates = [\"/tls/other.pem\"]\nhttp3 = false\n",
        )
        .env("FLEETCACHE_HTTP_PLAINTEXT", "false")
        .env("FLEETCACHE_HTTP_TLS_RELOAD_INTERVAL", "0s")
        .load()
        .unwrap();
    let tls = &config.http.tls;
    assert!(tls.enabled());
    assert!(!config.http.plaintext);
    assert!(!tls.http3);
    assert_eq!(tls.listen, "0.0.0.0:443".parse().unwrap());
    assert_eq!(tls.certificates, vec![PathBuf::from("/tls/other.pem")]);
    assert_eq!(tls.reload_interval, Duration::ZERO);
    // What `config print` shows loads back to the same configuration.
    let printed = Case::new().file(&config.to_toml()).load().unwrap();
    assert_eq!(printed, config);

    let text = Case::new()
        .env("FLEETCACHE_HTTP_TLS_CERT_FILE", "/tls/chain.pem")
        .fails_on_from("http.tls.key_file", "FLEETCACHE_HTTP_TLS_CERT_FILE");
    assert!(text.contains("set http.tls.key_file too"), "{text}");
    Case::new()
        .env("FLEETCACHE_HTTP_TLS_KEY_FILE", "/tls/key.pem")
        .fails_on("http.tls.cert_file");
    let text = Case::new()
        .env("FLEETCACHE_HTTP_PLAINTEXT", "false")
        .fails_on("http.plaintext");
    assert!(text.contains("no public listener"), "{text}");
    let text = Case::new()
        .env("FLEETCACHE_HTTP_PLAINTEXT", "no")
        .fails_on("http.plaintext");
    assert!(text.contains("true or false"), "{text}");
    Case::new()
        .env("FLEETCACHE_HTTP_MAX_CONCURRENT_STREAMS", "0")
        .fails_on("http.max_concurrent_streams");
    Case::new()
        .env("FLEETCACHE_HTTP_TLS_CERTIFICATES", "/a.pem")
        .env("FLEETCACHE_HTTP_LISTEN", "127.0.0.1:9000")
        .env("FLEETCACHE_HTTP_TLS_LISTEN", "127.0.0.1:9000")
        .fails_on("http.tls.listen");
    Case::new()
        .env(
            "FLEETCACHE_HTTP_TLS_HTTP3_UNVALIDATED_HANDSHAKES",
            "1000000",
        )
        .fails_on("http.tls.http3_unvalidated_handshakes");
    Case::new()
        .env("FLEETCACHE_HTTP_TLS_HTTP3_ADVERTISED_PORT", "65536")
        .fails_on("http.tls.http3_advertised_port");
    Case::new()
        .file("[http.tls]\ncertificates = [\"\"]\n")
        .fails_on("http.tls.certificates[0]");
    Case::new()
        .file("[http.tls]\nlisten = \"127.0.0.1:8443\"\ncert = \"x\"\n")
        .fails_on("http.tls.cert");
}
