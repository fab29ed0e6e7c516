//! A running node: the store, the listeners, and their orderly shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fleetcache_config::{Config, ConfigError};
use fleetcache_store::{OpenError, Store, StoreOptions};
use fleetcache_swarm::{NodeIdentity, Swarm, SwarmOptions};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::fill::Fills;
use crate::http::server::{self, Limits, Shutdown};
use crate::metrics::{Listener, Metrics};
use crate::{admin, public};

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct NodeState {
    pub(crate) store: Store,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) admin_token: Option<String>,
    pub(crate) max_upload_size: u64,
    /// The miss pipeline; `None` for a node without a fleet (misses are 404).
    pub(crate) fills: Option<Arc<Fills>>,
    /// False once shutdown starts, so `/readyz` takes the node out of rotation.
    pub(crate) ready: AtomicBool,
    pub(crate) started: Instant,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid (exit code 64).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error("opening the store: {0}")]
    Store(#[from] OpenError),
    /// A listener could not be bound.
    #[error("binding the {listener} listener on {addr}: {source}")]
    Bind {
        /// Which listener.
        listener: &'static str,
        /// The address from the configuration.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Setting up metrics failed.
    #[error("registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The node's fleet certificates could not be loaded (exit code 64: it is
    /// `swarm.cert_dir` that is wrong).
    #[error("invalid config: swarm.cert_dir: {0}")]
    Certificates(fleetcache_swarm::CertError),
    /// The swarm endpoint could not start.
    #[error("starting the swarm: {0}")]
    Swarm(#[from] fleetcache_swarm::SwarmError),
    /// A blocking start-up task died.
    #[error("start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A started node. Dropping it without [`Node::shutdown`] aborts nothing: the
/// listeners keep running until the runtime stops.
#[derive(Debug)]
pub struct Node {
    state: Arc<NodeState>,
    public_addr: SocketAddr,
    admin_addr: SocketAddr,
    swarm_addr: Option<SocketAddr>,
    shutdown: Shutdown,
    grace_period: Duration,
}

impl Node {
    /// Opens the store and starts the public and admin listeners.
    pub async fn start(config: &Config) -> Result<Node, StartError> {
        let admin_token = config.admin_token()?;
        let options = StoreOptions {
            data_dir: config.store.data_dir.clone(),
            capacity: config.store.capacity.0,
            high_watermark: config.store.high_watermark,
            low_watermark: config.store.low_watermark,
        };
        let identity = match &config.swarm.cert_dir {
            Some(dir) => {
                let dir = dir.clone();
                let loaded = tokio::task::spawn_blocking(move || NodeIdentity::load(&dir)).await?;
                Some(loaded.map_err(StartError::Certificates)?)
            }
            None => None,
        };
        let store = tokio::task::spawn_blocking(move || Store::open(options)).await??;
        let swarm = match identity {
            Some(identity) => Some(Swarm::start(SwarmOptions {
                listen: config.swarm.listen,
                identity,
                peers: config.swarm.peers.clone(),
                store: store.clone(),
                peer_timeout: config.swarm.peer_timeout,
                ping_interval: config.swarm.ping_interval,
                resolve_interval: config.swarm.resolve_interval,
                max_uploads: config.swarm.max_uploads,
            })?),
            None => None,
        };
        let metrics = Metrics::new(store.clone(), swarm.clone())?;
        let fills = swarm.map(|swarm| Fills::new(swarm, store.clone(), Arc::clone(&metrics)));
        let state = Arc::new(NodeState {
            store,
            metrics: Arc::clone(&metrics),
            admin_token,
            max_upload_size: config.admin.max_upload_size.0,
            fills,
            ready: AtomicBool::new(false),
            started: Instant::now(),
        });

        let public_listener = bind("public", config.http.listen).await?;
        let admin_listener = bind("admin", config.admin.listen).await?;
        let public_addr = local_addr("public", &public_listener, config.http.listen)?;
        let admin_addr = local_addr("admin", &admin_listener, config.admin.listen)?;

        let http = &config.http;
        let limits = Limits {
            max_header_bytes: usize::try_from(http.max_header_bytes.0).unwrap_or(usize::MAX),
            max_headers: http.max_headers,
            header_read_timeout: http.header_read_timeout,
            idle_timeout: http.idle_timeout,
            max_connections: http.max_connections,
        };
        let shutdown = Shutdown {
            graceful: CancellationToken::new(),
            abort: CancellationToken::new(),
            tracker: TaskTracker::new(),
        };

        let public_state = Arc::clone(&state);
        shutdown.tracker.spawn(server::serve(
            public_listener,
            Listener::Public,
            limits.clone(),
            Arc::clone(&metrics),
            shutdown.clone(),
            move |req, _peer| public::handle(Arc::clone(&public_state), req),
        ));
        let admin_state = Arc::clone(&state);
        shutdown.tracker.spawn(server::serve(
            admin_listener,
            Listener::Admin,
            limits,
            metrics,
            shutdown.clone(),
            move |req, _peer| admin::handle(Arc::clone(&admin_state), req),
        ));

        state.ready.store(true, Ordering::Release);
        let swarm_addr = state.fills.as_ref().and_then(|f| f.swarm().local_addr());
        let swarm_text = swarm_addr.map_or_else(|| "off".to_owned(), |a| a.to_string());
        tracing::info!(%public_addr, %admin_addr, swarm_addr = %swarm_text, data_dir = %config.store.data_dir.display(), "fleetcache node started");
        Ok(Node {
            state,
            public_addr,
            admin_addr,
            swarm_addr,
            shutdown,
            grace_period: config.shutdown.grace_period,
        })
    }

    /// The bound public address (useful when configured with port 0).
    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The bound swarm (QUIC) address, if the node has fleet certificates.
    pub fn swarm_addr(&self) -> Option<SocketAddr> {
        self.swarm_addr
    }

    /// Stops accepting, lets in-flight responses finish within the grace
    /// period, then closes the store. Returns false if the grace period ran
    /// out with connections still open (they are then cut).
    pub async fn shutdown(self) -> bool {
        self.state.ready.store(false, Ordering::Release);
        self.shutdown.graceful.cancel();
        self.shutdown.tracker.close();
        let tracker = &self.shutdown.tracker;
        let drained = tokio::time::timeout(self.grace_period, tracker.wait())
            .await
            .is_ok();
        if !drained {
            tracing::warn!(grace_period = ?self.grace_period, "grace period over; cutting remaining connections");
            self.shutdown.abort.cancel();
            tracker.wait().await;
        }
        if let Some(fills) = &self.state.fills {
            fills.swarm().shutdown();
        }
        let store = self.state.store.clone();
        match tokio::task::spawn_blocking(move || store.close()).await {
            Ok(Ok(())) => tracing::info!("store closed"),
            Ok(Err(err)) => tracing::error!("closing the store: {err}"),
            Err(err) => tracing::error!("closing the store: {err}"),
        }
        drained
    }
}

async fn bind(
    listener: &'static str,
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            listener,
            addr,
            source,
        })
}

fn local_addr(
    listener: &'static str,
    bound: &tokio::net::TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, StartError> {
    bound.local_addr().map_err(|source| StartError::Bind {
        listener,
        addr,
        source,
    })
}
