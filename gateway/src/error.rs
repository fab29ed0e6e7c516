//! Errors that end a request, each knowing whose fault it was and which
//! status code that means.

use http::StatusCode;

/// Who caused a request to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The client sent something we will not act on (4xx).
    Client,
    /// A peer failed or went silent (502, 504).
    Peer,
    /// The origin failed, went silent or is saturated (502, 503, 504).
    Origin,
    /// Something inside this node failed (5xx).
    Internal,
}

/// A request that cannot be answered normally.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// The request is malformed; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// No such object or route.
    #[error("not found")]
    NotFound,
    /// The route exists but not for this method.
    #[error("method not allowed; allowed: {allow}")]
    MethodNotAllowed {
        /// Value for the `Allow` header.
        allow: &'static str,
    },
    /// Missing or wrong bearer token on the admin listener.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The upload is larger than the node accepts.
    #[error("body larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The client stopped sending the request body.
    #[error("client aborted the request body: {0}")]
    ClientAborted(String),
    /// The store's disk is full.
    #[error("insufficient storage: {0}")]
    StorageFull(String),
    /// The node is shutting down or the store is closed.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Peers hold the object but none delivered it intact.
    #[error("bad gateway: {0}")]
    Peer(String),
    /// Peers hold the object but went silent.
    #[error("gateway timeout: {0}")]
    PeerTimeout(String),
    /// The origin failed or answered with something that is not HTTP.
    #[error("bad gateway: {0}")]
    Origin(crate::origin::OriginError),
    /// The origin answered a revalidation with a server error (500, 502, 503,
    /// 504); the caller serves its stale entry instead (stale-if-error).
    #[error("bad gateway: origin answered {0}")]
    OriginStatus(String),
    /// Only a stored response was acceptable (`only-if-cached`) and none is.
    #[error("gateway timeout: only-if-cached and nothing suitable is stored")]
    NotCached,
    /// A failure inside the node (store IO, database, a panicked task).
    #[error("internal error: {0}")]
    Internal(String),
}

impl RequestError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            RequestError::BadRequest(_) | RequestError::ClientAborted(_) => StatusCode::BAD_REQUEST,
            RequestError::NotFound => StatusCode::NOT_FOUND,
            RequestError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::Unauthorized => StatusCode::UNAUTHORIZED,
            RequestError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            RequestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::Peer(_) => StatusCode::BAD_GATEWAY,
            RequestError::PeerTimeout(_) | RequestError::NotCached => StatusCode::GATEWAY_TIMEOUT,
            RequestError::Origin(err) if err.is_timeout() => StatusCode::GATEWAY_TIMEOUT,
            RequestError::Origin(crate::origin::OriginError::Overloaded(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RequestError::Origin(_) | RequestError::OriginStatus(_) => StatusCode::BAD_GATEWAY,
            RequestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the origin is at fault: what stale-if-error may paper over.
    pub(crate) fn is_upstream(&self) -> bool {
        self.side() == Side::Origin
    }

    pub(crate) fn side(&self) -> Side {
        match self {
            RequestError::Peer(_) | RequestError::PeerTimeout(_) => Side::Peer,
            RequestError::Origin(_) | RequestError::OriginStatus(_) => Side::Origin,
            _ if self.status().is_client_error() => Side::Client,
            _ => Side::Internal,
        }
    }

    /// Logs at the level the side deserves: a client's mistake is routine,
    /// a failure of ours needs attention.
    pub(crate) fn log(&self) {
        match self.side() {
            Side::Client => tracing::debug!(status = self.status().as_u16(), "{self}"),
            Side::Peer | Side::Origin => {
                tracing::warn!(status = self.status().as_u16(), "{self}");
            }
            Side::Internal => tracing::error!(status = self.status().as_u16(), "{self}"),
        }
    }

    /// Short token for the `detail` parameter of `Cache-Status`.
    pub(crate) fn detail(&self) -> &'static str {
        match self {
            RequestError::BadRequest(_) | RequestError::ClientAborted(_) => "bad-request",
            RequestError::NotFound => "not-found",
            RequestError::MethodNotAllowed { .. } => "method",
            RequestError::Unauthorized => "unauthorized",
            RequestError::PayloadTooLarge { .. } => "too-large",
            RequestError::StorageFull(_) => "storage-full",
            RequestError::Unavailable(_) => "unavailable",
            RequestError::Peer(_) => "peer-error",
            RequestError::PeerTimeout(_) => "peer-timeout",
            RequestError::Origin(err) => err.kind(),
            RequestError::OriginStatus(_) => "origin-error",
            RequestError::NotCached => "not-cached",
            RequestError::Internal(_) => "error",
        }
    }
}

impl From<fleetcache_store::ReadError> for RequestError {
    fn from(err: fleetcache_store::ReadError) -> Self {
        RequestError::Internal(err.to_string())
    }
}

impl From<fleetcache_store::WriteError> for RequestError {
    fn from(err: fleetcache_store::WriteError) -> Self {
        match err {
            fleetcache_store::WriteError::Closed => RequestError::Unavailable(err.to_string()),
            other => RequestError::Internal(other.to_string()),
        }
    }
}

impl From<fleetcache_store::IngestError> for RequestError {
    fn from(err: fleetcache_store::IngestError) -> Self {
        use fleetcache_store::IngestError as E;
        match err {
            E::StorageFull => RequestError::StorageFull(err.to_string()),
            E::TooLarge { capacity, .. } => RequestError::PayloadTooLarge { limit: capacity },
            E::Closed => RequestError::Unavailable(err.to_string()),
            other => RequestError::Internal(other.to_string()),
        }
    }
}

impl From<tokio::task::JoinError> for RequestError {
    fn from(err: tokio::task::JoinError) -> Self {
        RequestError::Internal(format!("blocking task failed: {err}"))
    }
}

impl From<crate::origin::OriginError> for RequestError {
    fn from(err: crate::origin::OriginError) -> Self {
        RequestError::Origin(err)
    }
}
