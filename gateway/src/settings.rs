//! The one place the configuration becomes each part's own options: the store's
//! `StoreOptions`, the swarm's `SwarmOptions`, the listeners' limits and the
//! origins' settings. Beyond the CLI and `Node::start`, which load and hand on
//! the configuration, only origin routing touches its types: it keeps the
//! `[[origin]]` entries to ask the config crate's own host rule
//! (`OriginConfig::route`) rather than restating it. Each rule is checked
//! once: by the config crate when it is about the file, by the part that owns
//! it otherwise (the store checks its watermarks).

use fleetcache_config::{Config, OriginConfig};
use fleetcache_store::{Store, StoreOptions};
use fleetcache_swarm::{NodeIdentity, SwarmOptions};

use crate::cache::effective::Defaults;
use crate::http::server::Limits;
use crate::origin::OriginSettings;
use crate::purges::PurgeSettings;

pub(crate) fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        data_dir: config.store.data_dir.clone(),
        capacity: config.store.capacity.0,
        high_watermark: config.store.high_watermark,
        low_watermark: config.store.low_watermark,
        memory_cache: config.store.memory_cache.0,
    }
}

pub(crate) fn swarm_options(config: &Config, identity: NodeIdentity, store: Store) -> SwarmOptions {
    let swarm = &config.swarm;
    SwarmOptions {
        listen: swarm.listen,
        identity,
        peers: swarm.peers.clone(),
        store,
        peer_timeout: swarm.peer_timeout,
        ping_interval: swarm.ping_interval,
        resolve_interval: swarm.resolve_interval,
        max_uploads: swarm.max_uploads,
    }
}

pub(crate) fn purge_settings(config: &Config) -> PurgeSettings {
    let swarm = &config.swarm;
    PurgeSettings {
        path: config.store.data_dir.join("purges.redb"),
        retention: swarm.purge_retention,
        // A peer answers a PURGE after applying it, which may scan many
        // entries: more time than one step of a transfer.
        timeout: swarm.peer_timeout * 5,
        // Connecting, a first ping and a log read, with room to spare.
        first_read: swarm.peer_timeout * 3 + swarm.ping_interval * 2,
        has_peers: !swarm.peers.is_empty(),
    }
}

pub(crate) fn http_limits(config: &Config) -> Limits {
    let http = &config.http;
    Limits {
        max_header_bytes: usize::try_from(http.max_header_bytes.0).unwrap_or(usize::MAX),
        max_headers: http.max_headers,
        header_read_timeout: http.header_read_timeout,
        idle_timeout: http.idle_timeout,
        max_connections: http.max_connections,
        max_concurrent_streams: http.max_concurrent_streams,
    }
}

/// The public certificates' files, `None` while HTTPS is off.
pub(crate) fn tls_files(config: &Config) -> Option<crate::http::tls::TlsFiles> {
    let tls = &config.http.tls;
    tls.enabled().then(|| crate::http::tls::TlsFiles {
        default: tls.cert_file.clone().zip(tls.key_file.clone()),
        combined: tls.certificates.clone(),
        reload_interval: tls.reload_interval,
    })
}

pub(crate) fn origin_settings(origin: &OriginConfig) -> OriginSettings {
    OriginSettings {
        name: origin.url.as_str().trim_end_matches('/').to_owned(),
        https: origin.url.is_https(),
        host: origin.url.host().to_owned(),
        port: origin.url.port(),
        authority: origin.url.authority().to_owned(),
        ca_file: origin.ca_file.clone(),
        connect_timeout: origin.connect_timeout,
        first_byte_timeout: origin.first_byte_timeout,
        idle_timeout: origin.idle_timeout,
        queue_timeout: origin.queue_timeout,
        max_fetches: origin.max_fetches,
        max_object_size: origin.max_object_size.0,
        defaults: Defaults {
            default_ttl: origin.default_ttl,
            // "0s" turns it off.
            stale_if_error: Some(origin.stale_if_error).filter(|window| !window.is_zero()),
        },
        forwarded: origin.forwarded,
    }
}
