//! Integration tests against real nodes: real listeners on 127.0.0.1:0, real
//! redb stores in temp dirs, real HTTP; and the real `fleetcache` binary as a
//! child process where a crash, a signal or memory use is under test.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod h2_raw;
mod h3_client;
mod liar;
mod origin_server;
mod support;
mod tls_support;

mod admin;
mod blobs;
mod deploy_metrics;
mod fleet_faults;
mod fleet_origin;
mod fleet_purge;
mod http3;
mod https;
mod https_certs;
mod https_hostile;
mod https_parity;
mod limits;
mod netns;
mod netns_multi;
mod origin;
mod origin_faults;
mod origin_fills;
mod process;
mod ranges;
mod swarm;
mod verifiable;
