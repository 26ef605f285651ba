//! CI cancels a job with SIGINT or SIGTERM. The deploy then stops at the next safe point: an upload
//! in flight is abandoned (a multipart upload aborted), no new step starts, and the error says what
//! state AWS is left in. Exit 130 for SIGINT, 143 for SIGTERM.

use crate::error::Error;
use tokio::sync::watch;

/// The signal that cancelled the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    /// 128 + the signal number, as shells report it.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }

    /// SIGINT or SIGTERM.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// Whether (and by which signal) the run has been cancelled; cheap to clone and to ask.
#[derive(Clone)]
pub struct Cancel(watch::Receiver<Option<Signal>>);

impl Cancel {
    /// Never fires: for runs and tests that are not cancelled.
    pub fn never() -> Cancel {
        let (tx, rx) = watch::channel(None);
        // Keep the sender alive so `wait` pends forever instead of seeing a closed channel.
        std::mem::forget(tx);
        Cancel(rx)
    }

    /// Fires on the first SIGINT or SIGTERM. Must be called inside the tokio runtime.
    pub fn on_signals() -> Cancel {
        use tokio::signal::unix::{SignalKind, signal};
        let (tx, rx) = watch::channel(None);
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::warn!("cannot listen for SIGINT/SIGTERM; cancellation will not be graceful");
            std::mem::forget(tx);
            return Cancel(rx);
        };
        tokio::spawn(async move {
            let signal = tokio::select! {
                _ = int.recv() => Signal::Interrupt,
                _ = term.recv() => Signal::Terminate,
            };
            tracing::warn!(
                "{} received: stopping at the next safe point",
                signal.name()
            );
            let _ = tx.send(Some(signal));
            // Stay subscribed, so a second signal does not kill the process mid-cleanup.
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
        });
        Cancel(rx)
    }

    /// A Cancel fired by the returned function: for tests.
    pub fn manual() -> (Cancel, impl Fn(Signal)) {
        let (tx, rx) = watch::channel(None);
        (Cancel(rx), move |s| {
            let _ = tx.send(Some(s));
        })
    }

    /// The signal, once one arrived.
    pub fn fired(&self) -> Option<Signal> {
        *self.0.borrow()
    }

    /// Resolves when a signal arrives.
    pub async fn wait(&self) -> Signal {
        let mut rx = self.0.clone();
        loop {
            if let Some(signal) = *rx.borrow_and_update() {
                return signal;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// An error when cancelled, describing `state`: call it before starting each step.
    pub fn check(&self, state: impl FnOnce() -> String) -> Result<(), Error> {
        match self.fired() {
            Some(signal) => Err(cancelled(signal, state())),
            None => Ok(()),
        }
    }
}

/// The error for a run cancelled by `signal`, leaving AWS in `state`.
pub fn cancelled(signal: Signal, state: String) -> Error {
    Error::Cancelled {
        signal: signal.name(),
        code: signal.exit_code(),
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_cancel_fires_once_for_all_clones() {
        let (cancel, fire) = Cancel::manual();
        let other = cancel.clone();
        assert!(cancel.check(|| "x".into()).is_ok());
        fire(Signal::Terminate);
        assert_eq!(other.wait().await, Signal::Terminate);
        let err = cancel.check(|| "nothing was written".into()).unwrap_err();
        assert_eq!(err.exit_code(), 143);
        assert!(
            err.to_string().contains("SIGTERM") && err.to_string().contains("nothing was written")
        );
        assert_eq!(Signal::Interrupt.exit_code(), 130);
    }
}
