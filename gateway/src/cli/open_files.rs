//! The open-file limit a node runs with. Every client connection, peer, origin
//! connection and loaded store file holds a descriptor, and a shell's usual soft
//! limit (1024) is far below `http.max_connections`' default of 10,000: the node
//! would refuse connections with EMFILE long before its own limit. So `serve`
//! raises its soft limit to the hard one (what nginx's `worker_rlimit_nofile`
//! asks for by hand) and says when even that is too low.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors beyond the client connections: peers, origin connections, the
/// store's loaded blobs (up to 256), listeners, redb, logs.
const BESIDES_CLIENTS: u64 = 1024;

/// What happened to the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenFiles {
    /// The soft limit before (`None`: unlimited).
    pub(crate) before: Option<u64>,
    /// The soft limit now.
    pub(crate) now: Option<u64>,
}

impl OpenFiles {
    /// Whether `max_connections` clients and the rest fit under the limit now.
    pub(crate) fn enough_for(&self, max_connections: usize) -> bool {
        self.now
            .is_none_or(|now| now >= max_connections as u64 + BESIDES_CLIENTS)
    }
}

/// Raises the soft open-file limit to the hard one. A failure leaves the limit as
/// it was (the node runs, and the warning says what it has).
pub(crate) fn raise_open_files() -> OpenFiles {
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    let now = if limit.current == limit.maximum || setrlimit(Resource::Nofile, raised).is_err() {
        limit.current
    } else {
        limit.maximum
    };
    OpenFiles {
        before: limit.current,
        now,
    }
}
