//! A fleet under faults: five nodes in network namespaces in front of an origin, a
//! steady load of hash and URL objects across all of them, and, in turn, a node
//! killed (`kill -9`) and restarted, a node partitioned from its peers and healed, a
//! lossy capped link, and a rolling restart (SIGTERM, drain, start again).
//!
//! The client is this (root) namespace, reaching the bridge through the host veth;
//! the origin is a `TestOrigin` on the host side of that veth (`NET.254`). Nothing is
//! timed against a threshold the machine's speed decides: failures are counted, and
//! "routed around" is an event polled for with a generous deadline (the bound in the
//! table), its observed time only reported.
//!
//! Needs what the other namespace tests need (root, `ip`, `nft`, `tc`); honours
//! `FLEETCACHE_SKIP_NETNS`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::netns::{Net, TOKEN, can_run};
use crate::origin_server::{ScriptBody, Scripted, TestOrigin};
use crate::support::*;

mod load;

use load::*;

const NODES: usize = 5;
/// Every client names the same site, as a CDN's clients do.
const HOST: &str = "cdn.test";
const PEER_TIMEOUT: Duration = Duration::from_secs(2);
const PING_INTERVAL: Duration = Duration::from_millis(150);
/// Client tasks sending the steady load.
const TASKS: usize = 6;
/// Consecutive good probe answers that count as "routed around".
const PROBES_IN_A_ROW: usize = 5;
/// How long a client waits for a whole response before calling it failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Phases, in the order they run; the load attributes each request to the phase it
/// ended in.
const PHASES: [&str; 9] = [
    "quiet (warm-up + load)",
    "kill -9 n2, restart",
    "quiet after restart",
    "partition n3, heal",
    "quiet after heal",
    "5% loss + 50mbit n4",
    "quiet after loss",
    "rolling restart (TERM)",
    "quiet after rolling",
];

/// A node's fixed identity, data and addresses; its process comes and goes.
struct Slot {
    data: tempfile::TempDir,
    cert: PathBuf,
    proc: Option<Proc>,
}

struct Cluster {
    net: Net,
    origin: TestOrigin,
    slots: Vec<Slot>,
    names: Vec<String>,
    client: HttpClient,
}

impl Cluster {
    fn http(&self, i: usize) -> String {
        format!("http://{}:8080", self.net.ip(i))
    }

    fn launch(&mut self, i: usize) {
        let peers: Vec<String> = (1..=NODES)
            .filter(|&j| j != i)
            .map(|j| self.net.swarm_addr(j).to_string())
            .collect();
        let (cert, listen, peers, ping, timeout, origin) = (
            self.slots[i - 1].cert.display().to_string(),
            self.net.swarm_addr(i).to_string(),
            peers.join(","),
            format!("{}ms", PING_INTERVAL.as_millis()),
            format!("{}s", PEER_TIMEOUT.as_secs()),
            self.origin.url(),
        );
        let env = [
            ("FLEETCACHE_SWARM_CERT_DIR", cert.as_str()),
            ("FLEETCACHE_SWARM_LISTEN", listen.as_str()),
            ("FLEETCACHE_SWARM_PEERS", peers.as_str()),
            ("FLEETCACHE_SWARM_PING_INTERVAL", ping.as_str()),
            ("FLEETCACHE_SWARM_PEER_TIMEOUT", timeout.as_str()),
            ("FLEETCACHE_ADMIN_TOKEN", TOKEN),
            ("FLEETCACHE_ORIGIN", origin.as_str()),
        ];
        let mut launcher = Command::new("ip");
        launcher
            .args(["netns", "exec", &self.net.node(i)])
            .arg(bin());
        let (http, admin) = (
            format!("{}:8080", self.net.ip(i)),
            format!("{}:8081", self.net.ip(i)),
        );
        let data = self.slots[i - 1].data.path().to_owned();
        let proc = Proc::serve_via(launcher, &http, &admin, &data, &[], &env);
        self.slots[i - 1].proc = Some(proc);
    }

