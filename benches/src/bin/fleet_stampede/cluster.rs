//! The two sides: N nodes each, all in front of the same origin. A side's
//! nodes are started together and killed together; nginx's do not know each
//! other, fleetcache's form a fleet (see `fleet.rs`).

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use fleetcache_benches::http1::{self, Head};
use fleetcache_benches::origin::READY_PATH;
use fleetcache_benches::process::{self, Server};
use fleetcache_benches::servers::{self, Nginx};

use crate::fleet;

/// Which side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Fleetcache,
    Nginx,
}

impl Side {
    /// Table order.
    pub(crate) const ALL: [Side; 2] = [Side::Fleetcache, Side::Nginx];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Side::Fleetcache => "fleetcache",
            Side::Nginx => "nginx",
        }
    }

    /// Whether a response head says it came from the node's cache.
    pub(crate) fn is_hit(self, head: &Head) -> bool {
        match self {
            Side::Fleetcache => servers::fleetcache_says_hit(head.header("cache-status")),
            Side::Nginx => servers::nginx_says_hit(head.header("x-cache-status")),
        }
    }
}

/// One running node.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) server: Server,
    /// Where clients ask.
    pub(crate) public: SocketAddr,
    /// fleetcache's admin listener and its node name in the fleet.
    pub(crate) fleet: Option<fleet::Admin>,
}

/// One side's nodes, running.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) side: Side,
    pub(crate) members: Vec<Member>,
}

impl Cluster {
    /// Checks every node answers `READY_PATH` through the origin.
    pub(crate) fn check_proxying(&self) -> Result<()> {
        for member in &self.members {
            let (head, body) = http1::fetch(member.public, "GET", READY_PATH, None)
                .with_context(|| format!("{}: GET {READY_PATH}", member.server.name))?;
            ensure!(
                head.status == 200 && body == b"ready\n",
                "{} answered {} ({} bytes) for {READY_PATH}, not the origin's file",
                member.server.name,
                head.status,
                body.len()
            );
        }
        Ok(())
    }

    /// Fails (with its log) if any node has exited.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        self.members
            .iter_mut()
            .try_for_each(|member| member.server.check_alive())
    }

    /// Before a run: a fleet's nodes must all see each other up.
    pub(crate) fn ready_for_run(&mut self) -> Result<()> {
        self.check_alive()?;
        if self.side == Side::Fleetcache {
            fleet::wait_peers_up(&mut self.members)?;
        }
        Ok(())
    }

    /// Client `i` asks node `i mod N`.
    pub(crate) fn targets(&self, clients: usize) -> Vec<SocketAddr> {
        spread(clients, self.members.len())
            .into_iter()
            .map(|node| self.members[node].public)
            .collect()
    }

    /// utime + stime of every node's process group, clock ticks.
    pub(crate) fn cpu_ticks(&self) -> Result<u64> {
        self.members
            .iter()
            .map(|member| member.server.cpu_ticks())
            .sum()
    }

    /// For each node, whether a HEAD for `uri` now says hit: it stored the
    /// object. (A node that did not may fetch it again for the HEAD; count
    /// the origin's requests first.)
    pub(crate) fn stored(&self, uri: &str) -> Result<Vec<bool>> {
        self.members
            .iter()
            .map(|member| {
                let (head, _) = http1::fetch(member.public, "HEAD", uri, None)
                    .with_context(|| format!("{}: HEAD {uri}", member.server.name))?;
                Ok(head.status == 200 && self.side.is_hit(&head))
            })
            .collect()
    }
}

/// The node each of `clients` asks: client `i` asks node `i mod nodes`.
pub(crate) fn spread(clients: usize, nodes: usize) -> Vec<usize> {
    (0..clients).map(|i| i % nodes.max(1)).collect()
}

/// Starts `nodes` nginx `proxy_cache` nodes pinned to `cpu`, each with its
/// own cache under `dir`, in front of `origin`.
pub(crate) fn start_nginx(
    nginx: &Nginx,
    cpu: usize,
    dir: &Path,
    origin: SocketAddr,
    nodes: usize,
) -> Result<Cluster> {
    let ports = process::free_tcp_ports(nodes)?;
    let mut members = Vec::with_capacity(nodes);
    for (i, &listen) in ports.iter().enumerate() {
        let name = format!("nginx-{}", i + 1);
        eprintln!("starting nginx proxy_cache {name} on CPU {cpu}");
        let prefix = dir.join(&name);
        std::fs::create_dir_all(&prefix)?;
        let conf = Nginx::write_conf(
            &prefix,
            &format!("{}: nginx proxy_cache node {name}", crate::PROGRAM),
            &servers::nginx_proxy_cache_conf(&prefix.join("cache"), listen, origin),
        )?;
        let server = nginx.start(
            &name,
            cpu,
            &conf,
            listen,
            READY_PATH,
            prefix.join("nginx.log"),
        )?;
        members.push(Member {
            server,
            public: listen,
            fleet: None,
        });
    }
    let cluster = Cluster {
        side: Side::Nginx,
        members,
    };
    cluster.check_proxying()?;
    Ok(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_spread_evenly() {
        let nodes = spread(150, 3);
        for node in 0..3 {
            assert_eq!(nodes.iter().filter(|&&n| n == node).count(), 50);
        }
        assert_eq!(spread(4, 3), [0, 1, 2, 0]);
        assert_eq!(spread(2, 0), [0, 0]);
    }
}
