//! The public certificates: chosen by SNI, refused at start-up when unusable
//! (exit 64 naming the key), and reloaded on SIGHUP or a file change while
//! connections carry on with the certificate they were given.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use rustls::pki_types::ServerName;
use tokio::sync::oneshot;

use crate::support::{
    Proc, TestNode, blake3_hex, eventually, metric_value, pattern, request, run_bin,
};
use crate::tls_support::{Issued, TestCa, h1_client, leaf_shown, presented_leaf, tls_connect};

const LIMIT: Duration = Duration::from_secs(30);

fn dns(name: &str) -> ServerName<'static> {
    ServerName::try_from(name.to_owned()).expect("DNS name")
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// Replaces `dest` whole (write a temp file, rename), as a deploy tool does.
fn replace(dest: &Path, contents: &[u8]) {
    let tmp = dest.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write");
    std::fs::rename(&tmp, dest).expect("rename");
}

/// Puts `issued`'s certificate and key at `cert` and `key`.
fn install(issued: &Issued, cert: &Path, key: &Path) {
    replace(cert, &std::fs::read(&issued.cert).expect("cert"));
    replace(key, &std::fs::read(&issued.key).expect("key"));
}

/// Clients get the certificate their SNI name matches (exact names, one
/// wildcard label), and the default one for any other name or none.
#[tokio::test(flavor = "multi_thread")]
async fn sni_picks_the_matching_certificate_and_the_default_otherwise() {
    let mut ca = TestCa::new();
    let default = ca.issue(&["default.test"]);
    let a = ca.issue(&["a.test"]);
    let b = ca.issue(&["*.b.test"]);
    let (cert, key) = (path_text(&default.cert), path_text(&default.key));
    let extra = format!("{},{}", path_text(&a.combined), path_text(&b.combined));
    let node = TestNode::start_with(&[
        ("FLEETCACHE_HTTP_TLS_CERT_FILE", &cert),
        ("FLEETCACHE_HTTP_TLS_KEY_FILE", &key),
        ("FLEETCACHE_HTTP_TLS_CERTIFICATES", &extra),
    ])
    .await;
    let https = node.https.expect("https");

    let cases: &[(&str, &Issued, &str)] = &[
        ("a.test", &a, "a.test"),
        ("A.TEST", &a, "a.test (names are case-insensitive)"),
        ("x.b.test", &b, "*.b.test"),
        ("default.test", &default, "default"),
        ("unknown.test", &default, "default"),
        (
            "b.test",
            &default,
            "default: a wildcard needs one more label",
        ),
        (
            "y.x.b.test",
            &default,
            "default: a wildcard matches one label only",
        ),
    ];
    let label = |der: &[u8]| {
        [("default", &default), ("a", &a), ("*.b", &b)]
            .iter()
            .find(|(_, i)| i.der == der)
            .map_or("an unknown certificate", |(l, _)| *l)
    };
    for (name, expected, why) in cases {
        let shown = leaf_shown(https, dns(name)).await;
        assert!(
            shown == expected.der,
            "SNI {name}: got {} instead of {why}",
            label(&shown)
        );
    }
    // No SNI at all: rustls sends none for an IP address.
    let shown = leaf_shown(https, ServerName::IpAddress(https.ip().into())).await;
    assert!(
        shown == default.der,
        "no SNI: got {} instead of the default",
        label(&shown)
    );
    // The certificates really serve their names: verifying clients succeed.
    for name in ["a.test", "x.b.test", "default.test"] {
        tls_connect(&ca, https, name, &[b"h2"])
            .await
            .unwrap_or_else(|err| panic!("{name}: {err}"));
    }
    assert!(
        tls_connect(&ca, https, "b.test", &[b"h2"]).await.is_err(),
        "b.test is not covered by *.b.test: a verifying client refuses"
    );
}