    /// An admin request; `None` when the node does not answer.
    async fn admin(&self, i: usize, method: Method, path: &str, body: Bytes) -> Option<Reply> {
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{}:8081{path}", self.net.ip(i)))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Full::new(body))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(5), self.client.request(request))
            .await
            .ok()?
            .ok()?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
            .await
            .ok()?
            .ok()?
            .to_bytes();
        Some(Reply {
            status,
            headers,
            body,
        })
    }

    /// Peer states as node `i` sees them: swarm address -> state.
    async fn peer_states(&self, i: usize) -> Option<BTreeMap<String, String>> {
        let reply = self.admin(i, Method::GET, "/peers", Bytes::new()).await?;
        let json: serde_json::Value = serde_json::from_slice(&reply.body).ok()?;
        Some(
            json["peers"]
                .as_array()?
                .iter()
                .filter_map(|p| {
                    Some((
                        p["addr"].as_str()?.to_owned(),
                        p["state"].as_str()?.to_owned(),
                    ))
                })
                .collect(),
        )
    }

    /// Whether node `i` sees node `j` as up.
    async fn sees_up(&self, i: usize, j: usize) -> bool {
        let addr = self.net.swarm_addr(j).to_string();
        self.peer_states(i)
            .await
            .is_some_and(|p| p.get(&addr).map(String::as_str) == Some("up"))
    }

    /// Whether node `i` no longer counts node `j` as a live member.
    async fn sees_gone(&self, i: usize, j: usize) -> bool {
        let addr = self.net.swarm_addr(j).to_string();
        self.peer_states(i)
            .await
            .is_some_and(|p| p.get(&addr).is_none_or(|s| s != "up"))
    }

    async fn ready(&self, i: usize) -> bool {
        self.admin(i, Method::GET, "/readyz", Bytes::new())
            .await
            .is_some_and(|r| r.status == StatusCode::OK)
    }

    /// Every node ready and seeing every other up.
    async fn converged(&self) -> bool {
        for i in 1..=NODES {
            if !self.ready(i).await {
                return false;
            }
            for j in 1..=NODES {
                if i != j && !self.sees_up(i, j).await {
                    return false;
                }
            }
        }
        true
    }

    async fn wait_converged(&self, what: &str) {
        eventually(what, Duration::from_secs(60), async || {
            self.converged().await
        })
        .await;
    }

    async fn metric(&self, i: usize, sample: &str) -> f64 {
        let reply = self.admin(i, Method::GET, "/metrics", Bytes::new()).await;
        reply
            .and_then(|r| metric_value(&String::from_utf8_lossy(&r.body), sample))
            .unwrap_or(0.0)
    }

    async fn ingest(&self, i: usize, body: Bytes) -> String {
        let reply = self
            .admin(i, Method::POST, "/blobs", body)
            .await
            .expect("ingest answered");
        assert!(reply.status.is_success(), "ingest failed: {reply:?}");
        reply.json()["hash"].as_str().unwrap().to_owned()
    }

    /// A URL object at `path` the origin serves with `max-age=600`.
    fn url_object(&self, path: &str, size: usize, seed: u8) -> Obj {
        let body = Bytes::from(pattern(size, seed));
        let served = body.clone();
        self.origin.route(path, move |_| {
            Scripted::ok(served.clone()).header("cache-control", "max-age=600")
        });
        Obj {
            path: path.to_owned(),
            body,
            url: true,
        }
    }

    /// A path under `prefix` whose owner among all five nodes is node `owner`.
    fn path_owned_by(&self, owner: usize, prefix: &str, from: usize) -> (String, usize) {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        (from..from + 100_000)
            .map(|k| (format!("{prefix}{k}"), k))
            .find(|(path, _)| url_owners(path, HOST, &names)[0] == self.names[owner - 1])
            .unwrap()
    }

