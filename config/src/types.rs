//! The configuration types. Field documentation lives in `default.toml`,
//! which is also what fills them when nothing else does.

use std::fmt;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{ConfigError, ErrorKind};
use crate::origin::OriginConfig;
use crate::size::ByteSize;

/// The whole node configuration. Build one with [`crate::load`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The public HTTP listener.
    pub http: HttpConfig,
    /// The admin HTTP listener.
    pub admin: AdminConfig,
    /// The local blob store.
    pub store: StoreConfig,
    /// The QUIC peer swarm.
    pub swarm: SwarmConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
    /// Logging.
    pub log: LogConfig,
    /// Origin servers, the `[[origin]]` tables (default none). See
    /// [`Config::origin_for_host`].
    #[serde(default, rename = "origin")]
    pub origins: Vec<OriginConfig>,
}

/// `[http]`: the public listener.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to bind (default 127.0.0.1:8080).
    pub listen: SocketAddr,
    /// Bound on a request head; 8 KiB to 1 MiB (default 16KiB).
    pub max_header_bytes: ByteSize,
    /// Most header fields in one request; 1 to 1000 (default 100).
    pub max_headers: usize,
    /// Time to receive a whole request head (default 10s).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub header_read_timeout: Duration,
    /// Close a connection with no progress in either direction for this
    /// long (default 60s).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub idle_timeout: Duration,
    /// Most open connections per listener (default 10000).
    pub max_connections: usize,
    /// Serve plaintext HTTP on `listen` (default true); false leaves only HTTPS.
    pub plaintext: bool,
    /// Most concurrent requests on one HTTP/2 or HTTP/3 connection (default 100).
    pub max_concurrent_streams: u32,
    /// `[http.tls]`: HTTPS (HTTP/1.1, HTTP/2) and HTTP/3.
    pub tls: TlsConfig,
}

/// `[http.tls]`: the HTTPS listener (TCP) and HTTP/3 (UDP, same port). Off
/// until a certificate is configured.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Address to bind, TCP and UDP (default 127.0.0.1:8443).
    pub listen: SocketAddr,
    /// PEM certificate chain of the default certificate.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// More certificates, chosen by SNI: PEM files each holding a chain and its key.
    pub certificates: Vec<PathBuf>,
    /// Serve HTTP/3 on UDP at `listen` and advertise it with Alt-Svc (default true).
    pub http3: bool,
    /// HTTP/3 handshakes from unvalidated addresses in progress at once before
    /// new clients must first answer a Retry; 0 = always (default 64).
    pub http3_unvalidated_handshakes: usize,
    /// The UDP port `Alt-Svc` names; 0 = the bound port (default 0).
    pub http3_advertised_port: u16,
    /// How often certificate files are checked for changes; 0s = only on
    /// SIGHUP (default 10s).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub reload_interval: Duration,
}

impl TlsConfig {
    /// Whether any certificate is configured, i.e. whether HTTPS is on.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() || !self.certificates.is_empty()
    }
}

/// `[admin]`: the admin listener. `Debug` redacts the token.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to bind (default 127.0.0.1:8081).
    pub listen: SocketAddr,
    /// Bearer token; a secret, never printed.
    pub token: Option<String>,
    /// File holding the bearer token.
    pub token_file: Option<PathBuf>,
    /// Largest accepted upload (default 64GiB).
    pub max_upload_size: ByteSize,
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("max_upload_size", &self.max_upload_size)
            .finish()
    }
}

/// `[store]`: the local blob store.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Where the index and blobs live (default ./fleetcache-data).
    pub data_dir: PathBuf,
    /// Bytes of blob data to keep (default 10GiB).
    pub capacity: ByteSize,
    /// Fraction of capacity that starts eviction (default 0.95).
    pub high_watermark: f64,
    /// Fraction of capacity eviction frees down to (default 0.90).
    pub low_watermark: f64,
    /// Memory for verified chunks of hot objects (default 64MiB; 0 turns it off).
    pub memory_cache: ByteSize,
}

/// `[swarm]`: the QUIC peer layer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmConfig {
    /// UDP address to bind (default 127.0.0.1:7070).
    pub listen: SocketAddr,
    /// Peers to join, each `HOST:PORT` (default none).
    pub peers: Vec<String>,
    /// Fleet CA and node certificate directory (what `fleetcache cert node` wrote).
    pub cert_dir: Option<PathBuf>,
    /// A peer that sends nothing for this long is abandoned for the request; also the
    /// limit for connecting and for answering a ping (default 2s).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub peer_timeout: Duration,
    /// How often each peer is pinged (default 1s).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub ping_interval: Duration,
    /// How often peer DNS names are resolved again (default 30s).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub resolve_interval: Duration,
    /// Peer GET requests answered at once; more are told to go elsewhere (default 64).
    pub max_uploads: usize,
    /// How long every node keeps a fleet purge so that a node that was away learns it
    /// when it reconnects (default 24h).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub purge_retention: Duration,
}

