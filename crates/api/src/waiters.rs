//! `?wait=N`: park a status request until its request is decided.
//!
//! Workers publish the ids of every decided batch on the `decided` channel. Each API process
//! keeps one subscription (a dedicated connection) and a map from request id to the callers
//! waiting on it; a message wakes exactly those callers, who then read the final status. No
//! caller polls. A waiter registers *before* it reads the status, so a decision landing between
//! the read and the wait still wakes it. When the subscription drops, every waiter is woken to
//! re-read (a lost message costs a re-read, not a missed answer), and the subscription is
//! re-established with backoff (`rushline_runtime::Backoff`).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rushline_domain::RequestId;
use rushline_queue::Subscriber;
use rushline_runtime::Backoff;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use tokio_util::sync::CancellationToken;

/// The waiting callers of one process.
#[derive(Clone, Default)]
pub struct Waiters {
    slots: Arc<Mutex<HashMap<RequestId, Slot>>>,
    /// Woken on shutdown and on reconnects: every waiter re-reads.
    everyone: Arc<Notify>,
}

struct Slot {
    notify: Arc<Notify>,
    waiting: usize,
}

/// A caller's registration; dropping it deregisters.
///
/// Its wake-ups are armed at registration (`notified_owned` futures receive `notify_waiters`
/// from the moment they exist), which is what makes register-then-read race-free.
pub struct Waiting {
    waiters: Waiters,
    id: RequestId,
    mine: Pin<Box<OwnedNotified>>,
    all: Pin<Box<OwnedNotified>>,
}

impl Waiters {
    /// Registers interest in `id`. Call before reading the status.
    pub fn register(&self, id: RequestId) -> Waiting {
        let mut slots = self.lock();
        let slot = slots.entry(id).or_insert_with(|| Slot {
            notify: Arc::new(Notify::new()),
            waiting: 0,
        });
        slot.waiting += 1;
        Waiting {
            waiters: self.clone(),
            id,
            mine: Box::pin(slot.notify.clone().notified_owned()),
            all: Box::pin(self.everyone.clone().notified_owned()),
        }
    }

    /// Wakes the callers waiting on any of the space-separated ids in `message`.
    pub fn wake(&self, message: &str) {
        let slots = self.lock();
        if slots.is_empty() {
            return;
        }
        for id in message.split(' ') {
            if let Ok(id) = RequestId::parse(id)
                && let Some(slot) = slots.get(&id)
            {
                slot.notify.notify_waiters();
            }
        }
    }

    /// Wakes every waiter (to re-read and answer).
    pub fn wake_all(&self) {
        self.everyone.notify_waiters();
    }

    /// Callers currently waiting.
    pub fn len(&self) -> usize {
        self.lock().values().map(|s| s.waiting).sum()
    }

    /// Whether no caller waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, Slot>> {
        // A poisoned map only means a panic elsewhere mid-update of a counter; keep serving.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the `decided` subscription alive until `token` is cancelled, then wakes everyone.
    pub async fn listen(self, subscriber: Subscriber, channel: String, token: CancellationToken) {
        let mut backoff = Backoff::default();
        while !token.is_cancelled() {
            match subscriber.subscribe(&channel).await {
                Ok(mut notifications) => {
                    backoff.reset();
                    // Anything decided while we were not subscribed: re-read.
                    self.wake_all();
                    loop {
                        tokio::select! {
                            () = token.cancelled() => break,
                            message = notifications.next() => match message {
                                Some(ids) => self.wake(&ids),
                                None => break,
                            },
                        }
                    }
                    tracing::warn!("decided-notification subscription ended; resubscribing");
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to decided notifications"),
            }
            self.wake_all();
            tokio::select! {
                () = token.cancelled() => {}
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
        self.wake_all();
    }
}

impl Waiting {
    /// Resolves when the request may have been decided (or everyone is told to re-read), or
    /// after `timeout`.
    pub async fn wait(&mut self, timeout: Duration) {
        tokio::select! {
            () = self.mine.as_mut() => {}
            () = self.all.as_mut() => {}
            () = tokio::time::sleep(timeout) => {}
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut slots = self.waiters.lock();
        if let Some(slot) = slots.get_mut(&self.id) {
            slot.waiting -= 1;
            if slot.waiting == 0 {
                slots.remove(&self.id);
            }
        }
    }
}
