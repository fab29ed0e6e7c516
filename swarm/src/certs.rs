//! Fleet PKI: a fleet CA, node certificates it issues, and the mutual-TLS
//! configurations (rustls, then quinn) a node builds from its identity.
//!
//! Trust is "signed by the fleet CA", nothing else: the configs carry the fleet CA
//! as their only root, so neither the system trust store nor a certificate from
//! any other CA can get a peer past the handshake.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use time::{Duration, OffsetDateTime};

use crate::identity::{NameError, NodeName};

/// The ALPN protocol every fleet connection negotiates.
pub const ALPN: &[u8] = b"fleetcache/2";

/// A DNS name every node certificate carries besides the node's own. Peers are found by
/// address (static lists, DNS that returns pod IPs), not by node name, so a node dials
/// this name and the fleet CA's signature is what makes a member; the other DNS name,
/// the node's own ([`crate::NodeName`]), is what tells members apart.
pub const FLEET_SERVER_NAME: &str = "member.fleetcache.invalid";

/// File names inside a CA directory and a node certificate directory.
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const NODE_CERT: &str = "node.pem";
const NODE_KEY: &str = "node.key";

/// Certificates become valid an hour in the past so a peer whose clock is a
/// little behind the issuer's does not refuse a freshly issued certificate.
const CLOCK_SKEW: Duration = Duration::hours(1);
/// The fleet CA outlives many node certificates; re-keying a fleet is rare.
const CA_LIFETIME: Duration = Duration::days(3650);
/// Node certificates are re-issued far more easily than the CA.
const NODE_LIFETIME: Duration = Duration::days(730);

