//! fleetcache node: the HTTP gateway (public and admin listeners), metrics,
//! and the `fleetcache` command line.
//!
//! The public listener serves content-addressed objects from the local store
//! by hash (`GET|HEAD /blake3/<hash>`), with RFC 9110 ranges and conditional
//! requests, or as a stream the client verifies against the hash
//! (`?format=bao`); the admin listener ingests, deletes and pins objects and exposes
//! health, stats and Prometheus metrics. See ARCHITECTURE.md at the
//! repository root for the map.

mod admin;
mod cache;
pub mod cli;
mod error;
mod fill;
mod fleet;
mod http;
mod metrics;
mod node;
mod origin;
mod origin_metrics;
mod proxy;
mod public;
mod purges;
mod settings;
mod swarm_metrics;
mod sync;
mod verifiable;

pub use node::{Node, StartError};
