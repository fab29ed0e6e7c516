//! A running node: the store, the listeners, and their orderly shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fleetcache_config::{Config, ConfigError};
use fleetcache_store::{OpenError, Store};
use fleetcache_swarm::{NodeIdentity, Swarm};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::fill::Fills;
use crate::http::http3;
use crate::http::server::{self, Shutdown, Transport};
use crate::http::tls::Certificates;
use crate::metrics::{Listener, Metrics};
use crate::origin::Origins;
use crate::purges::FleetPurges;
use crate::{admin, public, settings};

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct NodeState {
    pub(crate) store: Store,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) admin_token: Option<String>,
    pub(crate) max_upload_size: u64,
    /// The miss pipeline (single-flight fills from peers and origins).
    pub(crate) fills: Arc<Fills>,
    /// The origins URL requests are cached in front of; empty without origin mode.
    pub(crate) origins: Origins,
    /// Fleet-wide purges; `None` without a swarm (purges are local then).
    pub(crate) purges: Option<Arc<FleetPurges>>,
    /// False once shutdown starts, so `/readyz` takes the node out of rotation.
    pub(crate) ready: AtomicBool,
    pub(crate) started: Instant,
    /// Decoded variants of recently looked-up URLs.
    pub(crate) variants: crate::proxy::memo::VariantMemo,
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
    /// A store setting is out of range (exit code 64). The store checks its own
    /// rules; this names the configuration key.
    #[error("invalid config: store.{option}: {problem}")]
    StoreOption {
        /// The `[store]` key.
        option: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// An origin's TLS settings are unusable (exit code 64); the message names
    /// the key, e.g. `origin[0].ca_file`.
    #[error("{0}")]
    Origin(String),
    /// The public certificates could not be loaded (exit code 64); the
    /// message names the key, e.g. `http.tls.cert_file`.
    #[error("{0}")]
    Tls(String),
    /// The swarm endpoint could not start.
    #[error("starting the swarm: {0}")]
    Swarm(#[from] fleetcache_swarm::SwarmError),
    /// The purge log (`<data_dir>/purges.redb`) could not be opened.
    #[error("opening the purge log: {0}")]
    PurgeLog(String),
    /// A blocking start-up task died.
    #[error("start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl StartError {
    /// Whether the configuration is at fault (exit code 64) rather than the
    /// machine.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            StartError::Config(_)
                | StartError::Certificates(_)
                | StartError::StoreOption { .. }
                | StartError::Origin(_)
                | StartError::Tls(_)
        )
    }
}

/// A started node. Dropping it without [`Node::shutdown`] aborts nothing: the
/// listeners keep running until the runtime stops.
#[derive(Debug)]
pub struct Node {
    state: Arc<NodeState>,
    certificates: Option<Arc<Certificates>>,
    public_addr: Option<SocketAddr>,
    https_addr: Option<SocketAddr>,
    http3_addr: Option<SocketAddr>,
    admin_addr: SocketAddr,
    swarm_addr: Option<SocketAddr>,
    shutdown: Shutdown,
    grace_period: Duration,
}

