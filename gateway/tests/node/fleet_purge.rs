//! Fleet-wide purges: three real `fleetcache` processes in front of a real
//! origin, talking real QUIC. A purge on one node reaches every node; a node
//! stopped during a purge learns it when it comes back; purges survive a
//! restart of the node keeping them; a node away longer than the retention
//! drops its URL entries; hostile purge messages are declined.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use fleetcache_store::{Store, StoreOptions};
use fleetcache_swarm::{Owner, PeerError, PeerHandle, Swarm, SwarmOptions};
use http::{Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;

use crate::origin_server::{Scripted, TestOrigin};
use crate::support::*;

const HOST: &str = "shop.example";
const PATHS: [&str; 5] = ["/p/a", "/p/b", "/q/c", "/tagged/1", "/tagged/2"];

/// A fleet member run as a child process, on a swarm port it gets back when
/// restarted, with the same data dir and certificate.
struct Member {
    data: TempDir,
    env: Vec<(String, String)>,
    proc: Option<Proc>,
    client: HttpClient,
}

impl Member {
    fn start(&mut self) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.proc = Some(Proc::serve(self.data.path(), &env));
    }

    /// SIGTERM and wait: a clean stop.
    fn stop(&mut self) {
        if let Some(proc) = self.proc.take() {
            assert_eq!(proc.terminate(), Some(0), "clean exit");
        }
    }

    fn proc(&self) -> &Proc {
        self.proc.as_ref().expect("member is running")
    }

    async fn get(&self, path: &str) -> Reply {
        let url = format!("http://{}{path}", self.proc().public);
        request(
            &self.client,
            Method::GET,
            &url,
            &[("host", HOST)],
            Bytes::new(),
        )
        .await
    }

    async fn admin(&self, method: Method, path: &str, body: &str) -> Reply {
        let url = format!("http://{}{path}", self.proc().admin);
        request(
            &self.client,
            method,
            &url,
            &[("content-type", "application/json")],
            Bytes::from(body.to_owned()),
        )
        .await
    }

    async fn purge(&self, body: &str) -> Value {
        let reply = self.admin(Method::POST, "/purge", body).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        reply.json()
    }

    async fn name(&self) -> String {
        let peers = self.admin(Method::GET, "/peers", "").await.json();
        peers["name"].as_str().expect("a node name").to_owned()
    }

    async fn peers_up(&self) -> usize {
        let peers = self.admin(Method::GET, "/peers", "").await.json();
        peers["peers"]
            .as_array()
            .map_or(0, |p| p.iter().filter(|p| p["state"] == "up").count())
    }

    async fn metric(&self, sample: &str) -> f64 {
        let text = self.admin(Method::GET, "/metrics", "").await;
        metric_value(&String::from_utf8_lossy(&text.body), sample).unwrap_or(0.0)
    }

    async fn hit(&self, path: &str) -> bool {
        let reply = self.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {reply:?}");
        // With the nodes' logs on, show each answer to line it up with them.
        if std::env::var_os("TEST_CHILD_LOGS").is_some() {
            eprintln!("GET {path}: {:?}", reply.header("cache-status"));
        }
        reply
            .header("cache-status")
            .is_some_and(|s| s.starts_with("fleetcache; hit"))
    }

    /// GETs every path until each is a hit (its fill committed).
    async fn warm(&self, paths: &[&str]) {
        for path in paths {
            eventually(
                &format!("{path} stored"),
                Duration::from_secs(10),
                async || self.hit(path).await,
            )
            .await;
        }
    }
}

/// UDP ports that are free now, for swarm listeners that must survive restarts.
fn free_ports(n: usize) -> Vec<u16> {
    let sockets: Vec<std::net::UdpSocket> = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

/// `n` members in front of `origin`, each configured with every other one;
/// the fleet's certificates live as long as the `Fleet`.
fn fleet_of(n: usize, origin: &TestOrigin, extra: &[(&str, &str)]) -> (Fleet, Vec<Member>) {
    let mut fleet = Fleet::new();
    let ports = free_ports(n);
    let addrs: Vec<SocketAddr> = ports
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    let members = (0..n)
        .map(|i| {
            let others: Vec<SocketAddr> = addrs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| *a)
                .collect();
            let mut env = fleet.env(&others);
            env.push(("FLEETCACHE_SWARM_LISTEN".into(), addrs[i].to_string()));
            env.push(("FLEETCACHE_ORIGIN".into(), origin.url()));
            for (k, v) in extra {
                env.push(((*k).to_owned(), (*v).to_owned()));
            }
            Member {
                data: TempDir::new().unwrap(),
                env,
                proc: None,
                client: client(),
            }
        })
        .collect();
    (fleet, members)
}

