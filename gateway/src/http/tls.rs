//! The public listeners' certificates: loaded from PEM files, chosen by the
//! client's SNI name, and swapped in place on reload, so new handshakes get
//! the new certificate while open connections carry on with theirs.
//!
//! One [`Certificates`] serves both the HTTPS listener and HTTP/3: each asks
//! for its own rustls `ServerConfig` ([`Certificates::server_config`]), and
//! both resolve through the same set.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::sync::lock;

/// Where the certificates come from: `[http.tls]`'s files.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    /// The default certificate's chain and key files.
    pub(crate) default: Option<(PathBuf, PathBuf)>,
    /// Files each holding a chain and its key.
    pub(crate) combined: Vec<PathBuf>,
    /// How often the files are checked for changes; zero = never.
    pub(crate) reload_interval: Duration,
}

/// Why a certificate could not be loaded. The message names the config key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// A file could not be read.
    #[error("invalid config: {field}: cannot read {}: {source}", path.display())]
    Read {
        field: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file's contents are not what the key needs.
    #[error("invalid config: {field}: {}: {problem}", path.display())]
    Malformed {
        field: String,
        path: PathBuf,
        problem: String,
    },
    /// The metrics could not be built (a bug, not the files).
    #[error("TLS metrics: {0}")]
    Metrics(prometheus::Error),
}

/// The loaded certificates, swapped whole on reload.
#[derive(Debug)]
struct CertSet {
    /// For clients without SNI, or whose name no certificate matches.
    default: Arc<CertifiedKey>,
    /// Each certificate under every DNS name it carries.
    named: Vec<(Name, Arc<CertifiedKey>)>,
}

/// A subjectAltName DNS entry, lower-cased.
#[derive(Debug, PartialEq, Eq)]
enum Name {
    Exact(String),
    /// `*.example.com`, kept as `example.com`: matches exactly one more label.
    Wildcard(String),
}

/// The node's public certificates and their reload metrics.
#[derive(Debug)]
pub(crate) struct Certificates {
    files: TlsFiles,
    /// Swapped whole; a handshake only clones the `Arc` under the lock.
    current: Mutex<Arc<CertSet>>,
    provider: Arc<CryptoProvider>,
    reloads: IntCounterVec,
    not_after: IntGaugeVec,
}

