//! A real origin for tests: a hyper HTTP/1.1 server on 127.0.0.1:0, scripted per
//! path, that counts and records every request it gets. Plus `RawOrigin`, a TCP
//! server that answers every connection with fixed bytes, for origins that break
//! HTTP itself.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

/// A request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Whether the request body arrived whole (false: the upload was cut).
    pub complete: bool,
    /// How many requests for this target the origin had seen before this one.
    pub n: u64,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How the origin answers one request.
#[derive(Debug)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ScriptBody,
    /// Wait this long before sending the head.
    pub delay: Option<Duration>,
}

/// A scripted response body.
#[derive(Debug)]
pub enum ScriptBody {
    /// With a Content-Length.
    Full(Bytes),
    /// Chunked (no Content-Length), sent in these pieces.
    Chunks(Vec<Bytes>),
    /// Sends `first`, then waits for `gate` before sending `rest` (chunked
    /// unless a Content-Length header is scripted).
    Gated {
        first: Bytes,
        gate: Arc<Notify>,
        rest: Bytes,
    },
    /// Sends these bytes, then dies (the connection is cut mid-body).
    Die(Bytes),
    /// Sends `first`, waits for `gate`, then dies.
    DieAfter { first: Bytes, gate: Arc<Notify> },
    /// Sends `bytes` at about `per_second` bytes per second, in 16 KiB steps.
    Paced { bytes: Bytes, per_second: u64 },
}

impl Scripted {
    pub fn ok(body: impl Into<Bytes>) -> Scripted {
        Scripted {
            status: 200,
            headers: Vec::new(),
            body: ScriptBody::Full(body.into()),
            delay: None,
        }
    }

