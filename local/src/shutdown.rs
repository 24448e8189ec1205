//! The shutdown signal, broadcast to every background task (mini-redis style).
//!
//! One `Shutdown` per task; the server flips the shared flag once, and each task notices it at its
//! next await point, finishes what it is doing (a hand-off in flight is never cut short) and
//! returns. A `watch` channel rather than a `broadcast` one, so a task that subscribes after the
//! signal still sees it.

use tokio::sync::watch;

/// Sends the signal.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

/// Receives the signal.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// A connected pair.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger { tx }, Shutdown { rx })
}

impl Trigger {
    /// Tells every task to stop.
    pub fn fire(&self) {
        self.tx.send_replace(true);
    }

    /// A new receiver.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    /// True once the signal was sent.
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits for the signal (returns at once if it was sent already, or if the sender is gone).
    pub async fn recv(&mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}
