//! A fleet across hosts: each node in its own network namespace with its own address,
//! joined by a bridge in a hub namespace. The link is bad on purpose: nftables drops 5 %
//! of UDP at random in the bridge's forward chain, and `tbf` caps each holder's egress.
//! Peers are found through a DNS name (a per-namespace hosts file) that is re-resolved.
//!
//! Needs root, `ip`, `nft` and `tc` (`.ci/run` installs them). Set
//! `FLEETCACHE_SKIP_NETNS=1` to skip on a machine without them; without that variable a
//! missing prerequisite fails the test rather than passing it silently.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use fleetcache_swarm::NodeName;
use http::{Method, StatusCode};

use crate::support::*;

pub(crate) const TOKEN: &str = "netns-test-token-0123456789";
/// Nodes in the namespace tests of this file.
const NODES: usize = 3;

/// Runs a command, panicking with its output if it fails.
pub(crate) fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn in_ns(ns: &str, args: &[&str]) -> String {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    run(&full)
}

/// Namespaces `<tag>hub` (the bridge) and `<tag>n1..nN`, a veth from each node to the
/// bridge, and one from this (root) namespace so the test can reach the nodes' HTTP.
pub(crate) struct Net {
    tag: String,
    subnet: u8,
    host_if: String,
    nodes: usize,
}

impl Net {
    fn create() -> Net {
        let pid = std::process::id();
        Net::build("fc", (pid % 200 + 20) as u8, NODES)
    }