/// Unusable certificates stop the binary at start-up with exit code 64 and a
/// message naming the key to fix.
#[test]
fn unusable_certificates_exit_64_naming_the_field() {
    let mut ca = TestCa::new();
    let good = ca.issue(&["edge.test"]);
    let other = ca.issue(&["edge.test"]);
    let dir = tempfile::TempDir::new().unwrap();
    let data = path_text(&dir.path().join("data"));
    let file = |name: &str, contents: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path_text(&path)
    };
    let garbage = file("garbage.pem", b"this is not PEM at all\n");
    let bad_base64 = file(
        "bad-base64.pem",
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    let not_x509 = file(
        "not-x509.pem",
        b"-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n",
    );
    let empty = file("empty.pem", b"");
    let two_keys = {
        let mut both = std::fs::read(&good.key).unwrap();
        both.extend(std::fs::read(&other.key).unwrap());
        file("two-keys.pem", &both)
    };
    let (cert, key) = (path_text(&good.cert), path_text(&good.key));
    let (combined, other_key) = (path_text(&good.combined), path_text(&other.key));
    // A combined file without its key: just the chain.
    let chain_only = cert.clone();
    let missing = "/nonexistent/tls/cert.pem".to_owned();
    let good_then_garbage = format!("{combined},{garbage}");

    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [&'a str]);
    let cases: Vec<Case<'_>> = vec![
        (
            "missing cert file",
            vec![
                ("FLEETCACHE_HTTP_TLS_CERT_FILE", &missing),
                ("FLEETCACHE_HTTP_TLS_KEY_FILE", &key),
            ],
            &["http.tls.cert_file", "/nonexistent/tls/cert.pem"],
        ),
        (
            "missing key file",
            vec![
                ("FLEETCACHE_HTTP_TLS_CERT_FILE", &cert),
                ("FLEETCACHE_HTTP_TLS_KEY_FILE", &missing),
            ],
            &["http.tls.key_file"],
        ),
        (
            "garbage cert",
            vec![
                ("FLEETCACHE_HTTP_TLS_CERT_FILE", &garbage),
                ("FLEETCACHE_HTTP_TLS_KEY_FILE", &key),
            ],
            &["http.tls.cert_file", "garbage.pem"],
        ),
        (
            "bad base64 in the cert",
            vec![
                ("FLEETCACHE_HTTP_TLS_CERT_FILE", &bad_base64),
                ("FLEETCACHE_HTTP_TLS_KEY_FILE", &key),
            ],
            &["http.tls.cert_file"],
        ),
        (
            "a CERTIFICATE block that is no certificate",
            vec![
                ("FLEETCACHE_HTTP_TLS_CERT_FILE", &not_x509),
                ("FLEETCACHE_HTTP_TLS_KEY_FILE", &key),
            ],
            &["http.tls.cert_file"],
        ),
        (
            "empty cert file",
            vec![
                ("FLEETCACHE_HTTP_TLS_CERT_FILE", &empty),
                ("FLEETCACHE_HTTP_TLS_KEY_FILE", &key),
            ],
            &["http.tls.cert_file"],
        ),
        (
            "garbage key",
            vec![
                ("FLEETCACHE_HTTP_TLS_CERT_FILE", &cert),
                ("FLEETCACHE_HTTP_TLS_KEY_FILE", &garbage),
            ],
            &["http.tls.key_file"],
        ),
        (
            "a certificate where the key should be",
            vec![
                ("FLEETCACHE_HTTP_TLS_CERT_FILE", &cert),
                ("FLEETCACHE_HTTP_TLS_KEY_FILE", &cert),
            ],
            &["http.tls.key_file"],
        ),
        (
            "two keys in the key file",
            vec![
                ("FLEETCACHE_HTTP_TLS_CERT_FILE", &cert),
                ("FLEETCACHE_HTTP_TLS_KEY_FILE", &two_keys),
            ],
            &["http.tls.key_file"],
        ),
        (
            "a key that does not match the certificate",
            vec![
                ("FLEETCACHE_HTTP_TLS_CERT_FILE", &cert),
                ("FLEETCACHE_HTTP_TLS_KEY_FILE", &other_key),
            ],
            &["http.tls.key_file", "does not match"],
        ),
        (
            "a combined file without a key",
            vec![("FLEETCACHE_HTTP_TLS_CERTIFICATES", &chain_only)],
            &["http.tls.certificates[0]", "PRIVATE KEY"],
        ),
        (
            "the second combined file is garbage",
            vec![("FLEETCACHE_HTTP_TLS_CERTIFICATES", &good_then_garbage)],
            &["http.tls.certificates[1]"],
        ),
        (
            "cert_file without key_file",
            vec![("FLEETCACHE_HTTP_TLS_CERT_FILE", &cert)],
            &["http.tls.key_file"],
        ),
        (
            "key_file without cert_file",
            vec![("FLEETCACHE_HTTP_TLS_KEY_FILE", &key)],
            &["http.tls.cert_file"],
        ),
    ];
    let args = [
        "serve",
        "--data-dir",
        &data,
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
    ];
    for (what, env, needles) in &cases {
        let (code, _out, err) = run_bin(&args, env);
        assert_eq!(code, 64, "{what}: {err}");
        for needle in *needles {
            assert!(
                err.contains(needle),
                "{what}: stderr does not say {needle:?}: {err}"
            );
        }
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
    // The flags name the same keys.
    let (code, _out, err) = run_bin(
        &[&args[..], &["--tls-cert", &garbage, "--tls-key", &key]].concat(),
        &[],
    );
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("http.tls.cert_file"), "{err}");
}

