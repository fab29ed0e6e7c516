//! The HTTP/3 client under the load generator and the HTTPS checks: quinn +
//! h3 + h3-quinn, trusting one certificate, offering ALPN h3 and one TLS 1.3
//! cipher suite (so the suite in use is known without asking the server).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bytes::{Buf, Bytes};
use rustls::pki_types::CertificateDer;

/// The one ALPN protocol offered.
pub const ALPN: &str = "h3";

/// How long a QUIC handshake may take (nothing listening on UDP looks like
/// silence, not a refusal).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The request side of an HTTP/3 connection; clones share the connection.
pub type SendRequest = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// A TLS 1.3 cipher suite the client may offer (QUIC has no TLS 1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// `TLS_AES_128_GCM_SHA256`: first in h2load's (nghttp2's) TLS 1.3
    /// list, so what h2load negotiates with servers that follow the
    /// client's order (rustls's default).
    Aes128Gcm,
    /// `TLS_AES_256_GCM_SHA384`.
    Aes256Gcm,
    /// `TLS_CHACHA20_POLY1305_SHA256`.
    Chacha20Poly1305,
}

impl Suite {
    /// The IANA name, as OpenSSL and h2load print it.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Aes256Gcm => "TLS_AES_256_GCM_SHA384",
            Suite::Aes128Gcm => "TLS_AES_128_GCM_SHA256",
            Suite::Chacha20Poly1305 => "TLS_CHACHA20_POLY1305_SHA256",
        }
    }

    fn rustls(self) -> rustls::SupportedCipherSuite {
        use rustls::crypto::ring::cipher_suite as cs;
        match self {
            Suite::Aes256Gcm => cs::TLS13_AES_256_GCM_SHA384,
            Suite::Aes128Gcm => cs::TLS13_AES_128_GCM_SHA256,
            Suite::Chacha20Poly1305 => cs::TLS13_CHACHA20_POLY1305_SHA256,
        }
    }
}

/// What the handshake agreed on, h2load-style: `TLSv1.3 <suite> h3`.
pub fn negotiated(suite: Suite) -> String {
    format!("TLSv1.3 {} {ALPN}", suite.name())
}

/// A quinn client configuration that trusts only `cert` (DER), offers ALPN
/// h3 and only `suite`, and has receive windows large enough that the
/// client never holds the server back (the server's own send window is the
/// limit, as h2load's 1 GiB HTTP/2 windows leave it to the server).
pub fn config(cert: CertificateDer<'static>, suite: Suite) -> Result<quinn::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).context("trusting the certificate")?;
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: vec![suite.rustls()],
        ..rustls::crypto::ring::default_provider()
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.as_bytes().to_vec()];
    // QUIC's Initial packets are always protected with AES-128-GCM, whatever
    // suite the handshake picks for the rest.
    let initial = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .and_then(|suite| suite.quic_suite())
        .context("no QUIC initial suite in ring")?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::with_initial(Arc::new(tls), initial)
        .context("QUIC TLS configuration")?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(Duration::from_secs(60)).context("idle timeout")?,
        ))
        .stream_receive_window(quinn::VarInt::from_u32(64 << 20))
        .receive_window(quinn::VarInt::from_u32(256 << 20));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// One HTTP/3 connection: the QUIC connection, its request handle, and
/// the task that drives h3's control streams.
pub struct Connection {
    pub quic: quinn::Connection,
    pub send: SendRequest,
    driver: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote", &self.quic.remote_address())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects through `endpoint` (whose default client config is used)
    /// to `addr`, naming `server_name`; fails unless the server took h3.
    pub async fn open(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        server_name: &str,
    ) -> Result<Self> {
        let connecting = endpoint
            .connect(addr, server_name)
            .context("starting the QUIC handshake")?;
        let quic = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting)
            .await
            .map_err(|_| {
                anyhow::anyhow!("no QUIC handshake with {addr} within {HANDSHAKE_TIMEOUT:?}")
            })?
            .context("QUIC handshake")?;
        let alpn = quic
            .handshake_data()
            .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|data| data.protocol);
        ensure!(
            alpn.as_deref() == Some(ALPN.as_bytes()),
            "the server chose ALPN {:?}, not {ALPN}",
            alpn.map(|p| String::from_utf8_lossy(&p).into_owned())
        );
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(quic.clone()))
            .await
            .context("HTTP/3 connection setup")?;
        let driver = tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        Ok(Self { quic, send, driver })
    }

    /// Closes the connection (H3_NO_ERROR).
    pub fn close(&self) {
        self.driver.abort();
        self.quic.close(quinn::VarInt::from_u32(0x100), b"done");
    }
}

