//! Ctrl-C and SIGTERM: the first one makes the benchmark stop at its next
//! check and unwind, so the drop guards kill the servers and remove the temp
//! dir; a second one exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use tokio::signal::unix::{SignalKind, signal};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Starts the thread that watches for SIGINT and SIGTERM; `program` names
/// the benchmark in the messages.
pub fn install(program: &'static str) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("building the signal runtime")?;
    let (mut int, mut term) = runtime
        .block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            ))
        })
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            runtime.block_on(async {
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    if INTERRUPTED.swap(true, Ordering::SeqCst) {
                        eprintln!("{program}: interrupted again; exiting without cleanup");
                        std::process::exit(130);
                    }
                    eprintln!(
                        "{program}: interrupted; stopping the servers and cleaning up \
                         (interrupt again to exit at once)"
                    );
                }
            });
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// Whether an interrupt arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fails once an interrupt has arrived.
pub fn check() -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}