impl Certificates {
    /// Loads every configured certificate; any failure is a configuration
    /// error naming its key.
    pub(crate) fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let reloads = IntCounterVec::new(
            Opts::new(
                "fleetcache_tls_reloads_total",
                "Certificate reloads (SIGHUP or a changed file), by result (ok, error: the old certificates stay)",
            ),
            &["result"],
        )
        .map_err(TlsError::Metrics)?;
        let not_after = IntGaugeVec::new(
            Opts::new(
                "fleetcache_tls_certificate_not_after_seconds",
                "Expiry (Unix time) of each public certificate in use, by file",
            ),
            &["file"],
        )
        .map_err(TlsError::Metrics)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (set, expiries) = load_set(&files, &provider)?;
        let certificates = Arc::new(Certificates {
            files,
            current: Mutex::new(Arc::new(set)),
            provider,
            reloads,
            not_after,
        });
        certificates.publish_expiries(&expiries);
        Ok(certificates)
    }

    /// Adds the reload and expiry metrics to the node's registry.
    pub(crate) fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.reloads.clone()))?;
        // Both results exported at zero from the start.
        self.reloads.with_label_values(&["ok"]);
        self.reloads.with_label_values(&["error"]);
        registry.register(Box::new(self.not_after.clone()))
    }

    /// Reads the files again and swaps the new set in. On any failure the
    /// current certificates stay and the error says why.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        match load_set(&self.files, &self.provider) {
            Ok((set, expiries)) => {
                let names = set.named.len();
                *lock(&self.current) = Arc::new(set);
                self.publish_expiries(&expiries);
                self.reloads.with_label_values(&["ok"]).inc();
                tracing::info!(names, "TLS certificates reloaded");
                Ok(())
            }
            Err(err) => {
                self.reloads.with_label_values(&["error"]).inc();
                Err(err)
            }
        }
    }

    fn publish_expiries(&self, expiries: &[(String, i64)]) {
        self.not_after.reset();
        for (file, not_after) in expiries {
            self.not_after.with_label_values(&[file]).set(*not_after);
        }
    }

    /// A rustls configuration resolving through these certificates:
    /// TLS 1.2 and 1.3 with `alpn` for TCP, TLS 1.3 only for QUIC.
    pub(crate) fn server_config(
        self: &Arc<Self>,
        alpn: &[&[u8]],
        tls13_only: bool,
    ) -> Result<rustls::ServerConfig, rustls::Error> {
        let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(versions)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(Arc::clone(self))));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // Stateless resumption: a returning client skips the full handshake
        // without the node keeping per-client state.
        config.ticketer = rustls::crypto::ring::Ticketer::new()?;
        Ok(config)
    }

    /// Reloads when a file changes (checked every `reload_interval`) until
    /// `stop`. SIGHUP is the binary's to catch; it calls [`Self::reload`].
    pub(crate) fn watch(self: &Arc<Self>, stop: CancellationToken) {
        let interval = self.files.reload_interval;
        if interval.is_zero() {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut seen = stamps(&this.files);
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let now = stamps(&this.files);
                if now != seen {
                    seen = now;
                    // A writer halfway through replacing the files gets
                    // another try at the next change.
                    if let Err(err) = this.reload() {
                        tracing::warn!(
                            "certificate files changed but did not load, keeping the current ones: {err}"
                        );
                    }
                }
            }
        });
    }

    fn pick(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let set = Arc::clone(&lock(&self.current));
        let Some(name) = server_name.map(str::to_ascii_lowercase) else {
            return Arc::clone(&set.default);
        };
        let parent = name.split_once('.').map(|(_, parent)| parent);
        let exact = set
            .named
            .iter()
            .find(|(n, _)| matches!(n, Name::Exact(exact) if *exact == name));
        let wildcard = || {
            set.named.iter().find(|(n, _)| match n {
                Name::Wildcard(domain) => parent == Some(domain.as_str()),
                Name::Exact(_) => false,
            })
        };
        exact
            .or_else(wildcard)
            .map_or_else(|| Arc::clone(&set.default), |(_, key)| Arc::clone(key))
    }
}

/// rustls asks this for a certificate in every handshake.
#[derive(Debug)]
struct Resolver(Arc<Certificates>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.pick(hello.server_name()))
    }
}

/// What identifies a file's version: a replaced or rewritten file (including
/// a Kubernetes Secret's symlink swap, which `metadata` follows) changes it.
type Stamp = Option<(u64, SystemTime, u64)>;

fn stamps(files: &TlsFiles) -> Vec<Stamp> {
    let stamp = |path: &Path| -> Stamp {
        let meta = std::fs::metadata(path).ok()?;
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        Some((meta.len(), meta.modified().ok()?, inode))
    };
    files
        .default
        .iter()
        .flat_map(|(cert, key)| [stamp(cert), stamp(key)])
        .chain(files.combined.iter().map(|path| stamp(path)))
        .collect()
}