async fn tagged_origin() -> TestOrigin {
    let origin = TestOrigin::start().await;
    for path in PATHS {
        let tag = if path.starts_with("/tagged/") {
            "group-x all"
        } else {
            "all"
        };
        origin.route(path, move |seen| {
            Scripted::ok(format!("{} {}", seen.target, seen.n))
                .header("cache-control", "max-age=300")
                .header("surrogate-key", tag)
        });
    }
    origin
}

/// Each member's answer to each path, all hits: what a purge must take away.
async fn bodies(fleet: &[Member], paths: &[&str]) -> Vec<Vec<Bytes>> {
    let mut all = Vec::new();
    for member in fleet {
        member.warm(paths).await;
        let mut mine = Vec::new();
        for path in paths {
            mine.push(member.get(path).await.body);
        }
        all.push(mine);
    }
    all
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|entry| entry["node"].as_str().expect("node").to_owned())
        .collect();
    names.sort();
    names
}

fn sorted(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_reach_every_node_and_nodes_that_were_down_learn_them() {
    let origin = tagged_origin().await;
    let (_certs, mut fleet) = fleet_of(3, &origin, &[]);
    for member in &mut fleet {
        member.start();
    }
    for member in &fleet {
        eventually("peers up", Duration::from_secs(15), async || {
            member.peers_up().await == 2
        })
        .await;
    }
    let mut all = Vec::new();
    for member in &fleet {
        all.push(member.name().await);
    }
    let all = sorted(all);
    for member in &fleet {
        member.warm(&PATHS).await;
    }

    // By URL, on the first node: every node confirms, and none serves the
    // purged entry again. (A node may well hit afterwards: a miss elsewhere
    // goes through the URL's owner, which stores the new answer. The origin
    // numbers its answers, so a body seen before is the purged entry.)
    let kept = bodies(&fleet, &["/p/a", "/p/b"]).await;
    let before = origin.hits("/p/a");
    let answer = fleet[0]
        .purge(&format!("{{\"urls\": [\"http://{HOST}/p/a\"]}}"))
        .await;
    assert_eq!(names(&answer["confirmed"]), all, "{answer}");
    assert_eq!(answer["unconfirmed"], Value::Array(Vec::new()), "{answer}");
    assert_eq!(answer["removed"], 1, "{answer}");
    for entry in answer["confirmed"].as_array().unwrap() {
        assert_eq!(entry["removed"], 1, "{answer}");
    }
    for (member, kept) in fleet.iter().zip(&kept) {
        assert_ne!(
            member.get("/p/a").await.body,
            kept[0],
            "a purged entry was served"
        );
        assert!(member.hit("/p/b").await);
        assert_eq!(member.get("/p/b").await.body, kept[1]);
    }
    assert!(origin.hits("/p/a") > before);
    assert!(
        fleet[1]
            .metric("fleetcache_fleet_purges_applied_total{via=\"push\"}")
            .await
            >= 1.0
    );

    // By prefix, on the second node.
    for member in &fleet {
        member.warm(&["/p/a"]).await;
    }
    let kept = bodies(&fleet, &["/p/a", "/p/b", "/q/c"]).await;
    let answer = fleet[1].purge("{\"prefixes\": [\"/p/\"]}").await;
    assert_eq!(names(&answer["confirmed"]), all, "{answer}");
    for (member, kept) in fleet.iter().zip(&kept) {
        assert_ne!(member.get("/p/a").await.body, kept[0]);
        assert_ne!(member.get("/p/b").await.body, kept[1]);
        assert!(member.hit("/q/c").await);
        assert_eq!(member.get("/q/c").await.body, kept[2]);
    }

    // By surrogate key, on the third node.
    let kept = bodies(&fleet, &["/tagged/1", "/tagged/2"]).await;
    let answer = fleet[2].purge("{\"surrogate_keys\": [\"group-x\"]}").await;
    assert_eq!(names(&answer["confirmed"]), all, "{answer}");
    for (member, kept) in fleet.iter().zip(&kept) {
        assert_ne!(member.get("/tagged/1").await.body, kept[0]);
        assert_ne!(member.get("/tagged/2").await.body, kept[1]);
        assert!(member.hit("/q/c").await);
    }
    for member in &fleet {
        member.warm(&PATHS).await;
    }

    // The third node is stopped during a purge: the answer says it did not confirm.
    let away = fleet[2].name().await;
    fleet[2].stop();
    eventually(
        "the others see it down",
        Duration::from_secs(15),
        async || fleet[0].peers_up().await == 1 && fleet[1].peers_up().await == 1,
    )
    .await;
    let answer = fleet[0]
        .purge(&format!(
            "{{\"urls\": [\"http://{HOST}/q/c\"], \"surrogate_keys\": [\"group-x\"]}}"
        ))
        .await;
    assert_eq!(names(&answer["unconfirmed"]), [away], "{answer}");
    assert_eq!(answer["unconfirmed"][0]["error"], "down", "{answer}");
    assert_eq!(answer["confirmed"].as_array().unwrap().len(), 2, "{answer}");

    // The first node keeps the purges across a restart: with the second node
    // gone too, it is the only one that can tell the third what it missed.
    fleet[1].stop();
    fleet[0].stop();
    fleet[0].start();
    assert!(
        fleet[0].metric("fleetcache_fleet_purges_kept").await >= 4.0,
        "purges lost in a restart"
    );

    // The third node comes back on its old data: it reads the first node's
    // log before it serves, and never serves what was purged meanwhile.
    fleet[2].start();
    let tagged_before = origin.hits("/tagged/1");
    assert!(
        !fleet[2].hit("/q/c").await,
        "served an entry purged while it was away"
    );
    assert!(!fleet[2].hit("/tagged/1").await);
    assert!(origin.hits("/tagged/1") > tagged_before);
    // What was not purged is still there: coming back is not a flush.
    assert!(fleet[2].hit("/p/b").await);
    assert!(
        fleet[2]
            .metric("fleetcache_fleet_purges_applied_total{via=\"log\"}")
            .await
            >= 1.0
    );
    assert_eq!(
        fleet[2]
            .metric("fleetcache_fleet_purge_flushes_total")
            .await,
        0.0
    );
    for member in &mut fleet {
        member.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_away_longer_than_the_retention_drops_its_url_entries() {
    let origin = tagged_origin().await;
    let (_certs, mut fleet) = fleet_of(2, &origin, &[("FLEETCACHE_SWARM_PURGE_RETENTION", "2s")]);
    for member in &mut fleet {
        member.start();
    }
    for member in &fleet {
        eventually("peers up", Duration::from_secs(15), async || {
            member.peers_up().await == 1
        })
        .await;
    }
    fleet[1].warm(&["/p/a", "/q/c"]).await;
    fleet[1].stop();
    fleet[0].purge("{\"urls\": [\"/p/a\"]}").await;
    // The purge outlives its retention and is dropped.
    eventually(
        "the purge is dropped",
        Duration::from_secs(20),
        async || fleet[0].metric("fleetcache_fleet_purges_kept").await == 0.0,
    )
    .await;
    fleet[1].start();
    // Nothing tells it which of its entries were purged: all of them go.
    assert!(!fleet[1].hit("/q/c").await);
    assert!(!fleet[1].hit("/p/a").await);
    assert_eq!(
        fleet[1]
            .metric("fleetcache_fleet_purge_flushes_total")
            .await,
        1.0
    );
    for member in &mut fleet {
        member.stop();
    }
}

/// A fleet member that is not a node: a bare swarm, to send whatever it likes.
async fn bare_swarm(fleet: &mut Fleet, peer: SocketAddr) -> (Swarm, PeerHandle, TempDir) {
    let dir = TempDir::new().unwrap();
    let store = Store::open(StoreOptions {
        data_dir: dir.path().to_owned(),
        capacity: 1 << 20,
        high_watermark: 0.9,
        low_watermark: 0.8,
        memory_cache: 0,
    })
    .unwrap();
    let swarm = Swarm::start(SwarmOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        identity: fleet.identity(),
        peers: vec![peer.to_string()],
        store,
        peer_timeout: Duration::from_secs(3),
        ping_interval: Duration::from_millis(100),
        resolve_interval: Duration::from_secs(30),
        max_uploads: 4,
    })
    .unwrap();
    let mut handle = None;
    eventually("the node is up", Duration::from_secs(15), async || {
        handle = swarm.owners(&[]).into_iter().find_map(|o| match o {
            Owner::Peer(p) => Some(p),
            Owner::Local => None,
        });
        handle.is_some()
    })
    .await;
    (swarm, handle.unwrap(), dir)
}

/// A PURGE message as a node would send it, made now.
fn push(id: &str, origin: &str, select: Value) -> Bytes {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let message = serde_json::json!({
        "v": 1,
        "purge": {"id": id, "created": created, "origin": origin, "select": select},
    });
    Bytes::from(serde_json::to_vec(&message).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_purge_messages_are_declined_and_the_node_keeps_working() {
    let origin = tagged_origin().await;
    let mut fleet = Fleet::new();
    let env = fleet.env(&[]);
    let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let origin_url = origin.url();
    pairs.push(("FLEETCACHE_ORIGIN", &origin_url));
    let node = TestNode::start_with(&pairs).await;
    let warm = async |path: &str| {
        node.get_with(path, &[("host", HOST)]).await;
        node.settle().await;
    };
    warm("/p/a").await;
    let (swarm, peer, _dir) = bare_swarm(&mut fleet, node.swarm.unwrap()).await;
    let me = swarm.name().to_string();
    let timeout = Duration::from_secs(5);
    let id = "0123456789abcdef0123456789abcdef";

    let mut garbage: Vec<Bytes> = vec![
        Bytes::new(),
        Bytes::from_static(b"\xff\x00garbage"),
        Bytes::from_static(b"{\"v\":1}"),
        Bytes::from(vec![b'['; 60_000]),
        // Another format version.
        Bytes::from(serde_json::to_vec(&serde_json::json!({"v": 2, "purge": {}})).unwrap()),
        // Selects nothing, or something no purge body may.
        push(id, &me, serde_json::json!({})),
        push(id, &me, serde_json::json!({"urls": ["ftp://x/y"]})),
        push(
            id,
            &me,
            serde_json::json!({"surrogate_keys": ["two words"]}),
        ),
        push("not-hex", &me, serde_json::json!({"urls": ["/p/a"]})),
        // A purge made by someone else: only its origin may send it.
        push(id, "node-99", serde_json::json!({"urls": ["/p/a"]})),
    ];
    garbage.push(push(
        id,
        &me,
        serde_json::json!({"prefixes": ["/"], "extra": 1}),
    ));
    for message in garbage {
        let result = swarm.purge(&peer, message.clone(), timeout).await;
        assert!(
            matches!(result, Err(PeerError::NotFound)),
            "{message:?}: {result:?}"
        );
    }
    for message in [
        "",
        "\u{0}",
        "[[[[",
        "{\"v\":2,\"after\":null}",
        "{\"v\":1,\"after\":-1}",
        "{\"v\":1,\"after\":\"1\"}",
        "{\"v\":1,\"since\":5}",
    ] {
        let result = swarm
            .purge_log(&peer, Bytes::from(message.to_owned()), timeout)
            .await;
        assert!(
            matches!(result, Err(PeerError::NotFound)),
            "{message:?}: {result:?}"
        );
    }
    let declined = "fleetcache_fleet_purge_messages_declined_total";
    assert_eq!(
        node.metric(&format!("{declined}{{kind=\"purge\"}}")).await,
        11.0
    );
    assert_eq!(
        node.metric(&format!("{declined}{{kind=\"purge_log\"}}"))
            .await,
        7.0
    );
    // Nothing was removed, and the node still serves and purges.
    let hit = node.get_with("/p/a", &[("host", HOST)]).await;
    assert!(
        hit.header("cache-status")
            .unwrap()
            .starts_with("fleetcache; hit"),
        "{hit:?}"
    );

    // A well-formed purge from this member is applied once.
    let good = push(id, &me, serde_json::json!({"urls": ["/p/a"]}));
    let answer = swarm.purge(&peer, good.clone(), timeout).await.unwrap();
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"v": 1, "applied": true, "removed": 1})
    );
    let again = swarm.purge(&peer, good, timeout).await.unwrap();
    let again: Value = serde_json::from_slice(&again).unwrap();
    assert_eq!(again["applied"], false);
    let miss = node.get_with("/p/a", &[("host", HOST)]).await;
    assert!(
        !miss.header("cache-status").unwrap().contains("hit"),
        "{miss:?}"
    );

    // Its log holds it; asking again from its `through` finds nothing new.
    let log = swarm
        .purge_log(
            &peer,
            Bytes::from_static(b"{\"v\":1,\"after\":null}"),
            timeout,
        )
        .await
        .unwrap();
    let log: Value = serde_json::from_slice(&log).unwrap();
    assert_eq!(log["purges"][0]["id"], id, "{log}");
    assert_eq!(log["more"], false);
    let after = format!("{{\"v\":1,\"after\":{}}}", log["through"]);
    let rest = swarm
        .purge_log(&peer, Bytes::from(after), timeout)
        .await
        .unwrap();
    let rest: Value = serde_json::from_slice(&rest).unwrap();
    assert_eq!(rest["purges"], Value::Array(Vec::new()), "{rest}");
    swarm.shutdown();
}
