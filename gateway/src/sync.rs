//! The two small concurrency helpers every module of the gateway shares.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex, carrying on past poisoning: the data behind our mutexes stays
/// consistent across a panic (each critical section is a single update), and a
/// request must not fail because another one panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs blocking work (store IO, redb transactions) on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    tokio::task::spawn_blocking(work).await
}
