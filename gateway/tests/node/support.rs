//! Test harness: real nodes on 127.0.0.1:0 with real stores in temp dirs,
//! plain HTTP clients, and helpers to run the `fleetcache` binary.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fleetcache_config::Sources;
use fleetcache_gateway::Node;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tempfile::TempDir;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A response, fully read.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl std::fmt::Debug for Reply {
    /// Status, headers and the start of the body: enough to see what went
    /// wrong without flooding the log with a large body.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = &self.body[..self.body.len().min(200)];
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("body_start", &String::from_utf8_lossy(shown))
            .finish()
    }
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

/// A node running in this process.
pub struct TestNode {
    node: Option<Node>,
    pub data: TempDir,
    /// Plaintext HTTP; the HTTPS address when plaintext is off.
    pub public: SocketAddr,
    /// HTTPS (TCP) and HTTP/3 (UDP), when the node has a certificate.
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
    /// The QUIC address, for nodes in a fleet.
    pub swarm: Option<SocketAddr>,
    pub client: HttpClient,
}

/// A fleet CA in a temp dir, issuing node certificate directories.
pub struct Fleet {
    pub dir: TempDir,
    ca: fleetcache_swarm::FleetCa,
    issued: usize,
}

impl Fleet {
    pub fn new() -> Fleet {
        let dir = TempDir::new().expect("tempdir");
        let ca = fleetcache_swarm::FleetCa::generate("test fleet").expect("ca");
        ca.save(&dir.path().join("ca")).expect("save ca");
        Fleet { dir, ca, issued: 0 }
    }

    /// A fresh node certificate directory (ca.pem, node.pem, node.key).
    pub fn cert_dir(&mut self) -> PathBuf {
        self.issued += 1;
        let name = format!("node-{}", self.issued);
        let dir = self.dir.path().join(&name);
        self.ca
            .issue_node(&name)
            .expect("issue")
            .save(&dir)
            .expect("save node cert");
        dir
    }

    pub fn identity(&mut self) -> fleetcache_swarm::NodeIdentity {
        fleetcache_swarm::NodeIdentity::load(&self.cert_dir()).expect("identity")
    }

    /// FLEETCACHE_* settings for a fleet member joining `peers`, with timeouts short
    /// enough for tests.
    pub fn env(&mut self, peers: &[SocketAddr]) -> Vec<(String, String)> {
        let peers: Vec<String> = peers.iter().map(ToString::to_string).collect();
        vec![
            (
                "FLEETCACHE_SWARM_CERT_DIR".into(),
                self.cert_dir().display().to_string(),
            ),
            ("FLEETCACHE_SWARM_LISTEN".into(), "127.0.0.1:0".into()),
            ("FLEETCACHE_SWARM_PEERS".into(), peers.join(",")),
            ("FLEETCACHE_SWARM_PEER_TIMEOUT".into(), "3s".into()),
            ("FLEETCACHE_SWARM_PING_INTERVAL".into(), "100ms".into()),
        ]
    }
}

impl TestNode {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts a node with extra settings given as FLEETCACHE_* env pairs.
    pub async fn start_with(env: &[(&str, &str)]) -> Self {
        let data = TempDir::new().expect("tempdir");
        Self::start_in(data, env).await
    }

    /// Starts a fleet member that joins `peers` (QUIC addresses).
    pub async fn start_in_fleet(fleet: &mut Fleet, peers: &[SocketAddr]) -> Self {
        Self::start_in_fleet_with(fleet, peers, &[]).await
    }

    pub async fn start_in_fleet_with(
        fleet: &mut Fleet,
        peers: &[SocketAddr],
        extra: &[(&str, &str)],
    ) -> Self {
        let env = fleet.env(peers);
        let mut pairs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pairs.extend_from_slice(extra);
        let node = Self::start_with(&pairs).await;
        assert!(node.swarm.is_some(), "fleet member without a swarm");
        node
    }

    /// Waits until no fill is running: a client can read a fill's last bytes a
    /// moment before the fill commits them, and tests that then expect a hit
    /// wait for the commit.
    pub async fn settle(&self) {
        eventually("fills finish", Duration::from_secs(10), async || {
            self.metric("fleetcache_fills_active").await == 0.0
        })
        .await;
    }

    /// Waits until `/peers` shows `n` peers up.
    pub async fn wait_peers_up(&self, n: usize) {
        eventually("peers up", Duration::from_secs(15), async || {
            self.peers_up().await >= n
        })
        .await;
    }

