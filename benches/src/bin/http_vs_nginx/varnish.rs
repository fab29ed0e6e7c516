//! The Varnish side: `varnishd` (`-s malloc`) pinned to the server core in
//! front of a backend, a one-process nginx on the client core serving the
//! stage's files with `Cache-Control: max-age=3600` (the benchmarks'
//! [`Origin`], which logs every request). Varnish is filled before the runs
//! and shown to answer from its cache; the backend's log then tells whether
//! any later request missed.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, ensure};
use fleetcache_benches::http1;
use fleetcache_benches::objects::Object;
use fleetcache_benches::origin::{Origin, OriginSpec};
use fleetcache_benches::process::Server;
use fleetcache_benches::servers::{self, VARNISH_CACHE_HEADER};
use fleetcache_benches::versus::{Common, Stage, Tools};

use crate::PROGRAM;

/// Varnish's storage: the 256 MiB object, the 4 KiB one and room to spare.
pub(crate) const VARNISH_STORAGE: &str = "malloc,512M";

/// How long the backend's request count must hold still to be read as
/// final (nginx logs a request when its last byte is sent), and how long to
/// wait for that at most.
const LOG_QUIET: Duration = Duration::from_millis(300);
const LOG_LIMIT: Duration = Duration::from_secs(10);

/// Varnish and its backend, running.
#[derive(Debug)]
pub(crate) struct Cached {
    /// Declared first: Varnish is killed before its backend.
    pub(crate) server: Server,
    addr: SocketAddr,
    backend: Origin,
    /// Each filled object's path and the backend's request count for it
    /// just after the fill.
    filled: Vec<(String, usize)>,
}

impl Cached {
    /// Starts the backend on `common.client_cpu` (it only works during the
    /// fill) at `backend_addr`, then Varnish on `common.server_cpu` at
    /// `listen`.
    pub(crate) fn start(
        tools: &Tools,
        common: &Common,
        stage: &Stage,
        listen: SocketAddr,
        backend_addr: SocketAddr,
    ) -> Result<Self> {
        eprintln!(
            "starting Varnish's backend (nginx) on CPU {}",
            common.client_cpu
        );
        let backend = Origin::start(
            &tools.nginx,
            common.client_cpu,
            &stage.path("backend"),
            backend_addr,
            OriginSpec {
                root: &stage.root,
                // `limit_rate 0`: no limit.
                limited: "/blake3/",
                rate: 0,
                written_by: PROGRAM,
            },
        )?;
        let server = tools.start_varnish(common, stage, VARNISH_STORAGE, listen, &backend)?;
        Ok(Self {
            server,
            addr: listen,
            backend,
            filled: Vec::new(),
        })
    }

    /// Fills Varnish with `objects` (a GET each, through to the backend),
    /// checks that a HEAD of each then says hit, and notes the backend's
    /// request count for each.
    pub(crate) fn fill(&mut self, objects: &[&Object]) -> Result<()> {
        eprintln!("filling Varnish");
        for object in objects {
            let path = object.path();
            let head = http1::exchange(self.addr, "GET", &path, None, &mut std::io::sink())?;
            ensure!(
                head.status == 200,
                "varnish: GET {path} answered {}",
                head.status
            );
        }
        for object in objects {
            let path = object.path();
            let (head, _) = http1::fetch(self.addr, "HEAD", &path, None)?;
            let status = head.header(VARNISH_CACHE_HEADER);
            ensure!(
                servers::varnish_says_hit(status),
                "varnish did not keep {path} ({} bytes; -s {VARNISH_STORAGE}): a HEAD after the \
                 GET says {VARNISH_CACHE_HEADER}: {}",
                object.size,
                status.unwrap_or("(none)")
            );
            eprintln!(
                "  varnish: HEAD {path}: {VARNISH_CACHE_HEADER}: {}",
                status.unwrap_or("(none)")
            );
            let count = self
                .backend
                .settled_requests_for(&path, LOG_QUIET, LOG_LIMIT)?;
            self.filled.push((path, count));
        }
        Ok(())
    }

    /// Requests for the filled objects that reached the backend since
    /// [`Cached::fill`]: 0 when every request since was a hit.
    pub(crate) fn misses_since_fill(&self) -> Result<usize> {
        let mut misses = 0;
        for (path, after_fill) in &self.filled {
            let now = self.backend.requests_for(path)?;
            misses += now.saturating_sub(*after_fill);
        }
        Ok(misses)
    }
}
