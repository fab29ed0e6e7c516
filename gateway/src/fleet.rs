//! This node's answers to its peers' version 2 requests (the swarm's
//! [`FleetService`]): URL requests for the URLs it owns, and purges.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use fleetcache_swarm::{FleetService, NodeName, PeerHandle, ServiceFuture, UrlReply};

use crate::node::NodeState;

/// Holds the node weakly: the swarm outlives nothing, and a node shutting down
/// declines.
#[derive(Debug)]
pub(crate) struct FleetAnswers {
    state: Weak<NodeState>,
}

impl FleetAnswers {
    pub(crate) fn new(state: &Arc<NodeState>) -> Arc<Self> {
        Arc::new(FleetAnswers {
            state: Arc::downgrade(state),
        })
    }
}

impl FleetService for FleetAnswers {
    fn fetch_url(&self, from: &NodeName, request: Bytes) -> ServiceFuture<UrlReply> {
        let state = self.state.upgrade();
        let from = from.clone();
        Box::pin(async move {
            match state {
                Some(state) => crate::proxy::peer::answer(&state, &from, request).await,
                None => UrlReply::Declined,
            }
        })
    }

    fn purge(&self, from: &NodeName, request: Bytes) -> ServiceFuture<Option<Bytes>> {
        let purges = self.state.upgrade().and_then(|s| s.purges.clone());
        let from = from.clone();
        Box::pin(async move { purges?.on_push(&from, request).await })
    }

    fn purge_log(&self, from: &NodeName, request: Bytes) -> ServiceFuture<Option<Bytes>> {
        let purges = self.state.upgrade().and_then(|s| s.purges.clone());
        let from = from.clone();
        Box::pin(async move { purges?.on_log_request(&from, request).await })
    }

    fn peer_connected(&self, peer: PeerHandle) {
        if let Some(purges) = self.state.upgrade().and_then(|s| s.purges.clone()) {
            purges.on_peer_connected(peer);
        }
    }
}