/// Starts a download of `path` over `conn` (HTTP/2 or HTTP/1.1 over TLS):
/// reads its first MiB, says so on `started`, waits for `go`, then reads the
/// rest and returns its BLAKE3 hash, the status and the leaf the connection
/// was shown.
async fn gated_download(
    ca: &TestCa,
    addr: SocketAddr,
    path: String,
    h2: bool,
    started: oneshot::Sender<()>,
    go: oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<(StatusCode, String, u64, Vec<u8>)> {
    let uri = format!("https://edge.test:{}{path}", addr.port());
    let request = || {
        Request::get(&uri)
            .body(Empty::<Bytes>::new())
            .expect("request")
    };
    let (response, leaf) = if h2 {
        let tls = tls_connect(ca, addr, "edge.test", &[b"h2"])
            .await
            .expect("handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let leaf = tls.get_ref().1.peer_certificates().expect("certs")[0].to_vec();
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .expect("h2 handshake");
        tokio::spawn(conn);
        let response = send.send_request(request()).await.expect("response");
        (response, leaf)
    } else {
        let (mut send, leaf) = h1_client(ca, addr, "edge.test").await;
        let response = send.send_request(request()).await.expect("response");
        (response, leaf)
    };
    tokio::spawn(async move {
        let status = response.status();
        let mut body = response.into_body();
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        let mut started = Some(started);
        let mut go = Some(go);
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("body");
            if let Some(data) = frame.data_ref() {
                hasher.update(data);
                len += data.len() as u64;
            }
            if len >= 1 << 20
                && let Some(started) = started.take()
            {
                let _ = started.send(());
                go.take().expect("gate").await.expect("go");
            }
        }
        (status, hasher.finalize().to_hex().to_string(), len, leaf)
    })
}

async fn proc_metric(proc: &Proc, sample: &str) -> f64 {
    let reply = request(
        &crate::support::client(),
        Method::GET,
        &format!("http://{}/metrics", proc.admin),
        &[],
        Bytes::new(),
    )
    .await;
    metric_value(&String::from_utf8_lossy(&reply.body), sample).unwrap_or(0.0)
}

fn sighup(proc: &Proc) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &proc.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// SIGHUP swaps in new certificate files for new connections while
/// downloads over HTTP/2 and HTTP/1.1 carry on with the old one to their
/// last byte; files that fail to load keep the current certificate.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_certificates_while_downloads_run() {
    let mut ca = TestCa::new();
    let first = ca.issue(&["edge.test"]);
    let second = ca.issue(&["edge.test"]);
    let live_cert = ca.dir.path().join("live.pem");
    let live_key = ca.dir.path().join("live.key");
    install(&first, &live_cert, &live_key);
    let data_dir = tempfile::TempDir::new().unwrap();
    let (cert, key) = (path_text(&live_cert), path_text(&live_key));
    let proc = Proc::serve(
        data_dir.path(),
        &[
            ("FLEETCACHE_HTTP_TLS_CERT_FILE", &cert),
            ("FLEETCACHE_HTTP_TLS_KEY_FILE", &key),
            // Only SIGHUP reloads here.
            ("FLEETCACHE_HTTP_TLS_RELOAD_INTERVAL", "0s"),
        ],
    );
    let https = proc.https.expect("https");
    let object = Bytes::from(pattern(64 << 20, 9));
    let hash = blake3_hex(&object);
    let ingest = request(
        &crate::support::client(),
        Method::POST,
        &format!("http://{}/blobs", proc.admin),
        &[],
        object.clone(),
    )
    .await;
    assert!(ingest.status.is_success(), "{ingest:?}");
    assert_eq!(presented_leaf(&ca, https, "edge.test").await, first.der);

    let path = format!("/blake3/{hash}");
    let mut gates = Vec::new();
    let mut downloads = Vec::new();
    for h2 in [true, false] {
        let (started_tx, started_rx) = oneshot::channel();
        let (go_tx, go_rx) = oneshot::channel();
        downloads.push((
            h2,
            gated_download(&ca, https, path.clone(), h2, started_tx, go_rx).await,
        ));
        tokio::time::timeout(LIMIT, started_rx)
            .await
            .expect("download started")
            .expect("started");
        gates.push(go_tx);
    }

    install(&second, &live_cert, &live_key);
    sighup(&proc);
    eventually("the reload counted", LIMIT, async || {
        proc_metric(&proc, "fleetcache_tls_reloads_total{result=\"ok\"}").await == 1.0
    })
    .await;
    assert_eq!(
        presented_leaf(&ca, https, "edge.test").await,
        second.der,
        "a new connection gets the new certificate"
    );
    for gate in gates {
        gate.send(()).expect("download waiting");
    }
    for (h2, download) in downloads {
        let (status, got, len, leaf) = tokio::time::timeout(LIMIT * 4, download)
            .await
            .expect("download finished")
            .expect("download task");
        let what = if h2 { "HTTP/2" } else { "HTTP/1.1" };
        assert_eq!(status, StatusCode::OK, "{what}");
        assert_eq!(len, object.len() as u64, "{what}");
        assert_eq!(got, hash, "{what}: the bytes");
        assert_eq!(
            leaf, first.der,
            "{what}: the connection kept its certificate"
        );
    }

    // A broken file: the reload fails, the current certificate stays.
    std::fs::write(&live_cert, b"-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    sighup(&proc);
    eventually("the failed reload counted", LIMIT, async || {
        proc_metric(&proc, "fleetcache_tls_reloads_total{result=\"error\"}").await == 1.0
    })
    .await;
    eventually("the failure logged", LIMIT, async || {
        proc.logged("keeping the current certificates")
    })
    .await;
    assert!(proc.logged("http.tls.cert_file"), "the log names the field");
    assert_eq!(presented_leaf(&ca, https, "edge.test").await, second.der);
    assert_eq!(
        proc_metric(&proc, "fleetcache_tls_reloads_total{result=\"ok\"}").await,
        1.0
    );
    assert_eq!(proc.terminate(), Some(0));
}

/// A node without HTTPS takes SIGHUP in its stride: logged, still serving.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_without_tls_leaves_the_node_running() {
    let data_dir = tempfile::TempDir::new().unwrap();
    let mut proc = Proc::serve(data_dir.path(), &[]);
    assert!(proc.https.is_none());
    sighup(&proc);
    eventually("SIGHUP handled", LIMIT, async || {
        proc.logged("SIGHUP: keeping the current certificates")
    })
    .await;
    assert!(proc.child.try_wait().unwrap().is_none(), "still running");
    let health = request(
        &crate::support::client(),
        Method::GET,
        &format!("http://{}/healthz", proc.admin),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(health.status, StatusCode::OK);
    let missing = request(
        &crate::support::client(),
        Method::GET,
        &format!("http://{}/blake3/{}", proc.public, "00".repeat(32)),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(proc.terminate(), Some(0));
}

/// With `reload_interval`, rewritten files are picked up without a signal:
/// the default certificate and an SNI one alike.
#[tokio::test(flavor = "multi_thread")]
async fn changed_files_are_reloaded_without_a_signal() {
    let mut ca = TestCa::new();
    let first = ca.issue(&["edge.test"]);
    let named = ca.issue(&["named.test"]);
    let live_cert = ca.dir.path().join("live.pem");
    let live_key = ca.dir.path().join("live.key");
    let live_named = ca.dir.path().join("named-live.pem");
    install(&first, &live_cert, &live_key);
    replace(&live_named, &std::fs::read(&named.combined).unwrap());
    let (cert, key, combined) = (
        path_text(&live_cert),
        path_text(&live_key),
        path_text(&live_named),
    );
    let node = TestNode::start_with(&[
        ("FLEETCACHE_HTTP_TLS_CERT_FILE", &cert),
        ("FLEETCACHE_HTTP_TLS_KEY_FILE", &key),
        ("FLEETCACHE_HTTP_TLS_CERTIFICATES", &combined),
        ("FLEETCACHE_HTTP_TLS_RELOAD_INTERVAL", "200ms"),
    ])
    .await;
    let https = node.https.expect("https");
    assert_eq!(leaf_shown(https, dns("edge.test")).await, first.der);
    assert_eq!(leaf_shown(https, dns("named.test")).await, named.der);

    let third = ca.issue(&["edge.test"]);
    let renamed = ca.issue(&["named.test"]);
    install(&third, &live_cert, &live_key);
    replace(&live_named, &std::fs::read(&renamed.combined).unwrap());
    eventually("the new certificates are shown", LIMIT, async || {
        leaf_shown(https, dns("edge.test")).await == third.der
            && leaf_shown(https, dns("named.test")).await == renamed.der
    })
    .await;
    assert!(
        node.metric("fleetcache_tls_reloads_total{result=\"ok\"}")
            .await
            >= 1.0
    );
    let no_sni = leaf_shown(
        https,
        ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into()),
    )
    .await;
    assert_eq!(no_sni, third.der);
}