/// Errors from creating, saving or loading fleet certificates, or building TLS configs from them.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Key generation or certificate signing failed inside rcgen.
    #[error("generating a certificate failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// The node name cannot be a DNS subject alternative name (peers verify it as one),
    /// or it is the shared member name.
    #[error("invalid node name {name:?}: it must be a DNS name such as `node-1` or `node-1.fleet`")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// A node certificate does not carry exactly one node name: without one the node
    /// cannot be told apart from other members, so it cannot take part in routing.
    #[error("{} is not a node certificate: {source}", path.display())]
    NoNodeName {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with its names.
        source: NameError,
    },
    /// A file that must be read does not exist.
    #[error("{} is missing", path.display())]
    Missing {
        /// The missing file.
        path: PathBuf,
    },
    /// Saving would overwrite an existing file; keys are never silently replaced.
    #[error("{} already exists; refusing to overwrite it", path.display())]
    Exists {
        /// The file that already exists.
        path: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory being accessed.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file exists but does not hold what it should (PEM of the right kind, a usable key).
    #[error("{} is malformed: {reason}", path.display())]
    Malformed {
        /// The malformed file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A private key does not belong to the certificate next to it.
    #[error("{} does not match the certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused to build a configuration from the identity.
    #[error("building the TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built from the fleet CA.
    #[error("building the client certificate verifier failed: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The TLS configuration lacks the cipher suite QUIC needs for its initial packets.
    #[error("the TLS configuration cannot be used for QUIC: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// A fleet certificate authority: its self-signed certificate and its signing key.
pub struct FleetCa {
    cert_pem: String,
    key: KeyPair,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for FleetCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the signing key.
        f.debug_struct("FleetCa").finish_non_exhaustive()
    }
}

impl FleetCa {
    /// Creates a new CA with a fresh P-256 key; `name` becomes its common name.
    pub fn generate(name: &str) -> Result<Self, CertError> {
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "fleetcache");
        params.distinguished_name = dn;
        // Path length 0: the CA signs node certificates only, never intermediates.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + CA_LIFETIME;
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let issuer = Issuer::new(params, clone_key(&key)?);
        Ok(Self {
            cert_pem: cert.pem(),
            key,
            issuer,
        })
    }

    /// Loads `ca.pem` and `ca.key` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, CertError> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        let cert_pem = read_text(&cert_path)?;
        let key_pem = read_text(&key_path)?;
        let cert_der = parse_cert(&cert_path, &cert_pem)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| malformed(&key_path, e))?;
        let key_der = parse_key(&key_path, &key_pem)?;
        check_key_matches(&cert_path, cert_der.clone(), &key_path, key_der)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, clone_key(&key)?)
            .map_err(|e| malformed(&cert_path, e))?;
        Ok(Self {
            cert_pem,
            key,
            issuer,
        })
    }

    /// Writes `ca.pem` and `ca.key` (mode 0600) into `dir`, creating it if needed.
    /// Refuses to overwrite existing files.
    pub fn save(&self, dir: &Path) -> Result<(), CertError> {
        create_dir(dir)?;
        // Key first: a CA certificate without its key is useless, the reverse is recoverable.
        write_new(&dir.join(CA_KEY), &self.key.serialize_pem(), true)?;
        write_new(&dir.join(CA_CERT), &self.cert_pem, false)
    }

    /// The CA certificate in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a certificate for the node `name` (its DNS subject alternative name, in
    /// the canonical form [`NodeName`] gives it: lower case, no trailing dot), usable both
    /// as a TLS server and as a TLS client certificate.
    pub fn issue_node(&self, name: &str) -> Result<NodeCert, CertError> {
        let invalid = || CertError::InvalidName {
            name: name.to_owned(),
        };
        // The same rules peers apply when they read the name back from the certificate.
        let canonical = name.parse::<NodeName>().map_err(|_| invalid())?;
        let name = canonical.as_str();
        let san = name.to_owned().try_into().map_err(|_| invalid())?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        let fleet_san = FLEET_SERVER_NAME.to_owned().try_into()?;
        params.subject_alt_names = vec![SanType::DnsName(san), SanType::DnsName(fleet_san)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + NODE_LIFETIME;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(NodeCert {
            ca_pem: self.cert_pem.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A node certificate as issued: the node's certificate and key, and the CA certificate.
pub struct NodeCert {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCert").finish_non_exhaustive()
    }
}

impl NodeCert {
    /// Writes `ca.pem` (the CA certificate only, never its key), `node.pem` and
    /// `node.key` (mode 0600) into `dir`, creating it if needed. Refuses to overwrite.
    pub fn save(&self, dir: &Path) -> Result<(), CertError> {
        create_dir(dir)?;
        write_new(&dir.join(NODE_KEY), &self.key_pem, true)?;
        write_new(&dir.join(NODE_CERT), &self.cert_pem, false)?;
        write_new(&dir.join(CA_CERT), &self.ca_pem, false)
    }

    /// The node's identity, without a round trip through files.
    pub fn identity(&self) -> Result<NodeIdentity, CertError> {
        // Labels stand in for paths in error messages about in-memory PEM.
        NodeIdentity::from_pem(
            (Path::new(CA_CERT), &self.ca_pem),
            (Path::new(NODE_CERT), &self.cert_pem),
            (Path::new(NODE_KEY), &self.key_pem),
        )
    }
}

/// What a node needs to take part in the fleet: the fleet CA certificate, its own
/// certificate and its private key, and the node name that certificate carries.
pub struct NodeIdentity {
    /// Every CA certificate in `ca.pem`: more than one while a fleet moves to a
    /// new CA (trust both, then reissue, then drop the old one).
    cas: Vec<CertificateDer<'static>>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    name: NodeName,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// Loads `ca.pem`, `node.pem` and `node.key` from `cert_dir` (as [`NodeCert::save`] writes
    /// them), checks that the key belongs to the certificate and reads the node name from
    /// it ([`CertError::NoNodeName`] if it carries none, or several).
    pub fn load(cert_dir: &Path) -> Result<Self, CertError> {
        let ca_path = cert_dir.join(CA_CERT);
        let cert_path = cert_dir.join(NODE_CERT);
        let key_path = cert_dir.join(NODE_KEY);
        let ca_pem = read_text(&ca_path)?;
        let cert_pem = read_text(&cert_path)?;
        let key_pem = read_text(&key_path)?;
        Self::from_pem(
            (&ca_path, &ca_pem),
            (&cert_path, &cert_pem),
            (&key_path, &key_pem),
        )
    }

    fn from_pem(
        (ca_path, ca_pem): (&Path, &str),
        (cert_path, cert_pem): (&Path, &str),
        (key_path, key_pem): (&Path, &str),
    ) -> Result<Self, CertError> {
        let cas = parse_certs(ca_path, ca_pem)?;
        let cert = parse_cert(cert_path, cert_pem)?;
        let key = parse_key(key_path, key_pem)?;
        check_key_matches(cert_path, cert.clone(), key_path, key.clone_key())?;
        let name = NodeName::from_certificate(&cert).map_err(|source| CertError::NoNodeName {
            path: cert_path.to_owned(),
            source,
        })?;
        Ok(Self {
            cas,
            cert,
            key,
            name,
        })
    }

    /// The node name this identity's certificate carries: how every member of the fleet
    /// knows this node, whatever address it reaches it by.
    pub fn name(&self) -> &NodeName {
        &self.name
    }

    /// A rustls server config that requires every client to present a certificate
    /// signed by the fleet CA, and offers only the ALPN `fleetcache/2`.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, CertError> {
        let provider = provider();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), provider.clone())
                .build()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            // QUIC carries TLS 1.3 only.
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.cert.clone()], self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// A rustls client config that trusts only the fleet CA, presents this node's
    /// certificate, and offers only the ALPN `fleetcache/2`. The server is checked
    /// against the name passed to `connect`, so that must be the peer's node name.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, CertError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(vec![self.cert.clone()], self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// [`Self::server_config`] wrapped for a quinn endpoint.
    pub fn quic_server_config(&self) -> Result<quinn::ServerConfig, CertError> {
        let crypto = QuicServerConfig::try_from(self.server_config()?)?;
        Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
    }

    /// [`Self::client_config`] wrapped for a quinn endpoint.
    pub fn quic_client_config(&self) -> Result<quinn::ClientConfig, CertError> {
        let crypto = QuicClientConfig::try_from(self.client_config()?)?;
        Ok(quinn::ClientConfig::new(Arc::new(crypto)))
    }

    /// The node's own certificate, to recognise a connection to itself.
    pub(crate) fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    fn roots(&self) -> Result<RootCertStore, CertError> {
        let mut roots = RootCertStore::empty();
        for ca in &self.cas {
            roots.add(ca.clone())?;
        }
        Ok(roots)
    }
}

