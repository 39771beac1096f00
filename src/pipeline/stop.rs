//! Stopping a run from outside (SIGINT, SIGTERM): a [`Stop`] the job checks at every point
//! where it can stop cleanly. A shard's pass cancels its partitions and joins every writer
//! thread before it returns, so nothing is written after the run has removed its uncommitted
//! work.

use tokio::sync::watch;

/// The receiving side: whether, and by which signal, the run was asked to stop.
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<Option<&'static str>>);

/// The sending side, held by whoever handles the signals.
#[derive(Debug)]
pub struct StopSender(watch::Sender<Option<&'static str>>);

impl Stop {
    /// A pair: the job gets the [`Stop`], the signal handler the [`StopSender`].
    pub fn channel() -> (StopSender, Stop) {
        let (tx, rx) = watch::channel(None);
        (StopSender(tx), Stop(rx))
    }

    /// A stop that never comes (library use without signal handling).
    pub fn never() -> Stop {
        let (tx, rx) = watch::channel(None);
        // The sender lives as long as the process: the receiver never sees it closed.
        std::mem::forget(tx);
        Stop(rx)
    }

    /// The signal, if a stop was asked for.
    pub fn requested(&self) -> Option<&'static str> {
        *self.0.borrow()
    }

    /// Waits for a stop and returns its signal's name.
    pub async fn wait(&mut self) -> &'static str {
        loop {
            if let Some(s) = *self.0.borrow_and_update() {
                return s;
            }
            if self.0.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl StopSender {
    /// Asks the run to stop, naming the signal.
    pub fn stop(&self, signal: &'static str) {
        let _ = self.0.send(Some(signal));
    }
}
