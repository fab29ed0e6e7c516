//! The three caches in front of the origin, each started pinned to the
//! server core, and how each says a response came from its cache.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use fleetcache_benches::http1::{self, Head};
use fleetcache_benches::process::{self, Server};
use fleetcache_benches::servers::{self, FleetcacheAddrs, Nginx, Varnish};

use fleetcache_benches::origin::READY_PATH;

/// Varnish's storage (malloc). Each cold run adds one object.
const VARNISH_STORAGE: &str = "malloc,4G";

/// The caches, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cache {
    Fleetcache,
    Nginx,
    Varnish,
}

impl Cache {
    /// Table order, and the order of the runs within a round.
    pub(crate) const ALL: [Cache; 3] = [Cache::Fleetcache, Cache::Nginx, Cache::Varnish];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Cache::Fleetcache => "fleetcache",
            Cache::Nginx => "nginx",
            Cache::Varnish => "varnish",
        }
    }

    /// The response header that says hit or miss.
    pub(crate) fn status_header(self) -> &'static str {
        match self {
            Cache::Fleetcache => "cache-status",
            Cache::Nginx => "x-cache-status",
            Cache::Varnish => servers::VARNISH_CACHE_HEADER,
        }
    }

    /// Whether `value` (of [`Cache::status_header`]) says the response was
    /// served from the cache.
    pub(crate) fn says_hit(self, value: Option<&str>) -> bool {
        match self {
            Cache::Fleetcache => servers::fleetcache_says_hit(value),
            Cache::Nginx => servers::nginx_says_hit(value),
            Cache::Varnish => servers::varnish_says_hit(value),
        }
    }

    /// Whether the response head says hit.
    pub(crate) fn is_hit(self, head: &Head) -> bool {
        self.says_hit(head.header(self.status_header()))
    }
}

/// One cache, running.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) cache: Cache,
    pub(crate) server: Server,
    pub(crate) addr: SocketAddr,
}

impl Running {
    /// `GET` (or `HEAD`) `path` once; the head and the body.
    pub(crate) fn fetch(&self, method: &str, path: &str) -> Result<(Head, Vec<u8>)> {
        http1::fetch(self.addr, method, path, None)
            .with_context(|| format!("{} {method} {path}", self.cache.name()))
    }
}

/// The programs the caches need.
#[derive(Debug)]
pub(crate) struct Binaries {
    pub(crate) fleetcache: PathBuf,
    pub(crate) nginx: Nginx,
    pub(crate) varnish: Varnish,
}

/// Starts the three caches in front of `origin`, pinned to `cpu`, with
/// their files under `dir`.
pub(crate) fn start_all(
    bins: &Binaries,
    dir: &Path,
    origin: SocketAddr,
    cpu: usize,
) -> Result<Vec<Running>> {
    let [public, admin, nginx_addr, varnish_addr] = process::free_ports()?;
    let mut running = Vec::new();

    eprintln!("starting fleetcache (origin mode) on CPU {cpu}");
    let addrs = FleetcacheAddrs { public, admin };
    let server = servers::start_fleetcache(
        &bins.fleetcache,
        cpu,
        addrs,
        &dir.join("fleetcache-data"),
        Some(&format!("http://{origin}")),
        None,
        dir.join("fleetcache.log"),
    )?;
    running.push(Running {
        cache: Cache::Fleetcache,
        server,
        addr: public,
    });

    eprintln!("starting nginx proxy_cache on CPU {cpu}");
    let prefix = dir.join("nginx-cache");
    std::fs::create_dir_all(&prefix)?;
    let conf = Nginx::write_conf(
        &prefix,
        "origin-vs-proxies: nginx proxy_cache with proxy_cache_lock",
        &servers::nginx_proxy_cache_conf(&prefix.join("cache"), nginx_addr, origin),
    )?;
    let server = bins.nginx.start(
        "nginx",
        cpu,
        &conf,
        nginx_addr,
        READY_PATH,
        prefix.join("nginx.log"),
    )?;
    running.push(Running {
        cache: Cache::Nginx,
        server,
        addr: nginx_addr,
    });

    eprintln!("starting varnishd on CPU {cpu}");
    let server = bins.varnish.start(
        cpu,
        &dir.join("varnish"),
        VARNISH_STORAGE,
        varnish_addr,
        origin,
        READY_PATH,
    )?;
    running.push(Running {
        cache: Cache::Varnish,
        server,
        addr: varnish_addr,
    });

    for cache in &mut running {
        let (head, _) = cache.fetch("GET", READY_PATH)?;
        ensure!(
            head.status == 200,
            "{} answered {} for {READY_PATH}",
            cache.cache.name(),
            head.status
        );
    }
    Ok(running)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleetcache_hits() {
        let c = Cache::Fleetcache;
        assert!(c.says_hit(Some("fleetcache; hit; ttl=3600")));
        assert!(c.says_hit(Some("upstream; fwd=miss, fleetcache; hit")));
        assert!(!c.says_hit(Some(
            "fleetcache; fwd=uri-miss; fwd-status=200; ttl=3600; stored"
        )));
        assert!(!c.says_hit(Some("fleetcache; hit, other; fwd=miss")));
        assert!(!c.says_hit(Some("other; hit")));
        assert!(!c.says_hit(None));
    }

    #[test]
    fn nginx_and_varnish_hits() {
        assert!(Cache::Nginx.says_hit(Some("HIT")));
        assert!(!Cache::Nginx.says_hit(Some("MISS")));
        assert!(!Cache::Nginx.says_hit(Some("EXPIRED")));
        assert!(Cache::Varnish.says_hit(Some("HIT")));
        assert!(!Cache::Varnish.says_hit(Some("MISS")));
        assert!(!Cache::Varnish.says_hit(None));
    }

    #[test]
    fn nginx_config_names_the_origin() {
        let origin: SocketAddr = ([127, 0, 0, 1], 4321).into();
        let listen: SocketAddr = ([127, 0, 0, 1], 1234).into();
        let conf = servers::nginx_proxy_cache_conf(Path::new("/tmp/c"), listen, origin);
        assert!(conf.contains("server 127.0.0.1:4321;"));
        assert!(conf.contains("listen 127.0.0.1:1234;"));
        assert!(conf.contains("proxy_cache_lock on;"));
    }
}
