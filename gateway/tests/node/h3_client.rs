//! An HTTP/3 client for the tests: quinn + h3 + h3-quinn, trusting a test CA.
//! (A curl built with HTTP/3 is rare; this is the client the tests rely on.)

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Request, Response};

use crate::support::Reply;
use crate::tls_support::TestCa;

/// The server name the test certificates carry.
pub const NAME: &str = "localhost";

pub type SendRequest = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;
pub type Stream = h3::client::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// One HTTP/3 connection.
pub struct H3Client {
    pub endpoint: quinn::Endpoint,
    pub conn: quinn::Connection,
    pub addr: SocketAddr,
    send: SendRequest,
    driver: tokio::task::JoinHandle<h3::error::ConnectionError>,
}

/// A quinn client configuration from a rustls one, with an idle timeout long
/// enough that the server's always fires first.
pub fn quic_config(tls: Arc<rustls::ClientConfig>) -> quinn::ClientConfig {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("QUIC TLS config");
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(Duration::from_secs(60)).expect("idle timeout"),
    ));
    config.transport_config(Arc::new(transport));
    config
}

/// A QUIC connection to `addr` with `config` (any ALPN the config offers).
pub async fn quic_connect(
    config: quinn::ClientConfig,
    addr: SocketAddr,
    name: &str,
) -> anyhow::Result<(quinn::Endpoint, quinn::Connection)> {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(config);
    let conn = endpoint
        .connect(addr, name)?
        .await
        .context("QUIC handshake")?;
    Ok((endpoint, conn))
}

impl H3Client {
    /// Connects to the node's HTTP/3 endpoint, trusting `ca`, ALPN h3.
    pub async fn connect(ca: &TestCa, addr: SocketAddr) -> anyhow::Result<H3Client> {
        Self::connect_with(quic_config(ca.client_config(&[b"h3"])), addr, NAME).await
    }

    pub async fn connect_with(
        config: quinn::ClientConfig,
        addr: SocketAddr,
        name: &str,
    ) -> anyhow::Result<H3Client> {
        let (endpoint, conn) = quic_connect(config, addr, name).await?;
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
            .await
            .context("HTTP/3 setup")?;
        let driver =
            tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
        Ok(H3Client {
            endpoint,
            conn,
            addr,
            send,
            driver,
        })
    }

    fn uri(&self, path: &str) -> String {
        format!("https://{NAME}:{}{path}", self.addr.port())
    }

    /// Sends a request (with `body`, if any) and returns the stream with the
    /// response head read; the body is left to the caller.
    pub async fn open(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<(Response<()>, Stream)> {
        let mut request = Request::builder().method(method).uri(self.uri(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut send = self.send.clone();
        let mut stream = send
            .send_request(request.body(())?)
            .await
            .context("sending the request")?;
        // A server may answer before it has read the whole request and stop
        // the request side (RFC 9114 §4.1): the response still counts.
        let sent = async {
            if !body.is_empty() {
                stream.send_data(body).await?;
            }
            stream.finish().await
        };
        if let Err(err) = sent.await {
            eprintln!("h3 client: request side ended early: {err}");
        }
        let response = stream
            .recv_response()
            .await
            .context("reading the response head")?;
        Ok((response, stream))
    }

    /// One request, its response read whole.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<Reply> {
        let (response, mut stream) = self.open(method, path, headers, body).await?;
        let body = read_to_end(&mut stream).await?;
        let (parts, ()) = response.into_parts();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request(Method::GET, path, headers, Bytes::new())
            .await
            .unwrap_or_else(|err| panic!("h3 GET {path}: {err:#}"))
    }
}

impl Drop for H3Client {
    fn drop(&mut self) {
        self.driver.abort();
        self.conn.close(0u32.into(), b"done");
    }
}

/// Reads the rest of a response body; an error if the stream was reset.
pub async fn read_to_end(stream: &mut Stream) -> anyhow::Result<Bytes> {
    let mut body = BytesMut::new();
    while let Some(mut chunk) = stream.recv_data().await.context("reading the body")? {
        body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    Ok(body.freeze())
}

/// Reads until at least `n` bytes of the body arrived (or it ended).
pub async fn read_at_least(stream: &mut Stream, n: usize) -> anyhow::Result<BytesMut> {
    let mut body = BytesMut::new();
    while body.len() < n {
        match stream.recv_data().await.context("reading the body")? {
            Some(mut chunk) => body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining())),
            None => break,
        }
    }
    Ok(body)
}