    pub fn status(status: u16, body: impl Into<Bytes>) -> Scripted {
        Scripted {
            status,
            ..Scripted::ok(body)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Scripted {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: ScriptBody) -> Scripted {
        self.body = body;
        self
    }

    pub fn delay(mut self, delay: Duration) -> Scripted {
        self.delay = Some(delay);
        self
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Scripted + Send + Sync>;

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Handler>>,
    seen: Mutex<Vec<Seen>>,
    counts: Mutex<HashMap<String, u64>>,
    /// The accept loop and every connection, so `stop` can take them down.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

/// The scripted origin. Unscripted targets get 404.
#[derive(Clone)]
pub struct TestOrigin {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl TestOrigin {
    pub async fn start() -> TestOrigin {
        Self::start_on("127.0.0.1:0").await
    }

    /// Listens on `addr` (an address nodes in other namespaces can reach).
    pub async fn start_on(addr: &str) -> TestOrigin {
        let listener = TcpListener::bind(addr).await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let state = Arc::new(State::default());
        let serving = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = serving.clone();
                let conn_state = serving.clone();
                let conn = tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(&state, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                conn_state.tasks.lock().unwrap().push(conn.abort_handle());
            }
        });
        state.tasks.lock().unwrap().push(accept.abort_handle());
        TestOrigin { addr, state }
    }

    /// Takes the origin down: no more connections are accepted (they are
    /// refused) and open ones are dropped.
    pub fn stop(&self) {
        for task in self.state.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// `http://ADDR:PORT`, for `--origin`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Scripts `target` as a cacheable 200 (`max-age=300`) of `body` whose first
    /// fetch sends `first` bytes and then waits for the returned gate before
    /// the rest; later fetches get it whole.
    pub fn route_gated(&self, target: &str, body: Bytes, first: usize) -> Arc<Notify> {
        self.route_gated_with(target, body, first, &[("cache-control", "max-age=300")])
    }

    /// [`TestOrigin::route_gated`] with these header fields instead.
    pub fn route_gated_with(
        &self,
        target: &str,
        body: Bytes,
        first: usize,
        headers: &[(&str, &str)],
    ) -> Arc<Notify> {
        let gate = Arc::new(Notify::new());
        let held = gate.clone();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        self.route(target, move |seen| {
            let mut scripted = Scripted::ok(body.clone());
            for (name, value) in &headers {
                scripted = scripted.header(name, value);
            }
            if seen.n > 0 {
                return scripted;
            }
            scripted
                .header("content-length", &body.len().to_string())
                .body(ScriptBody::Gated {
                    first: body.slice(..first),
                    gate: held.clone(),
                    rest: body.slice(first..),
                })
        });
        gate
    }

    /// Scripts `target` (path and query) with a handler called per request.
    pub fn route(&self, target: &str, handler: impl Fn(&Seen) -> Scripted + Send + Sync + 'static) {
        self.state
            .routes
            .lock()
            .unwrap()
            .insert(target.to_owned(), Arc::new(handler));
    }

    /// Requests seen for `target`.
    pub fn hits(&self, target: &str) -> u64 {
        self.state
            .counts
            .lock()
            .unwrap()
            .get(target)
            .copied()
            .unwrap_or(0)
    }

    /// Every request seen, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The last request seen for `target`.
    pub fn last(&self, target: &str) -> Option<Seen> {
        self.seen().into_iter().rev().find(|s| s.target == target)
    }
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<ScriptedBody> {
    let (parts, body) = req.into_parts();
    let (body, complete) = match body.collect().await {
        Ok(body) => (body.to_bytes(), true),
        Err(_) => (Bytes::new(), false),
    };
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string);
    let n = {
        let mut counts = state.counts.lock().unwrap();
        let count = counts.entry(target.clone()).or_insert(0);
        *count += 1;
        *count - 1
    };
    let seen = Seen {
        method: parts.method,
        target: target.clone(),
        headers: parts.headers,
        body,
        complete,
        n,
    };
    state.seen.lock().unwrap().push(seen.clone());
    let handler = state.routes.lock().unwrap().get(&target).cloned();
    let scripted = match handler {
        Some(handler) => handler(&seen),
        None => Scripted::status(404, "no such route\n"),
    };
    if let Some(delay) = scripted.delay {
        tokio::time::sleep(delay).await;
    }
    let mut builder =
        Response::builder().status(StatusCode::from_u16(scripted.status).expect("scripted status"));
    let has_length = scripted
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-length"));
    for (name, value) in &scripted.headers {
        builder = builder.header(name, value);
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let exact = match &scripted.body {
        ScriptBody::Full(bytes) if !has_length => Some(bytes.len() as u64),
        _ => None,
    };
    tokio::spawn(async move {
        match scripted.body {
            ScriptBody::Full(bytes) => {
                let _ = tx.send(Ok(bytes)).await;
            }
            ScriptBody::Chunks(chunks) => {
                for chunk in chunks {
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
            }
            ScriptBody::Gated { first, gate, rest } => {
                if tx.send(Ok(first)).await.is_err() {
                    return;
                }
                gate.notified().await;
                let _ = tx.send(Ok(rest)).await;
            }
            ScriptBody::Die(bytes) => {
                let _ = tx.send(Ok(bytes)).await;
                let _ = tx
                    .send(Err(std::io::Error::other("scripted origin death")))
                    .await;
            }
            ScriptBody::DieAfter { first, gate } => {
                if tx.send(Ok(first)).await.is_err() {
                    return;
                }
                gate.notified().await;
                let _ = tx
                    .send(Err(std::io::Error::other("scripted origin death")))
                    .await;
            }
            ScriptBody::Paced { bytes, per_second } => {
                let step = 16 * 1024;
                let pause = Duration::from_secs_f64(step as f64 / per_second.max(1) as f64);
                let mut offset = 0;
                while offset < bytes.len() {
                    let end = (offset + step).min(bytes.len());
                    if tx.send(Ok(bytes.slice(offset..end))).await.is_err() {
                        return;
                    }
                    offset = end;
                    tokio::time::sleep(pause).await;
                }
            }
        }
    });
    builder
        .body(ScriptedBody { rx, exact })
        .expect("scripted response")
}

/// A body fed by the script task; an error frame cuts the connection.
pub struct ScriptedBody {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    exact: Option<u64>,
}

impl http_body::Body for ScriptedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|next| next.map(|r| r.map(Frame::data)))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.exact {
            Some(len) => http_body::SizeHint::with_exact(len),
            None => http_body::SizeHint::default(),
        }
    }
}

/// An origin that breaks HTTP: every connection reads the request head, then
/// gets `reply` written raw (optionally slowly, a byte at a time) and closed, or
/// held open when `hold` is set.
#[derive(Clone)]
pub struct RawOrigin {
    pub addr: SocketAddr,
    connections: Arc<Mutex<u64>>,
}

impl RawOrigin {
    pub async fn start(
        reply: impl Into<Bytes>,
        byte_delay: Option<Duration>,
        hold: bool,
    ) -> RawOrigin {
        let reply: Bytes = reply.into();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind raw origin");
        let addr = listener.local_addr().expect("raw origin addr");
        let connections = Arc::new(Mutex::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                *counter.lock().unwrap() += 1;
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    match byte_delay {
                        None => {
                            let _ = stream.write_all(&reply).await;
                        }
                        Some(delay) => {
                            for byte in reply.iter() {
                                if stream.write_all(&[*byte]).await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(delay).await;
                            }
                        }
                    }
                    if hold {
                        let _ = stream.read(&mut buf).await;
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                });
            }
        });
        RawOrigin { addr, connections }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn connections(&self) -> u64 {
        *self.connections.lock().unwrap()
    }
}

/// An https origin with a certificate for 127.0.0.1 from its own test CA;
/// answers every request with `body` and `Cache-Control: max-age=300`.
pub struct TlsOrigin {
    pub addr: SocketAddr,
    /// The CA certificate (PEM) a client must trust.
    pub ca_pem: String,
    connections: Arc<Mutex<u64>>,
}

impl TlsOrigin {
    pub async fn start(body: &'static str) -> TlsOrigin {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
        let cert = params.signed_by(&key, &issuer).expect("cert");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                *counter.lock().unwrap() += 1;
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("cache-control", "max-age=300")
                                .body(http_body_util::Full::new(Bytes::from_static(
                                    body.as_bytes(),
                                )))
                                .unwrap(),
                        )
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TlsOrigin {
            addr,
            ca_pem: ca_cert.pem(),
            connections,
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn connections(&self) -> u64 {
        *self.connections.lock().unwrap()
    }
}