    /// `nodes` node namespaces named `<prefix><pid>…` on `10.<subnet>.0.0/24`. Tests that
    /// may run at the same time as others need a prefix and subnet of their own.
    pub(crate) fn build(prefix: &str, subnet: u8, nodes: usize) -> Net {
        let pid = std::process::id();
        let net = Net {
            tag: format!("{prefix}{}", pid % 100_000),
            subnet,
            host_if: format!("{prefix}{}h", pid % 100_000),
            nodes,
        };
        let hub = net.hub();
        run(&["ip", "netns", "add", &hub]);
        in_ns(&hub, &["ip", "link", "add", "br0", "type", "bridge"]);
        in_ns(&hub, &["ip", "link", "set", "br0", "up"]);
        for i in 1..=nodes {
            let ns = net.node(i);
            let (inner, outer) = (format!("{}n{i}", net.tag), format!("{}b{i}", net.tag));
            run(&["ip", "netns", "add", &ns]);
            run(&[
                "ip", "link", "add", &inner, "type", "veth", "peer", "name", &outer,
            ]);
            run(&["ip", "link", "set", &inner, "netns", &ns]);
            run(&["ip", "link", "set", &outer, "netns", &hub]);
            in_ns(&hub, &["ip", "link", "set", &outer, "master", "br0", "up"]);
            in_ns(&ns, &["ip", "link", "set", &inner, "name", "eth0"]);
            in_ns(
                &ns,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("{}/24", net.ip(i)),
                    "dev",
                    "eth0",
                ],
            );
            in_ns(&ns, &["ip", "link", "set", "eth0", "up"]);
            in_ns(&ns, &["ip", "link", "set", "lo", "up"]);
        }
        let hub_side = format!("{}x", net.tag);
        run(&[
            "ip",
            "link",
            "add",
            &net.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &hub_side,
        ]);
        run(&["ip", "link", "set", &hub_side, "netns", &hub]);
        in_ns(
            &hub,
            &["ip", "link", "set", &hub_side, "master", "br0", "up"],
        );
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", net.ip(254)),
            "dev",
            &net.host_if,
        ]);
        run(&["ip", "link", "set", &net.host_if, "up"]);
        net
    }

    pub(crate) fn hub(&self) -> String {
        format!("{}hub", self.tag)
    }

    pub(crate) fn node(&self, i: usize) -> String {
        format!("{}n{i}", self.tag)
    }

    pub(crate) fn ip(&self, i: usize) -> String {
        format!("10.{}.0.{i}", self.subnet)
    }

    pub(crate) fn swarm_addr(&self, i: usize) -> SocketAddr {
        format!("{}:7070", self.ip(i)).parse().unwrap()
    }

    /// The bad link: random UDP loss in the bridge and a rate cap on a node's egress.
    fn degrade(&self, loss_percent: u32, capped: &[usize]) {
        self.bridge_rules(
            "lossy",
            &[format!(
                "meta l4proto udp numgen random mod 100 < {loss_percent} counter drop"
            )],
        );
        for &i in capped {
            self.cap(i, "40mbit", "64kb", "100ms");
        }
    }

    /// A table of `rules` on the bridge's forward hook (in the hub namespace).
    pub(crate) fn bridge_rules(&self, table: &str, rules: &[String]) {
        let hub = self.hub();
        in_ns(&hub, &["nft", "add", "table", "bridge", table]);
        in_ns(
            &hub,
            &[
                "nft",
                "add",
                "chain",
                "bridge",
                table,
                "forward",
                "{ type filter hook forward priority 0; }",
            ],
        );
        for rule in rules {
            let mut args = vec!["nft", "add", "rule", "bridge", table, "forward"];
            args.extend(rule.split(' '));
            in_ns(&hub, &args);
        }
    }

    /// Cuts nodes `a` and `b` off from each other (both directions); both still
    /// reach everything else, the origin included.
    fn partition(&self, a: usize, b: usize) {
        let rules = [(a, b), (b, a)].map(|(from, to)| {
            format!(
                "ip saddr {} ip daddr {} counter drop",
                self.ip(from),
                self.ip(to)
            )
        });
        self.bridge_rules("partition", &rules);
    }

    /// Caps node `i`'s egress at `rate` with `tbf`, replacing any earlier cap. The old
    /// qdisc is deleted first, so what it had queued is dropped (QUIC repairs it),
    /// rather than draining at the new rate.
    pub(crate) fn cap(&self, i: usize, rate: &str, burst: &str, latency: &str) {
        let ns = self.node(i);
        let _ = Command::new("ip")
            .args([
                "netns", "exec", &ns, "tc", "qdisc", "del", "dev", "eth0", "root",
            ])
            .output();
        in_ns(
            &ns,
            &[
                "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", rate, "burst", burst,
                "latency", latency,
            ],
        );
    }

    /// Removes a table made by `bridge_rules` (a partition or loss healed).
    pub(crate) fn heal(&self, table: &str) {
        in_ns(&self.hub(), &["nft", "delete", "table", "bridge", table]);
    }

    /// Removes node `i`'s egress cap.
    pub(crate) fn uncap(&self, i: usize) {
        in_ns(
            &self.node(i),
            &["tc", "qdisc", "del", "dev", "eth0", "root"],
        );
    }

    fn dropped_packets(&self) -> u64 {
        let rules = in_ns(&self.hub(), &["nft", "list", "table", "bridge", "lossy"]);
        rules
            .split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// `fleet.test` as the node `i` resolves it (`ip netns exec` mounts this over /etc/hosts).
    pub(crate) fn set_hosts(&self, i: usize, members: &[usize]) {
        let dir = PathBuf::from(format!("/etc/netns/{}", self.node(i)));
        std::fs::create_dir_all(&dir).unwrap();
        let lines: String = members
            .iter()
            .map(|m| format!("{} fleet.test\n", self.ip(*m)))
            .collect();
        std::fs::write(dir.join("hosts"), format!("127.0.0.1 localhost\n{lines}")).unwrap();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 1..=self.nodes {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.node(i)])
                .status();
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.node(i)));
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.hub()])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
    }
}

fn prerequisites() -> Result<(), String> {
    if effective_uid() != 0 {
        return Err("not root".into());
    }
    for tool in ["ip", "nft", "tc"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Err(format!("{tool} is not installed"));
        }
    }
    Ok(())
}

/// The effective uid, read from procfs (the workspace forbids `unsafe`).
fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|uid| uid.parse().ok())
        .unwrap_or(u32::MAX)
}