/// A certificate `issue_node` would never issue, for tests of what peers do with one.
#[cfg(test)]
pub(crate) struct TestCert {
    pub(crate) cert: rcgen::Certificate,
    key: KeyPair,
}

#[cfg(test)]
impl FleetCa {
    /// A node certificate signed by this CA with exactly `dns_names` as its subject
    /// alternative names.
    pub(crate) fn issue_test_cert(&self, dns_names: &[&str]) -> Result<TestCert, CertError> {
        let mut params = CertificateParams::default();
        for name in dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName((*name).to_owned().try_into()?));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + NODE_LIFETIME;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(TestCert { cert, key })
    }
}

#[cfg(test)]
impl NodeIdentity {
    /// An identity for `cert` that claims `name` locally, whatever the certificate says:
    /// a node the loader would refuse, to test what its peers do.
    pub(crate) fn from_test_cert(
        ca: &FleetCa,
        cert: &TestCert,
        name: NodeName,
    ) -> Result<Self, CertError> {
        let label = Path::new("test");
        Ok(NodeIdentity {
            cas: parse_certs(label, ca.cert_pem())?,
            cert: cert.cert.der().clone(),
            key: parse_key(label, &cert.key.serialize_pem())?,
            name,
        })
    }
}

/// The ring provider, chosen explicitly so nothing depends on a process-wide default
/// (and aws-lc-rs, with its cmake build, stays out).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// rcgen key pairs are not `Clone`; a round trip through DER gives a second handle.
fn clone_key(key: &KeyPair) -> Result<KeyPair, CertError> {
    let der =
        PrivateKeyDer::try_from(key.serialize_der()).map_err(|reason| CertError::Malformed {
            path: PathBuf::from(CA_KEY),
            reason: reason.to_owned(),
        })?;
    Ok(KeyPair::try_from(&der)?)
}