    pub async fn peers_up(&self) -> usize {
        let peers = self.admin(Method::GET, "/peers").await.json();
        peers["peers"]
            .as_array()
            .map_or(0, |p| p.iter().filter(|p| p["state"] == "up").count())
    }

    /// The value of a metric sample, 0 if absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        metric_value(&self.metrics().await, sample).unwrap_or(0.0)
    }

    /// Starts a node with a config file plus FLEETCACHE_* settings.
    pub async fn start_with_file(file: &Path, env: &[(&str, &str)]) -> Self {
        let data = TempDir::new().expect("tempdir");
        let config = config_with(data.path(), Some(file), env).expect("valid test config");
        Self::from_config(data, &config).await
    }

    /// Starts a node on an existing data dir (restart tests).
    pub async fn start_in(data: TempDir, env: &[(&str, &str)]) -> Self {
        let config = test_config(data.path(), env).expect("valid test config");
        Self::from_config(data, &config).await
    }

    async fn from_config(data: TempDir, config: &fleetcache_config::Config) -> Self {
        let node = Node::start(config).await.expect("node starts");
        TestNode {
            public: node
                .public_addr()
                .or(node.https_addr())
                .expect("a public listener"),
            https: node.https_addr(),
            admin: node.admin_addr(),
            swarm: node.swarm_addr(),
            node: Some(node),
            data,
            client: client(),
        }
    }

    /// Shuts down and hands back the data dir.
    pub async fn stop(mut self) -> TempDir {
        if let Some(node) = self.node.take() {
            assert!(
                node.shutdown().await,
                "node drained within its grace period"
            );
        }
        self.data
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, &self.url(path), &[], Bytes::new())
            .await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request(Method::GET, &self.url(path), headers, Bytes::new())
            .await
    }

    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        request(&self.client, method, url, headers, body).await
    }

    /// A body-less request to the admin listener.
    pub async fn admin(&self, method: Method, path: &str) -> Reply {
        self.request(method, &self.admin_url(path), &[], Bytes::new())
            .await
    }

    /// `GET /stats` as JSON.
    pub async fn stats(&self) -> serde_json::Value {
        self.admin(Method::GET, "/stats").await.json()
    }

    /// Ingests through the admin API; returns the hash.
    pub async fn put(&self, data: impl Into<Bytes>) -> String {
        let reply = self
            .request(Method::POST, &self.admin_url("/blobs"), &[], data.into())
            .await;
        assert!(
            reply.status == StatusCode::CREATED || reply.status == StatusCode::OK,
            "ingest failed: {reply:?}"
        );
        reply.json()["hash"].as_str().expect("hash").to_owned()
    }

    pub async fn metrics(&self) -> String {
        let reply = self
            .request(Method::GET, &self.admin_url("/metrics"), &[], Bytes::new())
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        String::from_utf8(reply.body.to_vec()).expect("utf-8 metrics")
    }
}

pub fn test_config(
    data: &Path,
    env: &[(&str, &str)],
) -> Result<fleetcache_config::Config, fleetcache_config::ConfigError> {
    config_with(data, None, env)
}

pub fn config_with(
    data: &Path,
    file: Option<&Path>,
    env: &[(&str, &str)],
) -> Result<fleetcache_config::Config, fleetcache_config::ConfigError> {
    fleetcache_config::load(Sources {
        file,
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        flags: vec![
            ("http.listen", "127.0.0.1:0".to_owned()),
            ("admin.listen", "127.0.0.1:0".to_owned()),
            ("http.tls.listen", "127.0.0.1:0".to_owned()),
            ("store.data_dir", data.display().to_string()),
        ],
    })
}

pub async fn request(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = client
        .request(builder.body(Full::new(body)).expect("request"))
        .await
        .unwrap_or_else(|err| panic!("{url}: {err:?}"));
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|err| panic!("{url}: reading the body: {err:?}"))
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// The node names `names` in the fleet's order for the http URL `path` on `host`:
/// the URL's owner first (rendezvous over the URL key `path SP host SP http`).
pub fn url_owners(path: &str, host: &str, names: &[&str]) -> Vec<String> {
    let key = format!("{path} {host} http");
    let mut order: Vec<fleetcache_swarm::NodeName> = names
        .iter()
        .map(|n| n.parse().expect("node name"))
        .collect();
    fleetcache_swarm::rendezvous_rank(key.as_bytes(), &mut order);
    order.iter().map(ToString::to_string).collect()
}