pub(crate) struct Member {
    pub(crate) proc: Proc,
    pub(crate) http: String,
    admin: String,
    _data: tempfile::TempDir,
}

pub(crate) fn start_member(net: &Net, fleet: &mut Fleet, i: usize, peers: &str) -> Member {
    start_member_with(net, fleet, i, peers, &[])
}

fn start_member_with(
    net: &Net,
    fleet: &mut Fleet,
    i: usize,
    peers: &str,
    extra: &[(&str, &str)],
) -> Member {
    let data = tempfile::TempDir::new().unwrap();
    let env = fleet.env(&[]);
    let mut env: Vec<(&str, &str)> = env
        .iter()
        .filter(|(k, _)| k != "FLEETCACHE_SWARM_PEERS" && k != "FLEETCACHE_SWARM_LISTEN")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let swarm_listen = net.swarm_addr(i).to_string();
    env.extend([
        ("FLEETCACHE_SWARM_LISTEN", swarm_listen.as_str()),
        ("FLEETCACHE_SWARM_PEERS", peers),
        ("FLEETCACHE_SWARM_RESOLVE_INTERVAL", "300ms"),
        ("FLEETCACHE_SWARM_PEER_TIMEOUT", "3s"),
        ("FLEETCACHE_ADMIN_TOKEN", TOKEN),
    ]);
    env.extend_from_slice(extra);
    let mut launcher = Command::new("ip");
    launcher.args(["netns", "exec", &net.node(i)]).arg(bin());
    let (http, admin) = (format!("{}:8080", net.ip(i)), format!("{}:8081", net.ip(i)));
    let proc = Proc::serve_via(launcher, &http, &admin, data.path(), &[], &env);
    Member {
        proc,
        http: format!("http://{http}"),
        admin: format!("http://{admin}"),
        _data: data,
    }
}

impl Member {
    pub(crate) async fn admin(&self, method: Method, path: &str, body: Bytes) -> Reply {
        let auth = format!("Bearer {TOKEN}");
        request(
            &client(),
            method,
            &format!("{}{path}", self.admin),
            &[("authorization", &auth)],
            body,
        )
        .await
    }

    /// Its node name, from its own `/peers`.
    pub(crate) async fn name(&self) -> String {
        let json = self.admin(Method::GET, "/peers", Bytes::new()).await.json();
        json["name"].as_str().unwrap().to_owned()
    }