/// Loads every certificate; returns the set and each file's expiry.
fn load_set(
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<(CertSet, Vec<(String, i64)>), TlsError> {
    let mut loaded = Vec::new();
    if let Some((cert, key)) = &files.default {
        let (chain, _) = read_pem("http.tls.cert_file", cert)?;
        let (_, private_key) = read_pem("http.tls.key_file", key)?;
        let private_key = private_key
            .ok_or_else(|| malformed("http.tls.key_file", key, "holds no PRIVATE KEY"))?;
        loaded.push(certified(
            ("http.tls.cert_file", cert),
            ("http.tls.key_file", key),
            chain,
            private_key,
            provider,
        )?);
    }
    for (index, path) in files.combined.iter().enumerate() {
        let field = format!("http.tls.certificates[{index}]");
        let (chain, private_key) = read_pem(&field, path)?;
        let private_key = private_key.ok_or_else(|| {
            malformed(
                &field,
                path,
                "holds no PRIVATE KEY; each of these files holds a chain and its key",
            )
        })?;
        loaded.push(certified(
            (&field, path),
            (&field, path),
            chain,
            private_key,
            provider,
        )?);
    }
    let mut loaded = loaded.into_iter();
    let Some(first) = loaded.next() else {
        return Err(malformed(
            "http.tls.cert_file",
            Path::new(""),
            "no certificate is configured",
        ));
    };
    let mut expiries = Vec::new();
    let mut named = Vec::new();
    let default = Arc::clone(&first.key);
    for cert in std::iter::once(first).chain(loaded) {
        expiries.push((cert.file, cert.not_after));
        named.extend(
            cert.names
                .into_iter()
                .map(|name| (name, Arc::clone(&cert.key))),
        );
    }
    Ok((CertSet { default, named }, expiries))
}

struct Loaded {
    key: Arc<CertifiedKey>,
    names: Vec<Name>,
    file: String,
    not_after: i64,
}

/// A chain and its key, each with the config key and file it came from (a
/// key that does not match is the key's file's problem).
fn certified(
    (field, path): (&str, &Path),
    (key_field, key_path): (&str, &Path),
    chain: Vec<CertificateDer<'static>>,
    private_key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<Loaded, TlsError> {
    let Some(leaf) = chain.first() else {
        return Err(malformed(field, path, "holds no CERTIFICATE"));
    };
    let (names, not_after) =
        leaf_details(leaf).map_err(|problem| malformed(field, path, &problem))?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if not_after < now {
        // Served anyway, like nginx does: refusing would take HTTPS down
        // entirely. The expiry gauge is there to alert on.
        tracing::warn!(file = %path.display(), "the certificate has expired");
    }
    let key = CertifiedKey::from_der(chain, private_key, provider).map_err(|err| {
        let problem = if key_path == path {
            format!("the private key is unusable or does not match the certificate: {err}")
        } else {
            format!(
                "the private key is unusable or does not match the certificate in {field} ({}): {err}",
                path.display()
            )
        };
        malformed(key_field, key_path, &problem)
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        names,
        file: path.display().to_string(),
        not_after,
    })
}

/// The leaf's DNS names and expiry.
fn leaf_details(leaf: &CertificateDer<'_>) -> Result<(Vec<Name>, i64), String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|err| format!("the first certificate does not parse: {err}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for general in &san.value.general_names {
            if let GeneralName::DNSName(dns) = general {
                let dns = dns.to_ascii_lowercase();
                names.push(match dns.strip_prefix("*.") {
                    Some(domain) => Name::Wildcard(domain.to_owned()),
                    None => Name::Exact(dns),
                });
            }
        }
    }
    Ok((names, cert.validity().not_after.timestamp()))
}

/// The certificates and the (at most one) private key in a PEM file.
fn read_pem(
    field: &str,
    path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, Option<PrivateKeyDer<'static>>), TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        field: field.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let mut certs = Vec::new();
    let mut key = None;
    for section in PemObject::pem_slice_iter(&bytes) {
        let (kind, der) =
            section.map_err(|err| malformed(field, path, &format!("bad PEM: {err}")))?;
        let private = match kind {
            SectionKind::Certificate => {
                certs.push(CertificateDer::from(der));
                continue;
            }
            SectionKind::PrivateKey => PrivateKeyDer::Pkcs8(der.into()),
            SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(der.into()),
            SectionKind::EcPrivateKey => PrivateKeyDer::Sec1(der.into()),
            _ => continue,
        };
        if key.replace(private).is_some() {
            return Err(malformed(field, path, "holds more than one private key"));
        }
    }
    if certs.is_empty() && key.is_none() {
        return Err(malformed(
            field,
            path,
            "holds no PEM CERTIFICATE or PRIVATE KEY",
        ));
    }
    Ok((certs, key))
}

fn malformed(field: &str, path: &Path, problem: &str) -> TlsError {
    TlsError::Malformed {
        field: field.to_owned(),
        path: path.to_owned(),
        problem: problem.to_owned(),
    }
}
