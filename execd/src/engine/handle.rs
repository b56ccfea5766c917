//! The engine's thread and the handle that sends it work: the engine is synchronous and owns
//! the state alone, so the async service hands it one operation at a time, in order, through a
//! queue. Kept apart from the engine itself, which does not know which thread runs it.

use crate::engine::Engine;
use hp_daemon::CancellationToken;

type Job = Box<dyn FnOnce(&mut Engine, &CancellationToken) + Send>;

/// The engine is gone (its thread ended).
#[derive(Debug, thiserror::Error)]
#[error("the execution engine has stopped")]
pub struct EngineGone;

/// Sends work to the engine's thread.
#[derive(Clone)]
pub struct EngineHandle {
    tx: tokio::sync::mpsc::Sender<Job>,
}

impl EngineHandle {
    /// Runs `f` on the engine, after every operation sent before it.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine, &CancellationToken) -> R + Send + 'static,
    ) -> Result<R, EngineGone> {
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |engine, cancel| {
            let _ = reply_tx.send(f(engine, cancel));
        });
        self.tx.send(job).await.map_err(|_| EngineGone)?;
        reply_rx.await.map_err(|_| EngineGone)
    }
}

/// Starts the engine's thread. It stops when every handle is dropped; `cancel` kills a running
/// contract (shutdown).
pub fn spawn(
    mut engine: Engine,
    cancel: CancellationToken,
) -> std::io::Result<(EngineHandle, std::thread::JoinHandle<()>)> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(64);
    let thread = std::thread::Builder::new().name("hp-execd-engine".into()).spawn(move || {
        while let Some(job) = rx.blocking_recv() {
            job(&mut engine, &cancel);
        }
    })?;
    Ok((EngineHandle { tx }, thread))
}
