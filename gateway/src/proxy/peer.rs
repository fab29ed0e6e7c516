//! URL requests between fleet members: what a node sends a URL's owner, and how
//! the owner answers one.

use bytes::Bytes;
use fleetcache_swarm::{NodeName, UrlReply};

use crate::node::NodeState;

/// Answers a peer's URL request as the URL's owner.
pub(crate) async fn answer(_state: &NodeState, _from: &NodeName, _request: Bytes) -> UrlReply {
    UrlReply::Declined
}
