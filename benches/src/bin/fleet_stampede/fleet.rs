//! The fleetcache side: N `fleetcache serve` processes on loopback, each in
//! origin mode in front of the same origin and joined into one swarm. The
//! fleet PKI comes from the `fleetcache cert` subcommands (a CA, then one
//! node certificate per node, each with its own node name); each node's
//! config file lists the others' swarm addresses as peers. A fleet is ready
//! when every node's admin `/peers` shows every other node up.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use fleetcache_benches::process;
use fleetcache_benches::{http1, interrupt, servers};
use serde_json::Value;

use crate::cluster::{Cluster, Member, Side};

/// How long a fleet's nodes get to see each other up.
const PEERS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `fleetcache cert` gets.
const CERT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the fleet needs.
#[derive(Debug)]
pub(crate) struct FleetSpec<'a> {
    pub(crate) binary: &'a Path,
    /// Every node is pinned to this CPU.
    pub(crate) cpu: usize,
    /// Certificates, configs, stores and logs go here.
    pub(crate) dir: &'a Path,
    pub(crate) origin: SocketAddr,
    pub(crate) nodes: usize,
    /// Each node's store capacity, bytes.
    pub(crate) capacity: u64,
}

/// A fleetcache node's admin listener and its name in the fleet.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    pub(crate) addr: SocketAddr,
    pub(crate) name: String,
}

/// One node's config file.
#[derive(Debug)]
struct NodeConfig<'a> {
    public: SocketAddr,
    admin: SocketAddr,
    swarm: SocketAddr,
    peers: Vec<SocketAddr>,
    cert_dir: &'a Path,
    data_dir: &'a Path,
    capacity: u64,
    origin: SocketAddr,
}

impl NodeConfig<'_> {
    fn render(&self) -> String {
        let peers: Vec<String> = self
            .peers
            .iter()
            .map(|p| toml_string(&p.to_string()))
            .collect();
        format!(
            "# Written by {program}: one node of the fleet.\n\
             [http]\n\
             listen = \"{public}\"\n\
             \n\
             [admin]\n\
             listen = \"{admin}\"\n\
             \n\
             [store]\n\
             data_dir = {data_dir}\n\
             capacity = {capacity}\n\
             \n\
             [swarm]\n\
             listen = \"{swarm}\"\n\
             peers = [{peers}]\n\
             cert_dir = {cert_dir}\n\
             \n\
             [log]\n\
             level = \"warn\"\n\
             \n\
             [[origin]]\n\
             url = \"http://{origin}\"\n",
            program = crate::PROGRAM,
            public = self.public,
            admin = self.admin,
            data_dir = toml_string(&self.data_dir.to_string_lossy()),
            capacity = self.capacity,
            swarm = self.swarm,
            peers = peers.join(", "),
            cert_dir = toml_string(&self.cert_dir.to_string_lossy()),
            origin = self.origin,
        )
    }
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs `fleetcache cert …` with `args`, bounded.
fn cert(binary: &Path, args: &[&std::ffi::OsStr], log: &Path, what: &str) -> Result<()> {
    let mut command = process::orphan_proof(binary);
    command.arg("cert").args(args);
    process::run_to_completion(what, command, log.to_owned(), CERT_TIMEOUT)
}