fn check_key_matches(
    cert_path: &Path,
    cert: CertificateDer<'static>,
    key_path: &Path,
    key: PrivateKeyDer<'static>,
) -> Result<(), CertError> {
    let provider = provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| malformed(key_path, e))?;
    match CertifiedKey::new(vec![cert], signing).keys_match() {
        Ok(()) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(CertError::KeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            })
        }
        Err(e) => Err(malformed(cert_path, e)),
    }
}

fn parse_cert(path: &Path, pem: &str) -> Result<CertificateDer<'static>, CertError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| malformed(path, format!("expected a PEM CERTIFICATE: {e}")))
}

/// Every certificate in a PEM file (a CA bundle); at least one, and nothing but
/// certificates: a key in `ca.pem` is a mistake worth refusing loudly.
fn parse_certs(path: &Path, pem: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let mut certs = Vec::new();
    for section in rustls::pki_types::pem::PemObject::pem_slice_iter(pem.as_bytes()) {
        let (kind, der) = section.map_err(|e| malformed(path, format!("bad PEM: {e}")))?;
        match kind {
            rustls::pki_types::pem::SectionKind::Certificate => {
                certs.push(CertificateDer::from(der));
            }
            other => {
                return Err(malformed(
                    path,
                    format!("holds a {other:?} section; only CA certificates belong here"),
                ));
            }
        }
    }
    if certs.is_empty() {
        return Err(malformed(path, "expected a PEM CERTIFICATE: none found"));
    }
    Ok(certs)
}

fn parse_key(path: &Path, pem: &str) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| malformed(path, format!("expected a PEM PRIVATE KEY: {e}")))
}

fn malformed(path: &Path, reason: impl fmt::Display) -> CertError {
    CertError::Malformed {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn read_text(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => CertError::Missing {
            path: path.to_owned(),
        },
        io::ErrorKind::InvalidData => malformed(path, "not UTF-8 text"),
        _ => CertError::Io {
            path: path.to_owned(),
            source,
        },
    })
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_owned(),
        source,
    })
}

