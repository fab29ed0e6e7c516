//! The real binary as a child process: kill -9 during ingest, memory while
//! streaming 1 GiB, SIGTERM draining, exit codes, the CLI, and fsck.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Method, StatusCode};
use rand::{Rng, SeedableRng};

use crate::support::*;

/// Minimal blocking HTTP/1.1 client over a raw socket, so the test controls
/// exactly how bytes flow.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
}

impl RawResponse {
    fn read(stream: TcpStream) -> std::io::Result<RawResponse> {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        Ok(RawResponse {
            status,
            headers,
            reader,
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> u64 {
        self.header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn body_string(mut self) -> String {
        let mut body = vec![0; self.content_length() as usize];
        let _ = self.reader.read_exact(&mut body);
        String::from_utf8_lossy(&body).into_owned()
    }
}

/// Streams `len` pattern bytes (generated on the fly) to POST /blobs.
fn upload_generated(admin: SocketAddr, len: u64, seed: u8) -> std::io::Result<RawResponse> {
    let mut stream = TcpStream::connect(admin)?;
    write!(
        stream,
        "POST /blobs HTTP/1.1\r\nhost: x\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
    )?;
    let mut sent = 0u64;
    let chunk = pattern(1 << 20, seed);
    while sent < len {
        let n = (len - sent).min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..n])?;
        sent += n as u64;
    }
    RawResponse::read(stream)
}

/// BLAKE3 of what `upload_generated` sends.
fn generated_hash(len: u64, seed: u8) -> String {
    let chunk = pattern(1 << 20, seed);
    let mut hasher = blake3::Hasher::new();
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(chunk.len() as u64) as usize;
        hasher.update(&chunk[..n]);
        done += n as u64;
    }
    hasher.finalize().to_hex().to_string()
}

/// GETs a hash and returns (status, hash of the body, body length).
fn download_hash(public: SocketAddr, hash: &str) -> std::io::Result<(u16, String, u64)> {
    let mut stream = TcpStream::connect(public)?;
    write!(
        stream,
        "GET /blake3/{hash} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )?;
    let mut response = RawResponse::read(stream)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let expected = response.content_length();
    while total < expected {
        let n = response.reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((
        response.status,
        hasher.finalize().to_hex().to_string(),
        total,
    ))
}

fn fsck(data: &Path, dry_run: bool) -> (i32, String) {
    let dir = data.display().to_string();
    let mut args = vec!["fsck", "--data-dir", dir.as_str()];
    if dry_run {
        args.push("--dry-run");
    }
    let (code, out, err) = run_bin(&args, &[]);
    (code, format!("{out}{err}"))
}

#[test]
fn kill_9_during_ingest_never_leaves_a_partial_object() {
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (rerun with CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let data = tempfile::TempDir::new().unwrap();
    // (hash, len, seed, acknowledged with 201 before the kill)
    let mut attempts: Vec<(String, u64, u8, bool)> = Vec::new();

    for round in 0..12u8 {
        let node = Proc::serve(data.path(), &[]);
        // Everything acknowledged earlier is still there and intact.
        for (hash, len, _, acked) in &attempts {
            let (status, got, n) = download_hash(node.public, hash).unwrap();
            if *acked {
                assert_eq!(status, 200, "round {round}: acknowledged {hash} lost");
            }
            assert!(
                status == 200 || status == 404,
                "round {round}: {hash} -> {status}"
            );
            if status == 200 {
                assert_eq!(
                    (&got, n),
                    (hash, *len),
                    "round {round}: {hash} served wrong bytes"
                );
            }
        }
        // A few uploads in flight, then kill -9 at a random moment.
        let admin = node.admin;
        let uploads: Vec<_> = (0..3u8)
            .map(|i| {
                let len = rng.random_range(1..48u64 << 20);
                let seed = round.wrapping_mul(7).wrapping_add(i);
                let handle = std::thread::spawn(move || {
                    upload_generated(admin, len, seed).map(|r| r.status)
                });
                (len, seed, handle)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
        node.kill9();
        for (len, seed, handle) in uploads {
            let acked = matches!(handle.join().unwrap(), Ok(200 | 201));
            attempts.push((generated_hash(len, seed), len, seed, acked));
        }
        let (code, report) = fsck(data.path(), true);
        assert_eq!(code, 0, "round {round}: fsck after kill -9:\n{report}");
    }
    let node = Proc::serve(data.path(), &[]);
    let tmp = data.path().join("tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0),
        0,
        "temp files survive a restart"
    );
    let acked = attempts.iter().filter(|a| a.3).count();
    eprintln!(
        "{} uploads, {acked} acknowledged before a kill",
        attempts.len()
    );
    drop(node);
}

#[test]
fn one_gib_streams_in_and_out_with_flat_memory() {
    let data = tempfile::TempDir::new().unwrap();
    let node = Proc::serve(data.path(), &[]);
    let len: u64 = 1 << 30;
    let response = upload_generated(node.admin, len, 42).unwrap();
    let status = response.status;
    if status != 201 {
        panic!("upload failed: {status} {}", response.body_string());
    }
    let hash = generated_hash(len, 42);

    // Four concurrent full downloads.
    let public = node.public;
    let downloads: Vec<_> = (0..4)
        .map(|_| {
            let hash = hash.clone();
            std::thread::spawn(move || download_hash(public, &hash).unwrap())
        })
        .collect();
    for d in downloads {
        let (status, got, n) = d.join().unwrap();
        assert_eq!(status, 200);
        assert_eq!(n, len);
        assert_eq!(got, hash);
    }
    let peak = node.peak_rss();
    eprintln!("peak RSS after 1 GiB in and 4 GiB out: {} MiB", peak >> 20);
    assert!(
        peak < 160 << 20,
        "peak RSS {} MiB: memory is not flat",
        peak >> 20
    );
}

#[test]
fn sigterm_lets_in_flight_downloads_finish() {
    let data = tempfile::TempDir::new().unwrap();
    let node = Proc::serve(data.path(), &[]);
    let len = 64u64 << 20;
    assert_eq!(upload_generated(node.admin, len, 3).unwrap().status, 201);
    let hash = generated_hash(len, 3);

    let mut stream = TcpStream::connect(node.public).unwrap();
    write!(stream, "GET /blake3/{hash} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut response = RawResponse::read(stream).unwrap();
    assert_eq!(response.status, 200);
    let mut first = vec![0u8; 1 << 20];
    response.reader.read_exact(&mut first).unwrap();

    let public = node.public;
    let waiter = std::thread::spawn(move || node.terminate());
    // Listeners close promptly; the download in flight carries on.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(public).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(&first);
    let mut rest = Vec::new();
    response.reader.read_to_end(&mut rest).unwrap();
    hasher.update(&rest);
    assert_eq!(first.len() + rest.len(), len as usize);
    assert_eq!(hasher.finalize().to_hex().to_string(), hash);
    assert_eq!(waiter.join().unwrap(), Some(0), "clean exit after draining");
}

#[test]
fn config_errors_exit_64_naming_the_field() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data").display().to_string();
    let bad_file = dir.path().join("bad.toml");
    std::fs::write(&bad_file, "[store]\ncapcity = \"1GiB\"\n").unwrap();
    let bad_file = bad_file.display().to_string();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (vec!["serve", "--config", &bad_file], vec![], "capcity"),
        (
            vec!["serve", "--config", "/nonexistent/fleetcache.toml"],
            vec![],
            "/nonexistent/fleetcache.toml",
        ),
        (
            vec!["serve", "--data-dir", &data],
            vec![("FLEETCACHE_STORE_CAPACITY", "50XB")],
            "store.capacity",
        ),
        (
            vec!["serve", "--data-dir", &data],
            vec![("FLEETCACHE_NO_SUCH_THING", "1")],
            "FLEETCACHE_NO_SUCH_THING",
        ),
        (
            vec!["serve", "--data-dir", &data, "--listen", "not-an-address"],
            vec![],
            "http.listen",
        ),
        (
            vec!["serve", "--data-dir", &data, "--admin-listen", "0.0.0.0:0"],
            vec![],
            "admin.token",
        ),
        (
            vec!["serve", "--data-dir", &data],
            vec![("FLEETCACHE_HTTP_IDLE_TIMEOUT", "soon")],
            "http.idle_timeout",
        ),
        (vec!["serve", "--no-such-flag"], vec![], "--no-such-flag"),
        (
            vec!["serve", "--data-dir", &data],
            vec![("FLEETCACHE_STORE_LOW_WATERMARK", "0.99")],
            "store.low_watermark",
        ),
        (
            vec!["serve", "--data-dir", &data],
            vec![("FLEETCACHE_STORE_CAPACITY", "0GiB")],
            "store.capacity",
        ),
        (
            vec!["serve"],
            vec![("FLEETCACHE_STORE_DATA_DIR", "")],
            "store.data_dir",
        ),
        (
            vec![
                "serve",
                "--data-dir",
                &data,
                "--origin",
                "ftp://origin.example",
            ],
            vec![],
            "origin[0].url",
        ),
        (
            vec!["serve", "--data-dir", &data],
            vec![("FLEETCACHE_ORIGIN", "http://origin.example/base")],
            "origin[0].url",
        ),
        (
            vec!["config", "print", "--config", &bad_file],
            vec![],
            "capcity",
        ),
        (
            vec!["serve", "--data-dir", &data, "--peer", "10.0.0.2:7070"],
            vec![],
            "swarm.cert_dir",
        ),
        (
            vec![
                "serve",
                "--data-dir",
                &data,
                "--cert-dir",
                "/nonexistent/certs",
            ],
            vec![],
            "swarm.cert_dir",
        ),
        (
            vec![
                "serve",
                "--data-dir",
                &data,
                "--cert-dir",
                "/tmp",
                "--peer",
                "no-port",
            ],
            vec![],
            "swarm.peers",
        ),
    ];
    for (args, env, needle) in cases {
        let (code, _out, err) = run_bin(&args, &env);
        assert_eq!(code, 64, "{args:?} {env:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?} {env:?}: message does not name {needle:?}: {err}"
        );
    }
    assert!(!Path::new(&data).exists() || std::fs::read_dir(&data).unwrap().count() == 0);
}

#[test]
fn config_print_shows_an_effective_config_that_loads_back() {
    let dir = tempfile::TempDir::new().unwrap();
    let (code, out, err) = run_bin(
        &[
            "config",
            "print",
            "--listen",
            "127.0.0.1:9999",
            "--tls-listen",
            "127.0.0.1:9443",
            "--tls-cert",
            "/etc/tls/chain.pem",
            "--tls-key",
            "/etc/tls/key.pem",
        ],
        &[
            ("FLEETCACHE_STORE_CAPACITY", "3GiB"),
            ("FLEETCACHE_ADMIN_TOKEN", "hunter2-secret"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("127.0.0.1:9999"), "{out}");
    assert!(out.contains("3GiB"), "{out}");
    assert!(
        out.contains("[http.tls]\nlisten = \"127.0.0.1:9443\"\ncert_file = \"/etc/tls/chain.pem\"\nkey_file = \"/etc/tls/key.pem\"\n"),
        "{out}"
    );
    assert!(!out.contains("hunter2-secret"), "token printed: {out}");
    let file = dir.path().join("printed.toml");
    std::fs::write(&file, &out).unwrap();
    let (code, again, err) = run_bin(
        &["config", "print", "--config", &file.display().to_string()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(again.contains("127.0.0.1:9999"));
    assert!(again.contains("/etc/tls/chain.pem"));
}

#[test]
fn put_and_get_commands_round_trip_and_verify() {
    let dir = tempfile::TempDir::new().unwrap();
    let node = Proc::serve(&dir.path().join("data"), &[]);
    let input = dir.path().join("input.bin");
    let data = pattern(3 << 20, 11);
    std::fs::write(&input, &data).unwrap();
    let admin = format!("http://{}", node.admin);
    let url = format!("http://{}", node.public);

    let (code, out, err) = run_bin(
        &["put", &input.display().to_string(), "--admin", &admin],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let hash = out.trim().to_owned();
    assert_eq!(hash, blake3_hex(&data));

    let output = dir.path().join("out.bin");
    let (code, _, err) = run_bin(
        &[
            "get",
            &hash,
            "-o",
            &output.display().to_string(),
            "--url",
            &url,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&output).unwrap(), data);

    let out = std::process::Command::new(bin())
        .args(["get", &hash, "--url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == data, "stdout differs from the object");

    let missing = "ab".repeat(32);
    let (code, _, err) = run_bin(
        &[
            "get",
            &missing,
            "-o",
            &dir.path().join("m").display().to_string(),
            "--url",
            &url,
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("404"), "{err}");
    assert!(!dir.path().join("m").exists());
    let (code, _, err) = run_bin(&["get", "xyz", "--url", &url], &[]);
    assert_eq!(code, 64, "{err}");
}

/// Every regular file under `dir` whose size is `len`.
fn files_of_size(dir: &Path, len: u64) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.len() == len {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn corrupted_data_is_caught_by_fsck_and_never_served() {
    let dir = tempfile::TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let len = 300 * 1024 + 5;
    let node = Proc::serve(&data_dir, &[]);
    let response = upload_generated(node.admin, len, 1).unwrap();
    assert_eq!(response.status, 201);
    let second = upload_generated(node.admin, len + 1, 2).unwrap();
    assert_eq!(second.status, 201);
    let hash = generated_hash(len, 1);
    let hash2 = generated_hash(len + 1, 2);
    assert_eq!(node.terminate(), Some(0));

    // Flip a byte in the middle of the first object's data file.
    let files = files_of_size(&data_dir, len);
    assert_eq!(files.len(), 1, "{files:?}");
    flip_byte(&files[0], len / 2);

    // fsck --dry-run reports without changing anything.
    let (code, report) = fsck(&data_dir, true);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains(&hash), "{report}");
    assert!(files[0].exists());

    // A node serving the damaged file never hands out the bad bytes.
    let node = Proc::serve(&data_dir, &[]);
    match download_hash(node.public, &hash) {
        Ok((200, got, n)) => assert!(
            n < len || got != hash,
            "served corrupted bytes as valid? {n}"
        ),
        Ok((status, ..)) => assert!(status >= 400, "status {status}"),
        Err(_) => {}
    }
    let (status, got, _) = download_hash(node.public, &hash2).unwrap();
    assert_eq!(
        (status, got.as_str()),
        (200, hash2.as_str()),
        "the healthy object is unaffected"
    );
    assert_eq!(node.terminate(), Some(0));

    // Corrupt the healthy one offline too; fsck quarantines it.
    let files = files_of_size(&data_dir, len + 1);
    let victim = files
        .iter()
        .find(|p| !p.to_string_lossy().contains("quarantine"))
        .unwrap();
    flip_byte(victim, 0);
    let (code, report) = fsck(&data_dir, false);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains(&hash2), "{report}");
    let (code, report) = fsck(&data_dir, false);
    assert_eq!(code, 0, "second fsck is clean: {report}");
    let node = Proc::serve(&data_dir, &[]);
    let (status, _, _) = download_hash(node.public, &hash2).unwrap();
    assert_eq!(status, 404);
}

#[test]
fn serve_with_no_arguments_runs_on_the_embedded_defaults() {
    // The README's first command: no config file, no flags. It binds the
    // default loopback ports 8080/8081, which nothing else in the suite uses.
    let cwd = tempfile::TempDir::new().unwrap();
    let mut child = std::process::Command::new(bin())
        .arg("serve")
        .current_dir(cwd.path())
        .env("FLEETCACHE_LOG_FORMAT", "json")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Keep draining stderr so the child never writes into a closed pipe.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let drain = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("fleetcache node started") || line.contains("ERROR") {
                let _ = tx.send(line.clone());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let started = rx.recv_timeout(Duration::from_secs(30)).ok();
    let started = started.unwrap_or_default();
    assert!(started.contains("127.0.0.1:8080"), "{started}");
    assert!(cwd.path().join("fleetcache-data").is_dir());

    let mut stream = TcpStream::connect("127.0.0.1:8081").unwrap();
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    assert_eq!(RawResponse::read(stream).unwrap().status, 200);
    let mut stream = TcpStream::connect("127.0.0.1:8080").unwrap();
    write!(
        stream,
        "GET /blake3/{} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        "0".repeat(64)
    )
    .unwrap();
    assert_eq!(RawResponse::read(stream).unwrap().status, 404);

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let code = child.wait().unwrap().code();
    let log = drain.join().unwrap();
    assert_eq!(code, Some(0), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_commands_make_a_fleet_that_fills_misses() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = |p: &str| dir.path().join(p).display().to_string();
    let (ca, one, two) = (path("ca"), path("edge-1"), path("edge-2"));
    let ok = |args: &[&str]| {
        let (code, out, err) = run_bin(args, &[]);
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    };
    assert!(ok(&["cert", "ca", "--out", &ca]).contains(&ca));
    ok(&[
        "cert", "node", "--ca", &ca, "--name", "edge-1", "--out", &one,
    ]);
    ok(&[
        "cert",
        "node",
        "--ca",
        &ca,
        "--name",
        "edge-2.fleet",
        "--out",
        &two,
    ]);
    for file in ["ca.pem", "node.pem", "node.key"] {
        assert!(dir.path().join("edge-1").join(file).exists(), "{file}");
    }
    assert!(
        !dir.path().join("edge-1/ca.key").exists(),
        "the CA key left the CA directory"
    );
    // Refusals: overwriting, a bad name, a missing CA.
    for (args, needle) in [
        (vec!["cert", "ca", "--out", &ca], "exists"),
        (
            vec![
                "cert",
                "node",
                "--ca",
                &ca,
                "--name",
                "10.0.0.1",
                "--out",
                &path("x"),
            ],
            "invalid node name",
        ),
        (
            vec![
                "cert",
                "node",
                "--ca",
                &path("nope"),
                "--name",
                "a",
                "--out",
                &path("y"),
            ],
            "missing",
        ),
    ] {
        let (code, _, err) = run_bin(&args, &[]);
        assert_eq!(code, 64, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }

    let env = [("FLEETCACHE_SWARM_LISTEN", "127.0.0.1:0")];
    let holder_data = tempfile::TempDir::new().unwrap();
    let holder = Proc::serve_with_flags(holder_data.path(), &["--cert-dir", &one], &env);
    let holder_swarm = holder.swarm.expect("swarm address").to_string();
    let data = pattern(300_000, 11);
    let put = request(
        &client(),
        Method::POST,
        &format!("http://{}/blobs", holder.admin),
        &[],
        data.clone().into(),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let hash = put.json()["hash"].as_str().unwrap().to_owned();

    let edge_data = tempfile::TempDir::new().unwrap();
    let edge = Proc::serve_with_flags(
        edge_data.path(),
        &["--cert-dir", &two, "--peer", &holder_swarm],
        &env,
    );
    let url = format!("http://{}/blake3/{hash}", edge.public);
    eventually(
        "the edge fills from the holder",
        Duration::from_secs(20),
        async || {
            let reply = request(&client(), Method::GET, &url, &[], bytes::Bytes::new()).await;
            reply.status == StatusCode::OK && reply.body[..] == data[..]
        },
    )
    .await;
}

/// `fleetcache serve` on loopback port-0 listeners with its stderr piped as it
/// is, for tests of what the binary writes there (`Proc` asks for JSON logs).
fn raw_serve(data: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin());
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(data)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    cmd
}

/// A log collector that goes away must not take the node down: logging into a closed
/// stderr pipe used to panic on shutdown (exit 101).
#[test]
fn a_closed_stderr_pipe_does_not_crash_the_node() {
    let data = tempfile::TempDir::new().unwrap();
    let mut child = raw_serve(data.path()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("fleetcache node started") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "exited before starting"
        );
    }
    drop(stderr);
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// Text logs written anywhere but a terminal (journald, `kubectl logs`, a file)
/// carry no ANSI escape sequences.
#[test]
fn text_logs_to_a_pipe_have_no_colour_codes() {
    let data = tempfile::TempDir::new().unwrap();
    let mut child = raw_serve(data.path())
        .env("FLEETCACHE_LOG_FORMAT", "text")
        .env("FLEETCACHE_LOG_LEVEL", "info")
        .env_remove("NO_COLOR")
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("fleetcache node started") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("fleetcache node started"), "{seen}");
    assert!(seen.contains("INFO"), "{seen}");
    assert!(
        !seen.contains('\u{1b}'),
        "escape codes in a piped log: {seen:?}"
    );
}

/// A shell's soft open-file limit (often 1024) would refuse connections long
/// before `http.max_connections`: `serve` raises it to the hard limit, and says
/// so when even that cannot hold the configured connections.
#[test]
fn serve_raises_its_open_file_limit_and_warns_when_the_hard_one_is_low() {
    for (hard, low) in [(20_000, false), (2_048, true)] {
        let data = tempfile::TempDir::new().unwrap();
        let serve = raw_serve(data.path());
        let mut child = std::process::Command::new("prlimit")
            .arg(format!("--nofile=512:{hard}"))
            .arg(serve.get_program())
            .args(serve.get_args())
            .env("FLEETCACHE_LOG_LEVEL", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut seen = String::new();
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("fleetcache node started") {
                break;
            }
        }
        // prlimit execs the node: same process.
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(seen.contains("fleetcache node started"), "{seen}");
        let open_files = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap()
            .split_whitespace()
            .skip(3)
            .take(2)
            .collect::<Vec<_>>();
        assert_eq!(open_files, [hard.to_string(), hard.to_string()], "{limits}");
        assert!(seen.contains("raised the open-file limit"), "{seen}");
        assert_eq!(
            seen.contains("http.max_connections"),
            low,
            "warning expected only below the connections: {seen}"
        );
    }
}