impl Node {
    /// Opens the store and starts the public and admin listeners.
    pub async fn start(config: &Config) -> Result<Node, StartError> {
        let admin_token = config.admin_token()?;
        let options = settings::store_options(config);
        let origins =
            Origins::new(&config.origins).map_err(|e| StartError::Origin(e.to_string()))?;
        let certificates = match settings::tls_files(config) {
            Some(files) => Some(
                crate::sync::blocking(move || Certificates::load(files))
                    .await?
                    .map_err(|err| StartError::Tls(err.to_string()))?,
            ),
            None => None,
        };
        let identity = match &config.swarm.cert_dir {
            Some(dir) => {
                let dir = dir.clone();
                let loaded = tokio::task::spawn_blocking(move || NodeIdentity::load(&dir)).await?;
                Some(loaded.map_err(StartError::Certificates)?)
            }
            None => None,
        };
        let store = match tokio::task::spawn_blocking(move || Store::open(options)).await? {
            Ok(store) => store,
            Err(OpenError::InvalidOptions { option, problem }) => {
                return Err(StartError::StoreOption { option, problem });
            }
            Err(err) => return Err(err.into()),
        };
        let swarm = match identity {
            Some(identity) => Some(Swarm::start(settings::swarm_options(
                config,
                identity,
                store.clone(),
            ))?),
            None => None,
        };
        let metrics = Metrics::new(store.clone(), swarm.clone())?;
        let purges = match &swarm {
            Some(swarm) => Some(
                FleetPurges::open(
                    settings::purge_settings(config),
                    store.clone(),
                    Arc::clone(&metrics),
                    swarm.clone(),
                )
                .await
                .map_err(|err| StartError::PurgeLog(err.to_string()))?,
            ),
            None => None,
        };
        let fills = Fills::new(store.clone(), Arc::clone(&metrics), swarm);
        let state = Arc::new(NodeState {
            store,
            metrics: Arc::clone(&metrics),
            admin_token,
            max_upload_size: config.admin.max_upload_size.0,
            fills,
            origins,
            purges,
            ready: AtomicBool::new(false),
            started: Instant::now(),
            variants: Default::default(),
        });

        if let Some(swarm) = state.fills.swarm() {
            swarm.set_service(crate::fleet::FleetAnswers::new(&state));
        }
        if let Some(purges) = &state.purges {
            purges.start();
            purges.read_logs_before_serving().await;
        }

        let public_listener = match config.http.plaintext {
            true => Some(bind("public", config.http.listen).await?),
            false => None,
        };
        let https_listener = match &certificates {
            Some(_) => Some(bind("https", config.http.tls.listen).await?),
            None => None,
        };
        let admin_listener = bind("admin", config.admin.listen).await?;
        let public_addr = public_listener
            .as_ref()
            .map(|l| local_addr("public", l, config.http.listen))
            .transpose()?;
        let https_addr = https_listener
            .as_ref()
            .map(|l| local_addr("https", l, config.http.tls.listen))
            .transpose()?;
        let admin_addr = local_addr("admin", &admin_listener, config.admin.listen)?;

        let limits = settings::http_limits(config);
        // HTTP/3 takes the HTTPS listener's address and its bound port, so a
        // configured port 0 gives both the same port.
        let http3_endpoint = match (https_addr, &certificates) {
            (Some(addr), Some(certificates)) if config.http.tls.http3 => Some(
                http3::bind(addr, certificates, &limits).map_err(|err| match err {
                    http3::Http3Error::Bind(source) => StartError::Bind {
                        listener: "http3",
                        addr,
                        source,
                    },
                    other => StartError::Tls(other.to_string()),
                })?,
            ),
            _ => None,
        };
        let http3_addr = http3_endpoint
            .as_ref()
            .map(|endpoint| {
                endpoint.local_addr().map_err(|source| StartError::Bind {
                    listener: "http3",
                    addr: config.http.tls.listen,
                    source,
                })
            })
            .transpose()?;
        let shutdown = Shutdown {
            graceful: CancellationToken::new(),
            abort: CancellationToken::new(),
            tracker: TaskTracker::new(),
        };

        let public_handler = {
            let state = Arc::clone(&state);
            move |req, peer| public::handle(Arc::clone(&state), req, peer)
        };
        if let Some(listener) = public_listener {
            shutdown.tracker.spawn(server::serve(
                listener,
                Listener::Public,
                Transport::Plain,
                limits.clone(),
                Arc::clone(&metrics),
                shutdown.clone(),
                public_handler,
            ));
        }
        if let (Some(listener), Some(certificates)) = (https_listener, &certificates) {
            certificates.register(metrics.registry())?;
            metrics.tls_listener_started(Listener::Https);
            let tls = certificates
                .server_config(&[b"h2", b"http/1.1"], false)
                .map_err(|err| StartError::Tls(format!("building the TLS configuration: {err}")))?;
            // Every HTTPS response advertises HTTP/3 while it is on.
            let advertised = config.http.tls.http3_advertised_port;
            let alt_svc = http3_addr.map(|addr| {
                http3::alt_svc(if advertised == 0 {
                    addr.port()
                } else {
                    advertised
                })
            });
            let state = Arc::clone(&state);
            let https_handler = move |req, peer| {
                let response = public::handle(Arc::clone(&state), req, peer);
                let alt_svc = alt_svc.clone();
                async move { http3::advertise(response.await, alt_svc.as_ref()) }
            };
            shutdown.tracker.spawn(server::serve(
                listener,
                Listener::Https,
                Transport::Tls(tokio_rustls::TlsAcceptor::from(Arc::new(tls))),
                limits.clone(),
                Arc::clone(&metrics),
                shutdown.clone(),
                https_handler,
            ));
            certificates.watch(shutdown.graceful.clone());
        }
        if let Some(endpoint) = http3_endpoint {
            metrics.tls_listener_started(Listener::Http3);
            let state = Arc::clone(&state);
            shutdown.tracker.spawn(http3::serve(
                endpoint,
                limits.clone(),
                config.http.tls.http3_unvalidated_handshakes,
                Arc::clone(&metrics),
                shutdown.clone(),
                move |req, peer| public::handle(Arc::clone(&state), req, peer),
            ));
        }
        let admin_state = Arc::clone(&state);
        shutdown.tracker.spawn(server::serve(
            admin_listener,
            Listener::Admin,
            Transport::Plain,
            limits,
            metrics,
            shutdown.clone(),
            move |req, _peer| admin::handle(Arc::clone(&admin_state), req),
        ));

        state.ready.store(true, Ordering::Release);
        let swarm_addr = state.fills.swarm().and_then(|s| s.local_addr());
        let text =
            |addr: Option<SocketAddr>| addr.map_or_else(|| "off".to_owned(), |a| a.to_string());
        tracing::info!(public_addr = %text(public_addr), https_addr = %text(https_addr), http3_addr = %text(http3_addr), %admin_addr, swarm_addr = %text(swarm_addr), data_dir = %config.store.data_dir.display(), "fleetcache node started");
        Ok(Node {
            state,
            certificates,
            public_addr,
            https_addr,
            http3_addr,
            admin_addr,
            swarm_addr,
            shutdown,
            grace_period: config.shutdown.grace_period,
        })
    }

    /// The bound plaintext HTTP address (useful when configured with port
    /// 0); `None` when `http.plaintext` is off.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.public_addr
    }

    /// The bound HTTPS address (TCP; HTTP/3 is the same port on UDP);
    /// `None` without certificates.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// The bound HTTP/3 address (UDP, the HTTPS port); `None` without
    /// certificates or with `http.tls.http3` off.
    pub fn http3_addr(&self) -> Option<SocketAddr> {
        self.http3_addr
    }

    /// Loads the public certificates again (what SIGHUP does). On failure
    /// the current ones stay; the error says why. Without HTTPS there is
    /// nothing to reload.
    pub fn reload_certificates(&self) -> Result<(), String> {
        match &self.certificates {
            Some(certificates) => certificates.reload().map_err(|err| err.to_string()),
            None => {
                Err("HTTPS is off ([http.tls] has no certificate): nothing to reload".to_owned())
            }
        }
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
        if let Some(swarm) = self.state.fills.swarm() {
            swarm.shutdown_and_flush().await;
        }
        if let Some(purges) = &self.state.purges {
            purges.close();
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