/// What a GET's response head said.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub content_length: Option<String>,
}

/// `GET uri` on `send`: each chunk of the body goes to `on_data` as it
/// arrives (no copy); returns the head.
pub async fn get(
    send: &mut SendRequest,
    uri: &http::Uri,
    mut on_data: impl FnMut(&[u8]) -> Result<()>,
) -> Result<Head> {
    let request = http::Request::get(uri.clone())
        .body(())
        .context("building the request")?;
    let mut stream = send
        .send_request(request)
        .await
        .context("sending the request")?;
    stream.finish().await.context("ending the request")?;
    let response = stream
        .recv_response()
        .await
        .context("reading the response head")?;
    let head = Head {
        status: response.status().as_u16(),
        content_length: response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    while let Some(mut chunk) = stream.recv_data().await.context("reading the body")? {
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            on_data(part)?;
            chunk.advance(n);
        }
    }
    Ok(head)
}

/// `GET uri` with the body counted into `received` as it arrives; fails
/// unless the status is 200 and both Content-Length and the body are
/// `length` bytes.
pub async fn get_checked(
    send: &mut SendRequest,
    uri: &http::Uri,
    length: u64,
    received: &mut u64,
) -> Result<()> {
    let mut body = 0u64;
    let head = get(send, uri, |data| {
        body += data.len() as u64;
        *received += data.len() as u64;
        Ok(())
    })
    .await?;
    if head.status != 200 {
        bail!("status {}, expected 200", head.status);
    }
    let expected = length.to_string();
    ensure!(
        head.content_length.as_deref() == Some(expected.as_str()),
        "Content-Length {:?}, expected {length}",
        head.content_length
    );
    ensure!(body == length, "body of {body} bytes, expected {length}");
    Ok(())
}

/// One blocking GET over HTTP/3 (for checks, not timing): the body goes to
/// `sink`.
pub fn fetch_blocking(
    config: quinn::ClientConfig,
    addr: SocketAddr,
    server_name: &str,
    uri: &http::Uri,
    sink: &mut dyn Write,
) -> Result<Head> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a tokio runtime")?;
    runtime.block_on(async {
        let (endpoint, _) = endpoint(addr, config)?;
        let mut conn = Connection::open(&endpoint, addr, server_name).await?;
        let head = get(&mut conn.send, uri, |data| {
            sink.write_all(data).context("writing the body")
        })
        .await;
        conn.close();
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        head
    })
}

/// The receive buffer asked for each client UDP socket. The kernel caps it
/// at `net.core.rmem_max` (and reports twice what it grants); its default,
/// about 208 KiB, overflows when a server sends a window's worth of
/// packets at once, and every datagram dropped there costs a QUIC
/// retransmission and a congestion-window cut that the server is then
/// blamed for.
pub const RECV_BUFFER: usize = 16 << 20;

/// A client endpoint on its own UDP socket near `server` (loopback for a
/// loopback server), with a receive buffer as large as the kernel allows
/// up to [`RECV_BUFFER`]; returns it with the buffer size granted.
pub fn endpoint(
    server: SocketAddr,
    config: quinn::ClientConfig,
) -> Result<(quinn::Endpoint, usize)> {
    let local = unspecified_like(server);
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(local),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .context("creating a UDP socket")?;
    socket
        .set_recv_buffer_size(RECV_BUFFER)
        .context("setting SO_RCVBUF")?;
    let granted = socket.recv_buffer_size().context("reading SO_RCVBUF")?;
    socket
        .bind(&local.into())
        .with_context(|| format!("binding UDP {local}"))?;
    socket.set_nonblocking(true).context("O_NONBLOCK")?;
    let runtime = quinn::default_runtime().context("no async runtime for quinn")?;
    let mut endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket.into(),
        runtime,
    )
    .context("starting a quinn endpoint")?;
    endpoint.set_default_client_config(config);
    Ok((endpoint, granted))
}

/// Port 0 on the loopback (or any) address of `addr`'s family.
pub fn unspecified_like(addr: SocketAddr) -> SocketAddr {
    let ip: std::net::IpAddr = match (addr.ip().is_loopback(), addr) {
        (true, SocketAddr::V4(_)) => std::net::Ipv4Addr::LOCALHOST.into(),
        (true, SocketAddr::V6(_)) => std::net::Ipv6Addr::LOCALHOST.into(),
        (false, SocketAddr::V4(_)) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        (false, SocketAddr::V6(_)) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    SocketAddr::new(ip, 0)
}