/// Creates `path` (failing if it exists) and writes `contents`; secret files get
/// mode 0600 from the moment they exist, so the key is never readable by others.
fn write_new(path: &Path, contents: &str, secret: bool) -> Result<(), CertError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    if secret {
        options.mode(0o600);
    }
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::AlreadyExists => CertError::Exists {
            path: path.to_owned(),
        },
        _ => CertError::Io {
            path: path.to_owned(),
            source,
        },
    };
    let mut file = options.open(path).map_err(io_err)?;
    file.write_all(contents.as_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ca_round_trips_through_files_and_issues_verifiable_certs() {
        let dir = tempfile::tempdir().unwrap();
        let ca = FleetCa::generate("test fleet").unwrap();
        ca.save(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(CA_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = FleetCa::load(dir.path()).unwrap();
        assert_eq!(loaded.cert_pem(), ca.cert_pem());

        let node_dir = dir.path().join("node");
        loaded
            .issue_node("node-1")
            .unwrap()
            .save(&node_dir)
            .unwrap();
        let mode = fs::metadata(node_dir.join(NODE_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let ca_pem = fs::read_to_string(node_dir.join(CA_CERT)).unwrap();
        assert!(!ca_pem.contains("PRIVATE KEY"));
        let identity = NodeIdentity::load(&node_dir).unwrap();
        identity.quic_server_config().unwrap();
        identity.quic_client_config().unwrap();
    }

    #[test]
    fn save_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let ca = FleetCa::generate("fleet").unwrap();
        ca.save(dir.path()).unwrap();
        let err = ca.save(dir.path()).unwrap_err();
        assert!(
            matches!(err, CertError::Exists { ref path } if path.ends_with(CA_KEY)),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = NodeIdentity::load(dir.path()).unwrap_err();
        assert!(matches!(err, CertError::Missing { ref path } if path.ends_with(CA_CERT)));
        assert!(err.to_string().contains("ca.pem"), "{err}");

        let ca = FleetCa::generate("fleet").unwrap();
        ca.issue_node("node-1").unwrap().save(dir.path()).unwrap();
        fs::write(dir.path().join(NODE_CERT), "not pem").unwrap();
        let err = NodeIdentity::load(dir.path()).unwrap_err();
        assert!(matches!(err, CertError::Malformed { ref path, .. } if path.ends_with(NODE_CERT)));

        // A key issued to another node does not belong to this certificate.
        let other = tempfile::tempdir().unwrap();
        ca.issue_node("node-2").unwrap().save(other.path()).unwrap();
        ca.issue_node("node-1").unwrap().identity().unwrap();
        fs::copy(other.path().join(NODE_CERT), dir.path().join(NODE_CERT)).unwrap();
        NodeIdentity::load(other.path()).unwrap();
        let err = NodeIdentity::load(dir.path()).unwrap_err();
        assert!(matches!(err, CertError::KeyMismatch { .. }), "{err}");
    }

    #[test]
    fn ca_pem_holds_ca_certificates_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (
            FleetCa::generate("old").unwrap(),
            FleetCa::generate("new").unwrap(),
        );
        old.issue_node("node-1").unwrap().save(dir.path()).unwrap();
        let ca_path = dir.path().join(CA_CERT);
        fs::write(&ca_path, format!("{}{}", old.cert_pem(), new.cert_pem())).unwrap();
        assert_eq!(NodeIdentity::load(dir.path()).unwrap().cas.len(), 2);
        // A CA key copied in by mistake is refused, not silently ignored.
        let key = fs::read_to_string(dir.path().join(NODE_KEY)).unwrap();
        fs::write(&ca_path, format!("{}{key}", old.cert_pem())).unwrap();
        let err = NodeIdentity::load(dir.path()).unwrap_err();
        assert!(matches!(err, CertError::Malformed { ref path, .. } if path.ends_with(CA_CERT)));
        assert!(err.to_string().contains("only CA certificates"), "{err}");
        fs::write(&ca_path, "").unwrap();
        let err = NodeIdentity::load(dir.path()).unwrap_err();
        assert!(matches!(err, CertError::Malformed { .. }), "{err}");
    }

    #[test]
    fn a_node_certificate_must_name_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let ca = FleetCa::generate("fleet").unwrap();
        let nameless = ca.issue_test_cert(&[FLEET_SERVER_NAME]).unwrap();
        fs::write(dir.path().join(CA_CERT), ca.cert_pem()).unwrap();
        fs::write(dir.path().join(NODE_CERT), nameless.cert.pem()).unwrap();
        fs::write(dir.path().join(NODE_KEY), nameless.key.serialize_pem()).unwrap();
        let err = NodeIdentity::load(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                CertError::NoNodeName { ref path, source: NameError::Missing }
                    if path.ends_with(NODE_CERT)
            ),
            "{err}"
        );
        // What `issue_node` writes is the canonical name, and that is what loads.
        let issued = ca.issue_node("Node-3.Fleet").unwrap().identity().unwrap();
        assert_eq!(issued.name().as_str(), "node-3.fleet");
    }

    #[test]
    fn rejects_names_that_are_not_dns_names() {
        let ca = FleetCa::generate("fleet").unwrap();
        for name in ["", "has space", "127.0.0.1", "a..b", FLEET_SERVER_NAME] {
            let err = ca.issue_node(name).unwrap_err();
            assert!(
                matches!(err, CertError::InvalidName { .. }),
                "{name:?}: {err}"
            );
        }
    }
}