    /// Polls fresh URLs owned by `faulted` through `via` (round robin) until
    /// `PROBES_IN_A_ROW` in a row come back whole and right and `settled` holds;
    /// returns the time since `since` (for the table), or `None` if that has not
    /// happened by the deadline `since + bound`.
    async fn route_around(
        &self,
        faulted: usize,
        via: &[usize],
        tag: &str,
        since: Instant,
        bound: Duration,
        settled: impl AsyncFn() -> bool,
    ) -> Option<Duration> {
        let probing = async {
            let mut in_a_row = 0;
            let mut next = 0;
            let mut n = 0;
            loop {
                let (path, k) = self.path_owned_by(faulted, &format!("/probe/{tag}/"), next);
                next = k + 1;
                let obj = self.url_object(&path, 20_000, (k % 251) as u8);
                let node = via[n % via.len()];
                n += 1;
                let url = format!("{}{}", self.http(node), obj.path);
                match fetch(&self.client, &url, &obj.body).await {
                    Outcome::Ok(_) => in_a_row += 1,
                    Outcome::Wrong(len) => panic!("probe {url} got wrong bytes ({len})"),
                    _ => in_a_row = 0,
                }
                if in_a_row >= PROBES_IN_A_ROW && settled().await {
                    return since.elapsed();
                }
            }
        };
        let deadline = tokio::time::Instant::from_std(since + bound);
        tokio::time::timeout_at(deadline, probing).await.ok()
    }

    /// Sends SIGTERM to node `i` and waits (off the runtime) for it to exit.
    fn terminate(&mut self, i: usize) -> tokio::task::JoinHandle<Option<i32>> {
        let mut proc = self.slots[i - 1].proc.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &proc.pid().to_string()])
            .status();
        tokio::task::spawn_blocking(move || proc.child.wait().ok().and_then(|s| s.code()))
    }
}