/// Makes the fleet PKI and configs, starts the nodes and waits until they
/// all see each other up.
pub(crate) fn start(spec: &FleetSpec<'_>) -> Result<Cluster> {
    let n = spec.nodes;
    std::fs::create_dir_all(spec.dir)
        .with_context(|| format!("creating {}", spec.dir.display()))?;
    let tcp = process::free_tcp_ports(2 * n)?;
    let (public, admin) = tcp.split_at(n);
    let swarm = process::free_udp_ports(n)?;

    let ca = spec.dir.join("fleet-ca");
    eprintln!("making the fleet CA and {n} node certificates (fleetcache cert)");
    cert(
        spec.binary,
        &["ca".as_ref(), "--out".as_ref(), ca.as_os_str()],
        &spec.dir.join("cert-ca.log"),
        "fleetcache cert ca",
    )?;

    let mut configs = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("node-{}", i + 1);
        let node_dir = spec.dir.join(&name);
        let cert_dir = node_dir.join("certs");
        cert(
            spec.binary,
            &[
                "node".as_ref(),
                "--ca".as_ref(),
                ca.as_os_str(),
                "--name".as_ref(),
                name.as_ref(),
                "--out".as_ref(),
                cert_dir.as_os_str(),
            ],
            &spec.dir.join(format!("cert-{name}.log")),
            "fleetcache cert node",
        )?;
        let config = NodeConfig {
            public: public[i],
            admin: admin[i],
            swarm: swarm[i],
            peers: (0..n).filter(|&j| j != i).map(|j| swarm[j]).collect(),
            cert_dir: &cert_dir,
            data_dir: &node_dir.join("data"),
            capacity: spec.capacity,
            origin: spec.origin,
        };
        let path = node_dir.join("fleetcache.toml");
        std::fs::write(&path, config.render())
            .with_context(|| format!("writing {}", path.display()))?;
        configs.push((name, node_dir, path));
    }

    let mut members = Vec::with_capacity(n);
    for (i, (name, node_dir, config)) in configs.into_iter().enumerate() {
        eprintln!(
            "starting fleetcache {name} (origin mode, swarm {}) on CPU {}",
            swarm[i], spec.cpu
        );
        let server = servers::start_fleetcache_with_config(
            &format!("fleetcache {name}"),
            spec.binary,
            spec.cpu,
            &config,
            admin[i],
            node_dir.join("fleetcache.log"),
        )?;
        members.push(Member {
            server,
            public: public[i],
            fleet: Some(Admin {
                addr: admin[i],
                name,
            }),
        });
    }
    let mut cluster = Cluster {
        side: Side::Fleetcache,
        members,
    };
    cluster.check_proxying()?;
    eprintln!("waiting for the {n} fleetcache nodes to see each other up");
    wait_peers_up(&mut cluster.members)?;
    Ok(cluster)
}

