//! Certificates made in the test (rcgen) and TLS clients that really
//! negotiate: an HTTP/2 client (hyper over tokio-rustls), and curl.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// A test CA that issues server certificates into a temp dir.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub ca_pem: String,
    issued: usize,
}

/// One issued certificate's files.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Chain and key in one file, as `http.tls.certificates` takes them.
    pub combined: PathBuf,
    /// The leaf, to compare with what a client was shown.
    pub der: Vec<u8>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fleetcache test CA");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("ca cert");
        let dir = tempfile::TempDir::new().expect("tempdir");
        let ca_pem = cert.pem();
        std::fs::write(dir.path().join("ca.pem"), &ca_pem).expect("write ca");
        TestCa {
            dir,
            issuer: rcgen::Issuer::new(params, key),
            ca_pem,
            issued: 0,
        }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate for `names` (DNS names; wildcards allowed).
    pub fn issue(&mut self, names: &[&str]) -> Issued {
        self.issued += 1;
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let params = rcgen::CertificateParams::new(names).expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let base = self.dir.path().join(format!("server-{}", self.issued));
        let issued = Issued {
            cert: base.with_extension("pem"),
            key: base.with_extension("key"),
            combined: base.with_extension("both.pem"),
            der: cert.der().to_vec(),
        };
        std::fs::write(&issued.cert, cert.pem()).expect("write cert");
        std::fs::write(&issued.key, key.serialize_pem()).expect("write key");
        std::fs::write(
            &issued.combined,
            format!("{}{}", cert.pem(), key.serialize_pem()),
        )
        .expect("write combined");
        issued
    }

    /// A client configuration trusting this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        let der = CertificateDer::from_pem_slice_compat(&self.ca_pem);
        roots.add(der).expect("ca into roots");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

trait FromPem {
    fn from_pem_slice_compat(pem: &str) -> CertificateDer<'static>;
}

impl FromPem for CertificateDer<'static> {
    fn from_pem_slice_compat(pem: &str) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem")
    }
}

/// A TLS connection to `addr` asking for `name`; returns the stream.
pub async fn tls_connect(
    ca: &TestCa,
    addr: SocketAddr,
    name: &str,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(ca.client_config(alpn));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    connector.connect(name, tcp).await
}

/// The leaf certificate the node showed a client asking for `name`.
pub async fn presented_leaf(ca: &TestCa, addr: SocketAddr, name: &str) -> Vec<u8> {
    let tls = tls_connect(ca, addr, name, &[b"http/1.1"])
        .await
        .expect("handshake");
    let (_, conn) = tls.get_ref();
    conn.peer_certificates().expect("certificates")[0].to_vec()
}

/// An HTTP/2 client connection (ALPN h2, checked).
pub async fn h2_client(
    ca: &TestCa,
    addr: SocketAddr,
    name: &str,
) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let tls = tls_connect(ca, addr, name, &[b"h2"])
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    send
}

/// One HTTP/2 request, fully read.
pub async fn h2_get(
    send: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    uri: &str,
    headers: &[(&str, &str)],
) -> super::support::Reply {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send.ready().await.expect("ready");
    let response = send
        .send_request(request.body(Empty::new()).expect("request"))
        .await
        .expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    super::support::Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// What curl saw: status, negotiated HTTP version and body.
pub struct CurlReply {
    pub status: StatusCode,
    pub version: String,
    pub body: Vec<u8>,
    pub stderr: String,
}

/// `curl` over HTTPS to `name` (resolved to `addr`), trusting `ca`.
pub fn curl(ca: &Path, addr: SocketAddr, name: &str, path: &str, extra: &[&str]) -> CurlReply {
    let out_dir = tempfile::TempDir::new().expect("tempdir");
    let body_file = out_dir.path().join("body");
    let output = std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{name}:{}:{}", addr.port(), addr.ip()))
        .arg("--output")
        .arg(&body_file)
        .args(["--write-out", "%{http_code} %{http_version}"])
        .args(extra)
        .arg(format!("https://{name}:{}{path}", addr.port()))
        .output()
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let (code, version) = stdout.split_once(' ').unwrap_or(("000", ""));
    CurlReply {
        status: StatusCode::from_u16(code.parse().unwrap_or(0)).unwrap_or(StatusCode::IM_A_TEAPOT),
        version: version.trim().to_owned(),
        body: std::fs::read(&body_file).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Accepts any server certificate, checking only the handshake signatures:
/// for tests that look at which certificate the node picked, including one
/// that does not match the name asked for.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The leaf the node shows a client asking for `name` (a DNS name: sent as
/// SNI; an IP address: no SNI at all), whatever it is.
pub async fn leaf_shown(addr: SocketAddr, name: ServerName<'static>) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let tls = connector.connect(name, tcp).await.expect("handshake");
    let (_, conn) = tls.get_ref();
    conn.peer_certificates().expect("certificates")[0].to_vec()
}

/// An HTTP/1.1 client connection over TLS (ALPN http/1.1, checked), and the
/// leaf the server showed it.
pub async fn h1_client(
    ca: &TestCa,
    addr: SocketAddr,
    name: &str,
) -> (
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    Vec<u8>,
) {
    let tls = tls_connect(ca, addr, name, &[b"http/1.1"])
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let leaf = tls.get_ref().1.peer_certificates().expect("certificates")[0].to_vec();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .expect("http/1.1 handshake");
    tokio::spawn(conn);
    (send, leaf)
}
