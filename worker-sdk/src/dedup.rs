//! The worker's window of messages it has sent: the control plane delivers
//! `SendMessage` at least once (a stream lost with the command in flight, a
//! timeout, a failover, a restarted control plane), and a WhatsApp message
//! must still go out once. The SDK answers a repeated `SendMessage` (same
//! `message_id`) from this window with the first send's receipt, without
//! calling the driver; a repeat that arrives while the first is still in the
//! driver waits for its outcome. The window is per worker process, survives
//! reconnects, and keeps the newest `capacity` successful sends; a failed
//! send is forgotten, so a retry runs the driver again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use wagate_proto::v1;

use crate::driver::DriverError;

type Outcome = Option<Result<v1::SendReceipt, DriverError>>;

enum Slot {
    /// The first send is in the driver; repeats wait on this.
    Running(watch::Receiver<Outcome>),
    Done(v1::SendReceipt),
}

struct Inner {
    slots: HashMap<Arc<str>, Slot>,
    /// Successful sends, oldest first (eviction order).
    order: VecDeque<Arc<str>>,
}

/// See the module documentation.
pub struct SendWindow {
    capacity: usize,
    inner: Mutex<Inner>,
}

/// What to do with a `SendMessage`.
pub enum Claim {
    /// First time: run the driver, then call [`Running::finish`].
    Run(Running),
    /// Already sent: this receipt.
    Done(v1::SendReceipt),
    /// Being sent right now: wait for the first send's outcome.
    Wait(watch::Receiver<Outcome>),
}

impl SendWindow {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner { slots: HashMap::new(), order: VecDeque::new() }),
        })
    }

    pub fn claim(self: &Arc<Self>, message_id: &str) -> Claim {
        let mut inner = self.lock();
        match inner.slots.get(message_id) {
            Some(Slot::Done(r)) => Claim::Done(r.clone()),
            Some(Slot::Running(rx)) => Claim::Wait(rx.clone()),
            None => {
                let (tx, rx) = watch::channel(None);
                let id: Arc<str> = Arc::from(message_id);
                inner.slots.insert(id.clone(), Slot::Running(rx));
                Claim::Run(Running { window: self.clone(), id, tx: Some(tx) })
            }
        }
    }

    /// Messages remembered as sent.
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A send in the driver. Dropped without [`Running::finish`] (the command
/// was cancelled), the slot is freed and waiting repeats get an error.
pub struct Running {
    window: Arc<SendWindow>,
    id: Arc<str>,
    tx: Option<watch::Sender<Outcome>>,
}

impl Running {
    pub fn finish(mut self, outcome: &Result<v1::SendReceipt, DriverError>) {
        let mut inner = self.window.lock();
        match outcome {
            Ok(receipt) => {
                inner.slots.insert(self.id.clone(), Slot::Done(receipt.clone()));
                inner.order.push_back(self.id.clone());
                while inner.order.len() > self.window.capacity {
                    if let Some(old) = inner.order.pop_front() {
                        inner.slots.remove(&old);
                    }
                }
            }
            Err(_) => {
                inner.slots.remove(&self.id);
            }
        }
        drop(inner);
        if let Some(tx) = self.tx.take() {
            tx.send_replace(Some(outcome.clone()));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.window.lock().slots.remove(&self.id);
        }
    }
}

/// Waits for the outcome of a send another command is running.
pub async fn wait(mut rx: watch::Receiver<Outcome>) -> Result<v1::SendReceipt, DriverError> {
    match rx.wait_for(Option::is_some).await {
        Ok(v) => v.clone().unwrap_or_else(|| Err(DriverError::internal("send outcome missing"))),
        Err(_) => Err(DriverError::internal("the first send of this message was cancelled")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(s: &str) -> v1::SendReceipt {
        v1::SendReceipt { wa_message_id: s.into() }
    }

    #[tokio::test]
    async fn repeats_get_the_first_receipt_and_failures_are_forgotten() {
        let w = SendWindow::new(2);
        let Claim::Run(run) = w.claim("a") else { panic!("first claim runs") };
        let Claim::Wait(rx) = w.claim("a") else { panic!("concurrent repeat waits") };
        run.finish(&Ok(receipt("wa1")));
        assert_eq!(wait(rx).await.unwrap(), receipt("wa1"));
        assert!(matches!(w.claim("a"), Claim::Done(r) if r == receipt("wa1")));

        let Claim::Run(run) = w.claim("b") else { panic!() };
        run.finish(&Err(DriverError::not_connected("s")));
        assert!(matches!(w.claim("b"), Claim::Run(_)), "a failed send runs again");

        let Claim::Run(run) = w.claim("c") else { panic!() };
        drop(run);
        assert!(matches!(w.claim("c"), Claim::Run(_)), "a cancelled send runs again");
    }

    #[test]
    fn the_window_is_bounded() {
        let w = SendWindow::new(2);
        for id in ["a", "b", "c"] {
            let Claim::Run(run) = w.claim(id) else { panic!() };
            run.finish(&Ok(receipt(id)));
        }
        assert_eq!(w.len(), 2);
        assert!(matches!(w.claim("a"), Claim::Run(_)), "the oldest was forgotten");
    }
}