/// The node name of the node whose admin API is at `admin`, from its `/peers`.
pub async fn name_at(admin: SocketAddr) -> String {
    let reply = request(
        &client(),
        Method::GET,
        &format!("http://{admin}/peers"),
        &[],
        Bytes::new(),
    )
    .await;
    reply.json()["name"]
        .as_str()
        .expect("a fleet node has a name")
        .to_owned()
}

/// Sends raw bytes and reads until the server closes or `timeout` passes.
pub fn raw_exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(timeout)).expect("timeout");
    // The server may close before reading everything (e.g. after 431).
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u64)
                .wrapping_mul(2654435761)
                .wrapping_add(u64::from(seed)) as u8
                ^ ((i >> 13) as u8)
        })
        .collect()
}

pub fn blake3_hex(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// Polls `f` until it returns true or the deadline passes.
pub async fn eventually(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads a metric sample's value from Prometheus text, e.g.
/// `metric_value(text, "fleetcache_store_objects")`.
pub fn metric_value(text: &str, sample: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == sample).then(|| value.parse().ok())?
    })
}

/// A `fleetcache` child process.
pub struct Proc {
    pub child: Child,
    /// Plaintext HTTP; the HTTPS address when plaintext is off.
    pub public: SocketAddr,
    /// HTTPS (TCP) and HTTP/3 (UDP), when the node has a certificate.
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
    /// The QUIC address, when started with fleet certificates.
    pub swarm: Option<SocketAddr>,
    /// Every line the process has logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fleetcache"))
}

impl Proc {
    /// Starts `fleetcache serve` on `data` with loopback port-0 listeners and
    /// waits for its start-up log line to learn the addresses.
    pub fn serve(data: &Path, env: &[(&str, &str)]) -> Proc {
        Self::serve_via(
            Command::new(bin()),
            "127.0.0.1:0",
            "127.0.0.1:0",
            data,
            &[],
            env,
        )
    }

    /// `fleetcache serve` on loopback port-0 listeners with extra flags.
    pub fn serve_with_flags(data: &Path, flags: &[&str], env: &[(&str, &str)]) -> Proc {
        Self::serve_via(
            Command::new(bin()),
            "127.0.0.1:0",
            "127.0.0.1:0",
            data,
            flags,
            env,
        )
    }

    /// Starts `fleetcache serve` through `launcher` (the binary itself, or a command
    /// such as `ip netns exec NS` that execs it) with the given listeners.
    pub fn serve_via(
        mut cmd: Command,
        listen: &str,
        admin_listen: &str,
        data: &Path,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Proc {
        // HTTPS on the public listener's address, any port (used only when a
        // test gives the node a certificate).
        let mut tls_listen: SocketAddr = listen.parse().expect("listen address");
        tls_listen.set_port(0);
        cmd.args([
            "serve",
            "--listen",
            listen,
            "--admin-listen",
            admin_listen,
            "--tls-listen",
            &tls_listen.to_string(),
            "--data-dir",
        ])
        .arg(data)
        .args(flags)
        .env("FLEETCACHE_LOG_FORMAT", "json")
        .env("FLEETCACHE_LOG_LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn fleetcache");
        let started = Instant::now();
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut sent = false;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line.clone());
                if !sent && line.contains("fleetcache node started") {
                    let _ = tx.send(line.clone());
                    sent = true;
                }
                if std::env::var_os("TEST_CHILD_LOGS").is_some() {
                    eprintln!("[child] {line}");
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "fleetcache did not start within {:?}: {:?}",
                    started.elapsed(),
                    child.try_wait()
                )
            });
        let json: serde_json::Value = serde_json::from_str(&line).expect("json log line");
        let field = |name: &str| -> Option<SocketAddr> {
            json["fields"][name].as_str().and_then(|a| a.parse().ok())
        };
        let https = field("https_addr");
        Proc {
            public: field("public_addr")
                .or(https)
                .unwrap_or_else(|| panic!("no public_addr in {line}")),
            https,
            admin: field("admin_addr").unwrap_or_else(|| panic!("no admin_addr in {line}")),
            swarm: json["fields"]["swarm_addr"]
                .as_str()
                .and_then(|a| a.parse().ok()),
            child,
            log,
        }
    }

    /// Whether a line logged so far contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for exit; returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().ok().and_then(|s| s.code())
    }

    /// Peak resident set size in bytes (VmHWM).
    pub fn peak_rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM")
            * 1024
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion; returns (exit code, stdout, stderr).
pub fn run_bin(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run fleetcache");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Flips one bit of a file in place, behind the store's back.
pub fn flip_byte(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= 0x40;
    file.write_all_at(&byte, offset).unwrap();
    file.sync_all().unwrap();
}
