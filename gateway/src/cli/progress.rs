//! A one-line progress display on stderr for `put` and `get`, drawn only when
//! stderr is a terminal; notes (a node failed, a resume) go above it.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the display shows, updated by the transfer as it goes.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Bytes in all; 0 while unknown.
    pub(super) total: AtomicU64,
    /// Bytes done (for `get`: verified and written).
    pub(super) done: AtomicU64,
    /// Times the transfer resumed from another node.
    pub(super) resumes: AtomicU64,
}

impl Counters {
    pub(super) fn new(total: u64) -> Arc<Counters> {
        Arc::new(Counters {
            total: AtomicU64::new(total),
            ..Counters::default()
        })
    }
}

pub(super) struct Progress {
    drawing: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Progress {
    /// No display (stderr is not a terminal, or the bytes go to the terminal).
    pub(super) fn disabled() -> Self {
        Self { drawing: None }
    }

    /// Draws `counters` every 200 ms while stderr is a terminal.
    pub(super) fn start(counters: Arc<Counters>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::disabled();
        }
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            loop {
                let n = counters.done.load(Ordering::Relaxed);
                let total = counters.total.load(Ordering::Relaxed);
                let resumes = counters.resumes.load(Ordering::Relaxed);
                let pct = n.saturating_mul(100).checked_div(total).unwrap_or(100);
                let rate = n as f64 / start.elapsed().as_secs_f64().max(0.001) / 1e6;
                let resumed = match resumes {
                    0 => String::new(),
                    1 => "  (resumed once)".to_owned(),
                    n => format!("  (resumed {n} times)"),
                };
                eprint!(
                    "\r{pct:3}%  {} / {} MB  {rate:.1} MB/s{resumed}   ",
                    n / 1_000_000,
                    total / 1_000_000
                );
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            eprintln!();
        });
        Self {
            drawing: Some((stop, task)),
        }
    }

    /// Prints a line on stderr, above the display when there is one.
    pub(super) fn note(&self, message: &str) {
        if self.drawing.is_some() {
            // Clear the display's line; its next redraw comes below the note.
            eprint!("\r\x1b[K");
        }
        eprintln!("{message}");
    }

    /// Stops the display and ends its line, before anything else is printed.
    pub(super) async fn finish(self) {
        if let Some((stop, task)) = self.drawing {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}
