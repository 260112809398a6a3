//! Usage metering off the request path: handlers hand events to a channel and a
//! background writer stores them in batches, so that a request never waits for a
//! database write. `flush` is a barrier: once it returns, every event sent before
//! it is stored.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use crate::store::{Store, UsageEvent};

const BATCH: usize = 512;
/// How long the writer gathers events after the first one before writing, so
/// that a steady trickle of requests costs a few transactions a second, not one
/// each. A flush does not wait.
const GATHER: std::time::Duration = std::time::Duration::from_millis(100);

#[expect(
    clippy::large_enum_variant,
    reason = "events are the common message; boxing would allocate per request"
)]
enum Msg {
    Event(UsageEvent),
    Flush(oneshot::Sender<()>),
    /// Credit holds of requests that ended without a usage event.
    Release(Vec<String>),
}

/// Releases credit holds through the writer (from a `Drop`, which cannot
/// wait on the store).
#[derive(Clone)]
pub struct Releaser(mpsc::UnboundedSender<Msg>);

impl Releaser {
    pub fn release(&self, holds: Vec<String>) {
        let _ = self.0.send(Msg::Release(holds));
    }
}

pub struct Meter {
    tx: mpsc::UnboundedSender<Msg>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Meter {
    /// Starts the writer on the current Tokio runtime.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(write_loop(store, rx));
        Meter {
            tx,
            task: Mutex::new(Some(task)),
        }
    }

    pub fn record(&self, event: UsageEvent) {
        if self.tx.send(Msg::Event(event)).is_err() {
            tracing::warn!("usage event dropped: the meter has stopped");
        }
    }

    pub fn releaser(&self) -> Releaser {
        Releaser(self.tx.clone())
    }

    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes what is pending and stops the writer.
    pub async fn shutdown(&self) {
        self.flush().await;
        if let Some(task) = self.task.lock().await.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

async fn write_loop(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut waiters = Vec::new();
    let mut released: Vec<String> = Vec::new();
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + GATHER;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(e) => batch.push(e),
                Msg::Flush(w) => waiters.push(w),
                Msg::Release(holds) => released.extend(holds),
            }
            if batch.len() < BATCH {
                next = match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(_) if waiters.is_empty() => tokio::time::timeout_at(deadline, rx.recv())
                        .await
                        .ok()
                        .flatten(),
                    Err(_) => None,
                };
            }
        }
        if !batch.is_empty() {
            if let Err(e) = store.record_usage(&batch).await {
                tracing::error!(error = %e, events = batch.len(), "storing usage events failed");
            }
            batch.clear();
        }
        if !released.is_empty() {
            if let Err(e) = store.release_holds(&released).await {
                tracing::error!(error = %e, holds = released.len(), "releasing credit holds failed");
            }
            released.clear();
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}