    async fn peers(&self) -> Vec<(String, String)> {
        let json = self.admin(Method::GET, "/peers", Bytes::new()).await.json();
        json["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["addr"].as_str().unwrap().to_owned(),
                    p["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Verified bytes received from each of `peers`, from the metrics.
    pub(crate) async fn received_from(&self, peers: &[SocketAddr]) -> Vec<f64> {
        let metrics = self.admin(Method::GET, "/metrics", Bytes::new()).await;
        let metrics = String::from_utf8_lossy(&metrics.body).into_owned();
        peers
            .iter()
            .map(|addr| {
                let sample = format!("fleetcache_peer_bytes_received_total{{peer=\"{addr}\"}}");
                metric_value(&metrics, &sample).unwrap_or(0.0)
            })
            .collect()
    }

    /// One sample from its metrics (0 if absent).
    pub(crate) async fn metric(&self, sample: &str) -> f64 {
        let metrics = self.admin(Method::GET, "/metrics", Bytes::new()).await;
        metric_value(&String::from_utf8_lossy(&metrics.body), sample).unwrap_or(0.0)
    }

    pub(crate) async fn peer_state(&self, addr: SocketAddr) -> Option<String> {
        let addr = addr.to_string();
        self.peers()
            .await
            .into_iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, s)| s)
    }
}

/// Whether the network-namespace tests can run here; panics when they cannot
/// and skipping was not asked for.
pub(crate) fn can_run() -> bool {
    match prerequisites() {
        Ok(()) => true,
        Err(missing) if std::env::var_os("FLEETCACHE_SKIP_NETNS").is_some() => {
            eprintln!("skipping the network-namespace test: {missing}");
            false
        }
        Err(missing) => panic!(
            "the network-namespace test needs root, ip, nft and tc ({missing}); set FLEETCACHE_SKIP_NETNS=1 to skip it"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_across_namespaces_survives_a_lossy_capped_link() {
    if !can_run() {
        return;
    }
    let net = Net::create();
    net.degrade(5, &[1, 2]);
    let mut fleet = Fleet::new();
    // Node 3 finds every member, itself included, through one name.
    net.set_hosts(3, &[1, 2, 3]);
    let holder1 = start_member(&net, &mut fleet, 1, "");
    let holder2 = start_member(&net, &mut fleet, 2, "");
    let requester = start_member(&net, &mut fleet, 3, "fleet.test:7070");

    eventually(
        "both holders up, self recognised",
        Duration::from_secs(30),
        async || {
            let peers = requester.peers().await;
            let state = |i: usize| {
                let addr = net.swarm_addr(i).to_string();
                peers
                    .iter()
                    .find(|(a, _)| *a == addr)
                    .map(|(_, s)| s.clone())
            };
            state(1).as_deref() == Some("up")
                && state(2).as_deref() == Some("up")
                && state(3).as_deref() == Some("self")
        },
    )
    .await;

    // 8 MiB at 40 Mbit/s with 5 % loss: a couple of seconds, every packet loss repaired.
    let data = Bytes::from(pattern(8 << 20, 9));
    let hash = holder1
        .admin(Method::POST, "/blobs", data.clone())
        .await
        .json()["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    holder2.admin(Method::POST, "/blobs", data.clone()).await;
    let reply = request(
        &client(),
        Method::GET,
        &format!("{}/blake3/{hash}", requester.http),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body == data, "bytes differ across the lossy link");
    assert_eq!(
        reply.header("cache-status"),
        Some("fleetcache; fwd=miss; stored; detail=peer")
    );
    assert!(net.dropped_packets() > 0, "the link dropped nothing");

    // Kill the holder serving the transfer, mid-transfer; the other finishes it. The
    // requester asks the first holder in rendezvous order, but on this link a hedge
    // may move the transfer on, so the test watches who actually sends bytes.
    let second = Bytes::from(pattern(12 << 20, 10));
    let second_hash = holder1
        .admin(Method::POST, "/blobs", second.clone())
        .await
        .json()["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    holder2.admin(Method::POST, "/blobs", second.clone()).await;
    let holders = [net.swarm_addr(1), net.swarm_addr(2)];
    let before = requester.received_from(&holders).await;
    let url = format!("{}/blake3/{second_hash}", requester.http);
    let download =
        tokio::spawn(async move { request(&client(), Method::GET, &url, &[], Bytes::new()).await });
    let mut serving = None;
    eventually("bytes flowing", Duration::from_secs(30), async || {
        let now = requester.received_from(&holders).await;
        let sent = [now[0] - before[0], now[1] - before[1]];
        if sent[0] > 0.0 || sent[1] > 0.0 {
            serving = Some(usize::from(sent[1] > sent[0]));
        }
        serving.is_some()
    })
    .await;
    let (order, first, survivor) = match serving {
        Some(0) => (holders, holder1, holder2),
        _ => ([holders[1], holders[0]], holder2, holder1),
    };
    let before = if order == holders {
        before
    } else {
        vec![before[1], before[0]]
    };
    first.proc.kill9();
    let reply = download.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.body == second,
        "download corrupted across the failover"
    );
    let after = requester.received_from(&order).await;
    let (from_first, from_survivor) = (after[0] - before[0], after[1] - before[1]);
    assert!(
        from_first > 0.0,
        "the killed holder sent nothing: killed too early"
    );
    assert!(
        from_survivor > 0.0 && from_survivor < second.len() as f64,
        "the survivor should finish the transfer, not restart it: {from_survivor}"
    );
    eventually(
        "dead holder marked down",
        Duration::from_secs(20),
        async || requester.peer_state(order[0]).await.as_deref() == Some("down"),
    )
    .await;

    // The name stops returning the dead holder: it leaves the peer list.
    let survivor_index = if order[1] == net.swarm_addr(1) { 1 } else { 2 };
    net.set_hosts(3, &[survivor_index, 3]);
    eventually("re-resolved", Duration::from_secs(20), async || {
        requester.peer_state(order[0]).await.is_none()
    })
    .await;
    assert_eq!(requester.peer_state(order[1]).await.as_deref(), Some("up"));
    drop(survivor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_owner_sends_its_peers_to_the_origin() {
    if !can_run() {
        return;
    }
    let net = Net::create();
    let origin = crate::origin_server::TestOrigin::start_on(&format!("{}:0", net.ip(254))).await;
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!(
            "[[origin]]\nurl = \"{}\"\nfirst_byte_timeout = \"2s\"\n",
            origin.url()
        ),
    )
    .unwrap();
    let config_path = config.path().display().to_string();
    let extra = [("FLEETCACHE_CONFIG", config_path.as_str())];
    let mut fleet = Fleet::new();
    let owner = start_member_with(&net, &mut fleet, 1, "", &extra);
    let peers = net.swarm_addr(1).to_string();
    let asker = start_member_with(&net, &mut fleet, 2, &peers, &extra);
    eventually("the owner is up", Duration::from_secs(30), async || {
        asker.peer_state(net.swarm_addr(1)).await.as_deref() == Some("up")
    })
    .await;
    let (owner_name, asker_name) = (owner.name().await, asker.name().await);
    let host = "cdn.test";
    let path = (0..10_000)
        .map(|i| format!("/partitioned/{i}"))
        .find(|path| url_owners(path, host, &[&owner_name, &asker_name])[0] == owner_name)
        .unwrap();
    origin.route(&path, |_| {
        crate::origin_server::Scripted::ok("from the origin").header("cache-control", "max-age=60")
    });

    net.partition(1, 2);
    let reply = request(
        &client(),
        Method::GET,
        &format!("{}{path}", asker.http),
        &[("host", host)],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"from the origin");
    let cache_status = reply.header("cache-status").unwrap_or_default();
    assert!(cache_status.contains("detail=origin"), "{reply:?}");
    assert_eq!(origin.hits(&path), 1, "the owner never got the request");
    // The owner was either still thought up (the ask timed out) or already
    // seen down; either way the asker went to the origin itself.
    let metrics = asker.admin(Method::GET, "/metrics", Bytes::new()).await;
    let metrics = String::from_utf8_lossy(&metrics.body).into_owned();
    let fell_back: f64 = ["timeout", "not-connected", "transport"]
        .iter()
        .map(|result| {
            let sample = format!("fleetcache_owner_requests_total{{result=\"{result}\"}}");
            metric_value(&metrics, &sample).unwrap_or(0.0)
        })
        .sum();
    let asked_owner = metrics.contains("fleetcache_owner_requests_total{");
    assert!(
        fell_back == 1.0 || !asked_owner,
        "the asker should have fallen back to the origin: {metrics}"
    );
}

/// Hedging across hosts: two holders of two 64 MiB objects, one of them (ranked first
/// for both) throttled with `tbf` to a crawl of 1 Mbit/s, at which either object would
/// take nine minutes. First it slows down mid-transfer, then it is asked while already
/// crawling (the size proof and first group). Both downloads finish within a deadline
/// that only the healthy holder can meet, with correct bytes, nearly all of them from
/// the healthy holder, and hedges counted against the slow one. Nothing is timed: the
/// counters say who sent what.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_throttled_to_a_crawl_is_hedged_around() {
    if !can_run() {
        return;
    }
    const SIZE: usize = 64 << 20;
    let net = Net::create();
    let mut fleet = Fleet::new();
    net.set_hosts(3, &[1, 2]);
    let slow = start_member(&net, &mut fleet, 1, "");
    let fast = start_member(&net, &mut fleet, 2, "");
    let requester = start_member(&net, &mut fleet, 3, "fleet.test:7070");
    let (slow_addr, fast_addr) = (net.swarm_addr(1), net.swarm_addr(2));
    let both_up = async || {
        requester.peer_state(slow_addr).await.as_deref() == Some("up")
            && requester.peer_state(fast_addr).await.as_deref() == Some("up")
    };
    eventually("both holders up", Duration::from_secs(30), both_up).await;

    // Objects whose hash the slow holder owns, so the requester asks it first.
    let names: Vec<NodeName> = [slow.name().await, fast.name().await]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    let owned_by_slow = (0..=255u8).filter_map(|seed| {
        let data = pattern(SIZE, seed);
        let mut order = names.clone();
        fleetcache_swarm::rendezvous_rank(blake3::hash(&data).as_bytes(), &mut order);
        (order[0] == names[0]).then(|| Bytes::from(data))
    });
    let objects: Vec<Bytes> = owned_by_slow.take(2).collect();
    let mut hashes = Vec::new();
    for data in &objects {
        let reply = slow.admin(Method::POST, "/blobs", data.clone()).await;
        hashes.push(reply.json()["hash"].as_str().unwrap().to_owned());
        fast.admin(Method::POST, "/blobs", data.clone()).await;
    }
    let hedges_on_slow = format!("fleetcache_peer_hedges_total{{peer=\"{slow_addr}\"}}");
    let fetch = |hash: &str| {
        let url = format!("{}/blake3/{hash}", requester.http);
        // At the crawl the slow holder alone would need over eight minutes.
        tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_secs(120),
                request(&client(), Method::GET, &url, &[], Bytes::new()),
            )
            .await
            .expect("the download did not finish at the healthy holder's speed")
        })
    };

    // 1. Mid-transfer. At 100 Mbit/s the slow holder takes seconds over the object;
    // once its bytes flow it drops to the crawl.
    net.cap(1, "100mbit", "64kb", "20ms");
    let before = requester.received_from(&[slow_addr, fast_addr]).await;
    let download = fetch(&hashes[0]);
    eventually(
        "the slow holder serving",
        Duration::from_secs(30),
        async || requester.received_from(&[slow_addr]).await[0] > before[0],
    )
    .await;
    net.cap(1, "1mbit", "8kb", "200ms");
    let reply = download.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.body == objects[0],
        "bytes differ after hedging mid-transfer"
    );
    let after = requester.received_from(&[slow_addr, fast_addr]).await;
    let (from_slow, from_fast) = (after[0] - before[0], after[1] - before[1]);
    assert_eq!(
        from_slow + from_fast,
        SIZE as f64,
        "a byte was delivered twice"
    );
    assert!(
        from_fast > from_slow,
        "the healthy holder should carry the transfer: {from_fast} vs {from_slow}"
    );
    let hedged = requester.metric(&hedges_on_slow).await;
    assert!(
        hedged >= 1.0,
        "no hedge counted against the crawling holder"
    );

    // 2. Already crawling when asked: its size proof, or else its first group, is
    // hedged.
    eventually("both holders up again", Duration::from_secs(30), both_up).await;
    let before = after;
    let reply = fetch(&hashes[1]).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.body == objects[1],
        "bytes differ after a hedged start"
    );
    let after = requester.received_from(&[slow_addr, fast_addr]).await;
    let (from_slow, from_fast) = (after[0] - before[0], after[1] - before[1]);
    assert_eq!(
        from_slow + from_fast,
        SIZE as f64,
        "a byte was delivered twice"
    );
    assert!(
        from_fast >= 0.9 * SIZE as f64,
        "the healthy holder should carry the transfer: {from_fast} vs {from_slow}"
    );
    assert!(
        requester.metric(&hedges_on_slow).await > hedged,
        "no hedge counted against the crawling holder"
    );
    assert!(requester.metric("fleetcache_swarm_hedges_won_total").await >= 2.0);
}
