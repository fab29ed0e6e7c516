//! fleetcache swarm: the peer-to-peer layer.
//!
//! **Not built yet.** This crate is a placeholder so the workspace has its
//! final shape. It will hold the QUIC endpoint (quinn, mutual TLS against a
//! fleet CA), membership and liveness, rendezvous routing, the versioned wire
//! protocol, and verified BLAKE3/bao transfers between nodes. Until then a
//! node serves only what its own store holds.