/// `[shutdown]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long in-flight requests may finish after a signal (default 30s).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub grace_period: Duration,
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing `EnvFilter` directive (default "info"); the gateway parses it.
    pub level: String,
    /// Output format (default text).
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// A token file larger than this is a mistake (a wrong path, a device), not
/// a token; reading stops there instead of filling memory.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

impl Config {
    /// The admin bearer token: `admin.token`, or the trimmed contents of
    /// `admin.token_file`, or `None` when neither is set.
    ///
    /// Reads the file on every call, so a rotated secret is picked up at the
    /// next start. Fails, naming `admin.token_file`, when the file cannot be
    /// read, is empty, or does not look like a token.
    pub fn admin_token(&self) -> Result<Option<String>, ConfigError> {
        let (token, path) = match (&self.admin.token, &self.admin.token_file) {
            (None, None) => return Ok(None),
            (Some(token), None) => return Ok(Some(token.clone())),
            (token, Some(path)) => (token, path),
        };
        let fail = |problem: String| -> ConfigError {
            ErrorKind::TokenFile {
                path: path.clone(),
                problem,
            }
            .into()
        };
        if token.is_some() {
            // `load` refuses this; a hand-built Config gets the same answer.
            return Err(fail(
                "admin.token is also set; set only one of them".to_owned(),
            ));
        }
        let mut raw = Vec::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_TOKEN_FILE_BYTES + 1).read_to_end(&mut raw))
            .map_err(|err| fail(format!("cannot read the token file: {err}")))?;
        if raw.len() as u64 > MAX_TOKEN_FILE_BYTES {
            return Err(fail(format!(
                "the token file is larger than {}; is this the right file?",
                ByteSize(MAX_TOKEN_FILE_BYTES)
            )));
        }
        let text = String::from_utf8(raw)
            .map_err(|_| fail("the token file is not UTF-8 text".to_owned()))?;
        let token = text.trim();
        if let Some(problem) = crate::validate::token_problem(token) {
            return Err(fail(format!("the token file's contents: {problem}")));
        }
        Ok(Some(token.to_owned()))
    }

    /// Whether the admin listener is bound to a loopback address (so only
    /// local processes can reach it). IPv4-mapped IPv6 loopback counts.
    pub fn admin_is_loopback(&self) -> bool {
        self.admin.listen.ip().to_canonical().is_loopback()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn config() -> Config {
        crate::load(crate::Sources::default()).unwrap()
    }

    #[test]
    fn admin_token_comes_from_the_token() {
        let mut config = config();
        assert_eq!(config.admin_token().unwrap(), None);
        config.admin.token = Some("abc".into());
        assert_eq!(config.admin_token().unwrap().as_deref(), Some("abc"));
    }

    #[test]
    fn admin_token_reads_and_trims_the_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "  s3cret-token \n").unwrap();
        let mut config = config();
        config.admin.token_file = Some(file.path().to_owned());
        assert_eq!(
            config.admin_token().unwrap().as_deref(),
            Some("s3cret-token")
        );
    }

    #[test]
    fn admin_token_file_errors_name_the_field() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut config = config();

        let missing = dir.path().join("missing");
        config.admin.token_file = Some(missing.clone());
        let err = config.admin_token().unwrap_err();
        assert_eq!(err.field(), Some("admin.token_file"));
        let text = err.to_string();
        assert!(text.contains("admin.token_file"), "{text}");
        assert!(text.contains(&missing.display().to_string()), "{text}");
        assert!(text.contains("cannot read"), "{text}");

        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n\t\n").unwrap();
        config.admin.token_file = Some(empty);
        let err = config.admin_token().unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");

        let spaced = dir.path().join("spaced");
        std::fs::write(&spaced, "two words\n").unwrap();
        config.admin.token_file = Some(spaced);
        let err = config.admin_token().unwrap_err();
        assert!(err.to_string().contains("whitespace"), "{err}");

        let huge = dir.path().join("huge");
        std::fs::write(&huge, vec![b'a'; 100 * 1024]).unwrap();
        config.admin.token_file = Some(huge);
        let err = config.admin_token().unwrap_err();
        assert!(err.to_string().contains("larger than 64KiB"), "{err}");

        config.admin.token_file = Some(dir.path().to_owned());
        assert!(config.admin_token().is_err(), "a directory is not a token");

        config.admin.token = Some("abc".into());
        let err = config.admin_token().unwrap_err();
        assert!(err.to_string().contains("set only one"), "{err}");
    }

    #[test]
    fn debug_redacts_the_token() {
        let mut config = config();
        config.admin.token = Some("hunter2-secret".into());
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn loopback_detection() {
        let mut config = config();
        for (addr, loopback) in [
            ("127.0.0.1:8081", true),
            ("127.1.2.3:1", true),
            ("[::1]:8081", true),
            ("[::ffff:127.0.0.1]:8081", true),
            ("0.0.0.0:8081", false),
            ("[::]:8081", false),
            ("10.0.0.5:8081", false),
        ] {
            config.admin.listen = addr.parse().unwrap();
            assert_eq!(config.admin_is_loopback(), loopback, "{addr}");
        }
    }
}
