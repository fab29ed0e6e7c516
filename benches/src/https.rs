//! HTTPS for the benchmarks: a self-signed certificate made on the spot
//! (rcgen, ECDSA P-256) that every server under test presents, and a small
//! blocking client (hyper over rustls, HTTP/1.1 or HTTP/2 by ALPN, checked;
//! HTTP/3 over QUIC with [`crate::h3load::client`]) for correctness checks,
//! not for timing.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};

use crate::h3load::client;

/// The name in the certificate and in the client's SNI.
pub const SERVER_NAME: &str = "localhost";

/// An HTTP version over TLS, chosen by ALPN: HTTP/1.1 and HTTP/2 over TCP,
/// HTTP/3 over QUIC (UDP, the same port number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    Http3,
}

impl Protocol {
    /// The ALPN identifier.
    pub fn alpn(self) -> &'static str {
        match self {
            Protocol::Http1 => "http/1.1",
            Protocol::Http2 => "h2",
            Protocol::Http3 => "h3",
        }
    }

    /// Short name for tables: `h1`, `h2`, `h3`.
    pub fn short(self) -> &'static str {
        match self {
            Protocol::Http1 => "h1",
            Protocol::Http2 => "h2",
            Protocol::Http3 => "h3",
        }
    }
}

/// A self-signed certificate and its key, in PEM files.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    der: Vec<u8>,
}

impl SelfSigned {
    /// An ECDSA P-256 certificate for [`SERVER_NAME`], written to
    /// `dir/cert.pem` and `dir/key.pem`.
    pub fn generate(dir: &Path) -> Result<Self> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .context("generating a P-256 key")?;
        let cert = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()])
            .context("certificate parameters")?
            .self_signed(&key)
            .context("self-signing the certificate")?;
        let cert_file = dir.join("cert.pem");
        let key_file = dir.join("key.pem");
        std::fs::write(&cert_file, cert.pem())
            .with_context(|| format!("writing {}", cert_file.display()))?;
        std::fs::write(&key_file, key.serialize_pem())
            .with_context(|| format!("writing {}", key_file.display()))?;
        Ok(Self {
            cert_file,
            key_file,
            der: cert.der().to_vec(),
        })
    }

    /// The certificate, DER.
    pub fn der(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.der.clone())
    }

    /// A client configuration that trusts only this certificate and offers
    /// only `protocol` (over TCP).
    fn client_config(&self, protocol: Protocol) -> Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.der.clone()))
            .context("trusting the certificate")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![protocol.alpn().as_bytes().to_vec()];
        Ok(Arc::new(config))
    }
}

/// What [`get`] saw of a response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_length: Option<String>,
}

/// `GET https://SERVER_NAME:port{path}` at `addr` over `protocol` (which
/// the server must accept by ALPN), trusting only `cert`; the body goes to
/// `sink`.
pub fn get(
    cert: &SelfSigned,
    addr: SocketAddr,
    protocol: Protocol,
    path: &str,
    sink: &mut dyn Write,
) -> Result<Reply> {
    let what = format!("GET https://{addr}{path} over {}", protocol.alpn());
    if protocol == Protocol::Http3 {
        return get_h3(cert, addr, path, sink).with_context(|| what);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a tokio runtime")?;
    let config = cert.client_config(protocol)?;
    runtime
        .block_on(get_async(config, addr, protocol, path, sink))
        .with_context(|| what)
}

async fn get_async(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    protocol: Protocol,
    path: &str,
    sink: &mut dyn Write,
) -> Result<Reply> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .context("connecting")?;
    let name = ServerName::try_from(SERVER_NAME).context("server name")?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .context("TLS handshake")?;
    let alpn = tls
        .get_ref()
        .1
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    ensure!(
        alpn.as_deref() == Some(protocol.alpn()),
        "the server chose ALPN {alpn:?}, not {}",
        protocol.alpn()
    );
    let io = TokioIo::new(tls);
    let request = Request::get(path)
        .header("host", SERVER_NAME)
        .body(Empty::<Bytes>::new())
        .context("building the request")?;
    let response = match protocol {
        Protocol::Http1 => {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            send.send_request(request).await?
        }
        Protocol::Http3 => bail!("HTTP/3 is not over TCP"),
        Protocol::Http2 => {
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            // HTTP/2 requests name the authority in the URI.
            let (mut parts, body) = request.into_parts();
            parts.uri = format!("https://{SERVER_NAME}{path}")
                .parse()
                .context("request URI")?;
            parts.headers.remove("host");
            send.send_request(Request::from_parts(parts, body)).await?
        }
    };
    let reply = Reply {
        status: response.status().as_u16(),
        content_length: response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("reading the body")?;
        if let Some(data) = frame.data_ref() {
            sink.write_all(data).context("writing the body")?;
        }
    }
    Ok(reply)
}

/// [`get`] over HTTP/3, offering the cipher suite the load generator does.
fn get_h3(cert: &SelfSigned, addr: SocketAddr, path: &str, sink: &mut dyn Write) -> Result<Reply> {
    let config = client::config(cert.der(), client::Suite::Aes128Gcm)?;
    let uri: http::Uri = format!("https://{SERVER_NAME}:{}{path}", addr.port())
        .parse()
        .context("request URI")?;
    let head = client::fetch_blocking(config, addr, SERVER_NAME, &uri, sink)?;
    Ok(Reply {
        status: head.status,
        content_length: head.content_length,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_p256_pem() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let cert = SelfSigned::generate(dir.path())?;
        let pem = std::fs::read_to_string(&cert.cert_file)?;
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let key = std::fs::read_to_string(&cert.key_file)?;
        assert!(key.contains("PRIVATE KEY"));
        // id-ecPublicKey with the prime256v1 curve OID.
        let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        assert!(cert.der.windows(p256.len()).any(|w| w == p256));
        Ok(())
    }
}