/// New objects for a phase: three URL objects and one hash object held by two nodes.
async fn cold_objects(cluster: &Cluster, phase: usize, holders: [usize; 2]) -> Vec<Obj> {
    let mut objects: Vec<Obj> = [(30_000, 0), (300_000, 1), (1_200_000, 2)]
        .into_iter()
        .map(|(size, k)| {
            cluster.url_object(
                &format!("/cold/{phase}/{k}"),
                size,
                (phase * 10 + k + 100) as u8,
            )
        })
        .collect();
    let body = Bytes::from(pattern(400_000 + phase * 1000, (phase + 200) as u8));
    let mut hash = String::new();
    for i in holders {
        hash = cluster.ingest(i, body.clone()).await;
    }
    objects.push(Obj {
        path: format!("/blake3/{hash}"),
        body,
        url: false,
    });
    objects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_five_node_fleet_under_load_survives_kills_partitions_loss_and_restarts() {
    if !can_run() {
        return;
    }
    // A prefix and subnet apart from the other namespace tests (10.20-219.x), which
    // may run at the same time in other processes.
    let pid = std::process::id();
    let net = Net::build("ff", (220 + pid % 30) as u8, NODES);
    let origin = TestOrigin::start_on(&format!("{}:0", net.ip(254))).await;
    let mut fleet = Fleet::new();
    let slots = (0..NODES)
        .map(|_| Slot {
            data: tempfile::TempDir::new().unwrap(),
            cert: fleet.cert_dir(),
            proc: None,
        })
        .collect();
    let mut cluster = Cluster {
        net,
        origin,
        slots,
        names: Vec::new(),
        client: client(),
    };
    for i in 1..=NODES {
        cluster.launch(i);
    }
    cluster.wait_converged("the fleet up").await;
    for i in 1..=NODES {
        let reply = cluster.admin(i, Method::GET, "/peers", Bytes::new()).await;
        let name = reply.unwrap().json()["name"].as_str().unwrap().to_owned();
        cluster.names.push(name);
    }

    // Hot objects: URL objects of several sizes and hash objects each held by one node.
    let mut hot: Vec<Obj> = [
        1_000,
        16_000,
        200_000,
        1 << 20,
        2 << 20,
        5_000,
        64_000,
        700_000,
    ]
    .into_iter()
    .enumerate()
    .map(|(k, size)| cluster.url_object(&format!("/hot/{k}"), size, k as u8))
    .collect();
    for (k, size) in [4_096, 64 << 10, 512 << 10, 2 << 20]
        .into_iter()
        .enumerate()
    {
        let body = Bytes::from(pattern(size, (50 + k) as u8));
        let hash = cluster.ingest(k % NODES + 1, body.clone()).await;
        hot.push(Obj {
            path: format!("/blake3/{hash}"),
            body,
            url: false,
        });
    }

    let mut rows: Vec<Row> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut cold_url_checks: Vec<(usize, Vec<Obj>)> = Vec::new();

    // Phase 0, quiet: every hot object asked of every node at once (one origin fetch
    // each for the fleet), then steady load.
    let mut warm = tokio::task::JoinSet::new();
    for obj in &hot {
        for i in 1..=NODES {
            let (url, obj, client) = (
                format!("{}{}", cluster.http(i), obj.path),
                obj.clone(),
                cluster.client.clone(),
            );
            warm.spawn(async move { (url.clone(), fetch(&client, &url, &obj.body).await) });
        }
    }
    for (url, outcome) in warm.join_all().await {
        assert!(matches!(outcome, Outcome::Ok(_)), "warm-up {url} failed");
    }
    let cold0 = cold_objects(&cluster, 0, [1, 4]).await;
    let load = Arc::new(Load {
        phase: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        down: AtomicUsize::new(0),
        objects: Mutex::new(hot.iter().chain(&cold0).cloned().collect()),
        stats: Mutex::new(vec![Stats::default(); PHASES.len()]),
    });
    cold_url_checks.push((0, cold0));
    let ips: Vec<String> = (1..=NODES).map(|i| cluster.net.ip(i)).collect();
    let mut clients = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        clients.spawn(client_task(load.clone(), ips.clone(), task));
    }
    let quiet = async |load: &Load, cluster: &Cluster, phase: usize| -> Vec<Obj> {
        // Steady load over this phase's own new objects; the fleet is whole.
        let cold = cold_objects(cluster, phase, [phase % NODES + 1, (phase + 2) % NODES + 1]).await;
        {
            let mut objects = load.objects.lock().unwrap();
            *objects = hot.iter().chain(&cold).cloned().collect();
        }
        load.phase.store(phase, Ordering::SeqCst);
        let before = load.stats.lock().unwrap()[phase].requests;
        eventually("quiet load", Duration::from_secs(60), async || {
            load.stats.lock().unwrap()[phase].requests >= before + 600
        })
        .await;
        cold
    };
    eventually("quiet load", Duration::from_secs(60), async || {
        load.stats.lock().unwrap()[0].requests >= 600
    })
    .await;
    let hot_fetches: Vec<u64> = hot
        .iter()
        .filter(|o| o.url)
        .map(|o| cluster.origin.hits(&o.path))
        .collect();
    rows.push(Row {
        phase: PHASES[0],
        bound: Some(0),
        route: "-".into(),
        notes: format!("origin fetches per hot URL {hot_fetches:?}"),
    });
    if hot_fetches.iter().any(|&n| n != 1) {
        failures.push(format!(
            "quiet: hot URLs cost the origin {hot_fetches:?} fetches, not one each"
        ));
    }

    // The route-around bound: the peer timeout marks a silent peer down, two pings
    // to notice, and slack for the probes themselves (each may wait on a dead owner
    // and then the origin) on a loaded machine.
    let route_bound = PEER_TIMEOUT + 2 * PING_INTERVAL + Duration::from_secs(10);
    // Failures allowed in a fault window: requests in flight from the faulted node
    // when it failed, at most one per client task and new object.
    let fault_bound = (TASKS * 4) as u64;

    // Phase 1: kill -9 node 2, then start it again on the same data.
    let victim = 2;
    let cold1 = cold_objects(&cluster, 1, [victim, 5]).await;
    load.objects.lock().unwrap().extend(cold1.iter().cloned());
    eventually("fills settle", Duration::from_secs(30), async || {
        cluster.metric(victim, "fleetcache_fills_active").await == 0.0
    })
    .await;
    let stored: Vec<Obj> = hot.clone();
    let fetches_before: Vec<u64> = stored
        .iter()
        .map(|o| cluster.origin.hits(&o.path))
        .collect();
    load.phase.store(1, Ordering::SeqCst);
    load.down.store(victim, Ordering::SeqCst);
    let since = Instant::now();
    cluster.slots[victim - 1].proc.take().unwrap().kill9();
    let survivors: Vec<usize> = (1..=NODES).filter(|&i| i != victim).collect();
    let routed = cluster
        .route_around(victim, &survivors, "kill", since, route_bound, async || {
            for &i in &survivors {
                if !cluster.sees_gone(i, victim).await {
                    return false;
                }
            }
            true
        })
        .await;
    cluster.launch(victim);
    cluster.wait_converged("the killed node back").await;
    let rejoined = since.elapsed();
    load.down.store(0, Ordering::SeqCst);
    let mut hits = 0;
    for obj in &stored {
        let url = format!("{}{}", cluster.http(victim), obj.path);
        match fetch(&cluster.client, &url, &obj.body).await {
            Outcome::Ok(status) if status.starts_with("fleetcache; hit") => hits += 1,
            Outcome::Ok(status) => {
                failures.push(format!("restarted n{victim}: {url} was {status}"))
            }
            _ => failures.push(format!("restarted n{victim}: {url} failed")),
        }
    }
    let fetches_after: Vec<u64> = stored
        .iter()
        .map(|o| cluster.origin.hits(&o.path))
        .collect();
    if fetches_after != fetches_before {
        failures.push(format!(
            "the restarted node went to the origin for what it had: {fetches_before:?} -> {fetches_after:?}"
        ));
    }
    rows.push(Row {
        phase: PHASES[1],
        bound: Some(fault_bound),
        route: routed_text(routed, route_bound),
        notes: format!(
            "rejoined after {}; {hits}/{} stored objects hit after restart",
            secs(rejoined),
            stored.len()
        ),
    });

    // Phase 2, quiet.
    let cold = quiet(&load, &cluster, 2).await;
    cold_url_checks.push((2, cold));
    rows.push(Row::quiet(2));

    // Phase 3: node 3 cut off from its four peers (both ways); the client and the
    // origin still reach it, so it serves alone while the four serve without it.
    let isolated = 3;
    let cold3 = cold_objects(&cluster, 3, [isolated, 1]).await;
    load.objects.lock().unwrap().extend(cold3.iter().cloned());
    load.phase.store(3, Ordering::SeqCst);
    let since = Instant::now();
    let rules: Vec<String> = (1..=NODES)
        .filter(|&j| j != isolated)
        .flat_map(|j| [(isolated, j), (j, isolated)])
        .map(|(from, to)| {
            format!(
                "ip saddr {} ip daddr {} counter drop",
                cluster.net.ip(from),
                cluster.net.ip(to)
            )
        })
        .collect();
    cluster.net.bridge_rules("isolate", &rules);
    let others: Vec<usize> = (1..=NODES).filter(|&i| i != isolated).collect();
    let all: Vec<usize> = (1..=NODES).collect();
    let routed = cluster
        .route_around(
            isolated,
            &all,
            "partition",
            since,
            route_bound,
            async || {
                for &i in &others {
                    if !cluster.sees_gone(i, isolated).await
                        || !cluster.sees_gone(isolated, i).await
                    {
                        return false;
                    }
                }
                true
            },
        )
        .await;
    // Some load while split, then heal.
    let before = load.stats.lock().unwrap()[3].requests;
    eventually("load while split", Duration::from_secs(60), async || {
        load.stats.lock().unwrap()[3].requests >= before + 300
    })
    .await;
    let healed_at = Instant::now();
    cluster.net.heal("isolate");
    cluster.wait_converged("the partition healed").await;
    rows.push(Row {
        phase: PHASES[3],
        bound: Some(fault_bound),
        route: routed_text(routed, route_bound),
        notes: format!("whole again {} after heal", secs(healed_at.elapsed())),
    });

    // Phase 4, quiet.
    let cold = quiet(&load, &cluster, 4).await;
    cold_url_checks.push((4, cold));
    rows.push(Row::quiet(4));

    // Phase 5: node 4's link drops 5 % of its packets (both ways, TCP and QUIC) and
    // its egress is capped at 50 Mbit/s. Nothing should go down; everything is slower.
    let lossy = 4;
    let cold5 = cold_objects(&cluster, 5, [lossy, 2]).await;
    load.objects.lock().unwrap().extend(cold5.iter().cloned());
    load.phase.store(5, Ordering::SeqCst);
    let since = Instant::now();
    let ip = cluster.net.ip(lossy);
    cluster.net.bridge_rules(
        "lossy4",
        &[
            format!("ip saddr {ip} numgen random mod 100 < 5 counter drop"),
            format!("ip daddr {ip} numgen random mod 100 < 5 counter drop"),
        ],
    );
    cluster.net.cap(lossy, "50mbit", "64kb", "50ms");
    let routed = cluster
        .route_around(lossy, &all, "loss", since, route_bound, async || true)
        .await;
    let before = load.stats.lock().unwrap()[5].requests;
    eventually(
        "load on the bad link",
        Duration::from_secs(60),
        async || load.stats.lock().unwrap()[5].requests >= before + 300,
    )
    .await;
    let dropped = in_hub_counter(&cluster.net, "lossy4");
    cluster.net.heal("lossy4");
    cluster.net.uncap(lossy);
    cluster.wait_converged("the link repaired").await;
    rows.push(Row {
        phase: PHASES[5],
        bound: Some(fault_bound),
        route: routed_text(routed, route_bound),
        notes: format!("{dropped} packets dropped"),
    });
    if dropped == 0 {
        failures.push("loss: the link dropped nothing".into());
    }

    // Phase 6, quiet.
    let cold = quiet(&load, &cluster, 6).await;
    cold_url_checks.push((6, cold));
    rows.push(Row::quiet(6));

    // Phase 7: every node in turn gets SIGTERM while serving a slow response it owns;
    // it must stop being ready, finish that response, exit 0 (drained), and come back
    // on the same data and addresses.
    let cold7 = cold_objects(&cluster, 7, [1, 3]).await;
    load.objects.lock().unwrap().extend(cold7.iter().cloned());
    load.phase.store(7, Ordering::SeqCst);
    let rejoin_bound = Duration::from_secs(30);
    let mut rejoin_times = Vec::new();
    let mut drained = 0;
    for i in 1..=NODES {
        let (path, _) = cluster.path_owned_by(i, "/slow/", 0);
        let body = Bytes::from(pattern(1 << 20, i as u8));
        let paced = body.clone();
        cluster.origin.route(&path, move |_| {
            Scripted::ok(Bytes::new())
                .header("cache-control", "max-age=600")
                .body(ScriptBody::Paced {
                    bytes: paced.clone(),
                    per_second: 1 << 20,
                })
        });
        let (head_tx, head_rx) = tokio::sync::oneshot::channel();
        let url = format!("{}{path}", cluster.http(i));
        let http = cluster.client.clone();
        let in_flight = tokio::spawn(async move {
            let request = Request::get(&url)
                .header("host", HOST)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let response = http.request(request).await.map_err(|e| e.to_string())?;
            let _ = head_tx.send(());
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body cut: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, bytes))
        });
        let _ = tokio::time::timeout(Duration::from_secs(20), head_rx).await;
        load.down.store(i, Ordering::SeqCst);
        let since = Instant::now();
        let exited = cluster.terminate(i);
        let mut not_ready = false;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !exited.is_finished() {
            if !cluster.ready(i).await {
                not_ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let code = exited.await.unwrap();
        match in_flight.await.unwrap() {
            Ok((StatusCode::OK, bytes)) if bytes == body => drained += 1,
            Ok((status, bytes)) => failures.push(format!(
                "rolling n{i}: in-flight response {status} with {} bytes (want {})",
                bytes.len(),
                body.len()
            )),
            Err(err) => failures.push(format!("rolling n{i}: in-flight response failed: {err}")),
        }
        if code != Some(0) {
            failures.push(format!("rolling n{i}: exit {code:?}, not drained"));
        }
        if !not_ready {
            failures.push(format!("rolling n{i}: never seen not ready before exit"));
        }
        // As an orchestrator would, let the fleet notice it gone before starting it
        // again: a node back within the peer timeout is still "up" to its peers on a
        // closed connection, and their owner requests to it fail (not-connected) and
        // go to the origin until they reconnect.
        eventually("the fleet notices", Duration::from_secs(30), async || {
            for j in (1..=NODES).filter(|&j| j != i) {
                if !cluster.sees_gone(j, i).await {
                    return false;
                }
            }
            true
        })
        .await;
        cluster.launch(i);
        cluster.wait_converged("the restarted node back").await;
        let rejoin = since.elapsed();
        rejoin_times.push(secs(rejoin));
        if rejoin > rejoin_bound {
            failures.push(format!("rolling n{i}: rejoined after {rejoin:?}"));
        }
        load.down.store(0, Ordering::SeqCst);
    }
    rows.push(Row {
        phase: PHASES[7],
        bound: Some(0),
        route: format!("rejoin <= {}", secs(rejoin_bound)),
        notes: format!(
            "rejoined after {}; {drained}/{NODES} in-flight slow responses finished",
            rejoin_times.join(" ")
        ),
    });

    // Phase 8, quiet.
    let cold = quiet(&load, &cluster, 8).await;
    cold_url_checks.push((8, cold));
    rows.push(Row::quiet(8));
    load.stop.store(true, Ordering::SeqCst);
    clients.join_all().await;

    // Quiet phases: each new URL object cost the origin one fetch; hot ones still one.
    for (phase, cold) in &cold_url_checks {
        let counts: Vec<u64> = cold
            .iter()
            .filter(|o| o.url)
            .map(|o| cluster.origin.hits(&o.path))
            .collect();
        let row = &mut rows[*phase];
        row.notes = format!("{} origin fetches per new URL {counts:?}", row.notes);
        if counts.iter().any(|&n| n != 1) {
            let mut owners = String::new();
            for i in 1..=NODES {
                let metrics = cluster
                    .admin(i, Method::GET, "/metrics", Bytes::new())
                    .await;
                let text = metrics.map(|r| String::from_utf8_lossy(&r.body).into_owned());
                for line in text.unwrap_or_default().lines() {
                    if line.starts_with("fleetcache_owner_") {
                        owners.push_str(&format!("\n  n{i} {line}"));
                    }
                }
            }
            failures.push(format!(
                "{}: new URLs cost the origin {counts:?} fetches, not one each; owner metrics:{owners}",
                PHASES[*phase]
            ));
        }
    }
    let hot_after: Vec<u64> = hot
        .iter()
        .filter(|o| o.url)
        .map(|o| cluster.origin.hits(&o.path))
        .collect();
    if hot_after.iter().any(|&n| n != 1) {
        failures.push(format!(
            "hot URLs cost the origin {hot_after:?} fetches over the whole run"
        ));
    }

    let stats = load.stats.lock().unwrap().clone();
    for (row, s) in rows.iter().zip(&stats) {
        if row.route.starts_with("NO ") {
            failures.push(format!("{}: not routed around in time", row.phase));
        }
        if s.wrong > 0 {
            failures.push(format!(
                "{}: {} complete responses with wrong bytes",
                row.phase, s.wrong
            ));
        }
        if let Some(bound) = row.bound
            && s.failed > bound
        {
            failures.push(format!("{}: {} failed, bound {bound}", row.phase, s.failed));
        }
    }
    eprintln!("{}", table(&stats, &rows));
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Packets counted by the first counter in bridge table `table`.
fn in_hub_counter(net: &Net, table: &str) -> u64 {
    let rules = crate::netns::in_ns(&net.hub(), &["nft", "list", "table", "bridge", table]);
    rules
        .split("packets ")
        .skip(1)
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}