/// Polls every node's admin `/peers` until each shows every other node up,
/// or fails after [`PEERS_TIMEOUT`] naming what each node lacked.
pub(crate) fn wait_peers_up(members: &mut [Member]) -> Result<()> {
    let names: Vec<String> = members
        .iter()
        .map(|m| {
            m.fleet
                .as_ref()
                .map(|a| a.name.clone())
                .context("a fleetcache node without its admin address")
        })
        .collect::<Result<_>>()?;
    let deadline = Instant::now() + PEERS_TIMEOUT;
    loop {
        interrupt::check()?;
        let mut lacking = Vec::new();
        for member in members.iter_mut() {
            member.server.check_alive()?;
            let Some(admin) = &member.fleet else {
                continue;
            };
            match view_peers(admin.addr) {
                Ok(view) => {
                    let missing = view.missing(&admin.name, &names)?;
                    if !missing.is_empty() {
                        lacking.push(format!(
                            "{} does not see {} up; its /peers: {}",
                            admin.name,
                            missing.join(", "),
                            view.text
                        ));
                    }
                }
                Err(err) => lacking.push(format!("{}: {err:#}", admin.name)),
            }
        }
        if lacking.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the fleet's nodes did not all see each other up within {PEERS_TIMEOUT:?}:\n{}",
                lacking.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a node's `/peers` says.
#[derive(Debug)]
struct PeersView {
    swarm: bool,
    /// The node's own name.
    name: Option<String>,
    /// Names of the peers in state `up`.
    up: Vec<String>,
    /// The answer, shortened, for error messages.
    text: String,
}

impl PeersView {
    fn parse(body: &[u8]) -> Result<Self> {
        let json: Value = serde_json::from_slice(body).context("/peers is not JSON")?;
        let text: String = String::from_utf8_lossy(body).chars().take(2000).collect();
        let swarm = json
            .get("swarm")
            .and_then(Value::as_bool)
            .context("/peers has no boolean `swarm`")?;
        let name = json.get("name").and_then(Value::as_str).map(str::to_owned);
        let peers = json
            .get("peers")
            .and_then(Value::as_array)
            .context("/peers has no `peers` array")?;
        let up = peers
            .iter()
            .filter(|p| p.get("state").and_then(Value::as_str) == Some("up"))
            .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        Ok(Self {
            swarm,
            name,
            up,
            text,
        })
    }

    /// The nodes of `fleet` other than `me` that this view does not show
    /// up; fails at once if the node has no swarm or another name (its
    /// config or certificate is wrong: waiting will not help).
    fn missing(&self, me: &str, fleet: &[String]) -> Result<Vec<String>> {
        ensure!(
            self.swarm,
            "{me} runs without a swarm (no fleet certificates?); its /peers: {}",
            self.text
        );
        ensure!(
            self.name.as_deref() == Some(me),
            "{me} calls itself {:?} in the fleet; its /peers: {}",
            self.name,
            self.text
        );
        Ok(fleet
            .iter()
            .filter(|name| name.as_str() != me && !self.up.contains(name))
            .cloned()
            .collect())
    }
}

fn view_peers(admin: SocketAddr) -> Result<PeersView> {
    let (head, body) = http1::fetch(admin, "GET", "/peers", None)?;
    ensure!(
        head.status == 200,
        "GET http://{admin}/peers answered {}",
        head.status
    );
    PeersView::parse(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Vec<String> {
        ["node-1", "node-2", "node-3"].map(str::to_owned).to_vec()
    }

    #[test]
    fn peers_up_by_name() -> Result<()> {
        let body = br#"{"swarm":true,"listen":"127.0.0.1:7001","name":"node-1","peers":[
            {"addr":"127.0.0.1:7002","source":"127.0.0.1:7002","name":"node-2","state":"up"},
            {"addr":"127.0.0.1:7003","source":"127.0.0.1:7003","name":null,"state":"connecting"}]}"#;
        let view = PeersView::parse(body)?;
        assert_eq!(view.missing("node-1", &fleet())?, ["node-3"]);
        let body = br#"{"swarm":true,"name":"node-1","peers":[
            {"name":"node-2","state":"up"},{"name":"node-3","state":"up"}]}"#;
        assert!(
            PeersView::parse(body)?
                .missing("node-1", &fleet())?
                .is_empty()
        );
        let down = br#"{"swarm":true,"name":"node-1","peers":[
            {"name":"node-2","state":"up"},{"name":"node-3","state":"down"}]}"#;
        assert_eq!(
            PeersView::parse(down)?.missing("node-1", &fleet())?,
            ["node-3"]
        );
        Ok(())
    }

    #[test]
    fn no_swarm_or_wrong_name_fails_at_once() -> Result<()> {
        let alone = br#"{"swarm":false,"listen":null,"name":null,"peers":[]}"#;
        assert!(
            PeersView::parse(alone)?
                .missing("node-1", &fleet())
                .is_err()
        );
        let other = br#"{"swarm":true,"name":"node-9","peers":[]}"#;
        assert!(
            PeersView::parse(other)?
                .missing("node-1", &fleet())
                .is_err()
        );
        assert!(PeersView::parse(b"not json").is_err());
        Ok(())
    }

    #[test]
    fn config_has_the_swarm_and_the_origin() -> Result<()> {
        let config = NodeConfig {
            public: "127.0.0.1:8001".parse()?,
            admin: "127.0.0.1:8101".parse()?,
            swarm: "127.0.0.1:7001".parse()?,
            peers: vec!["127.0.0.1:7002".parse()?, "127.0.0.1:7003".parse()?],
            cert_dir: Path::new("/tmp/f/node-1/certs"),
            data_dir: Path::new("/tmp/f/node-1/data"),
            capacity: 1 << 30,
            origin: "127.0.0.1:9000".parse()?,
        };
        let text = config.render();
        for line in [
            "[http]\nlisten = \"127.0.0.1:8001\"",
            "[admin]\nlisten = \"127.0.0.1:8101\"",
            "data_dir = \"/tmp/f/node-1/data\"\ncapacity = 1073741824",
            "[swarm]\nlisten = \"127.0.0.1:7001\"\npeers = [\"127.0.0.1:7002\", \"127.0.0.1:7003\"]\n\
             cert_dir = \"/tmp/f/node-1/certs\"",
            "[[origin]]\nurl = \"http://127.0.0.1:9000\"",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
        // The node's own loader takes it, with every key where we meant it.
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("fleetcache.toml");
        std::fs::write(&path, &text)?;
        let loaded = fleetcache_config::load(fleetcache_config::Sources {
            file: Some(&path),
            env: Vec::new(),
            flags: Vec::new(),
        })?;
        assert_eq!(loaded.http.listen, config.public);
        assert_eq!(loaded.admin.listen, config.admin);
        assert_eq!(loaded.swarm.listen, config.swarm);
        assert_eq!(loaded.swarm.peers, ["127.0.0.1:7002", "127.0.0.1:7003"]);
        assert_eq!(loaded.swarm.cert_dir.as_deref(), Some(config.cert_dir));
        assert_eq!(loaded.store.capacity.0, 1 << 30);
        assert_eq!(loaded.origins.len(), 1);
        Ok(())
    }

    #[test]
    fn toml_strings_escape() {
        assert_eq!(toml_string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(toml_string("x\ny"), r#""x\u000Ay""#);
    }
}
