//! Notifications over Redis pub/sub, each subscription on its own dedicated connection.
//!
//! Two channels: `work` (a campaign has new queue or log entries — wakes idle workers without
//! polling) and `decided` (these requests just got their final status — wakes `?wait=` callers).
//! A subscription that drops loses messages; callers reconnect and then re-check state, so a lost
//! message costs latency, never correctness.
//!
//! On a Redis Cluster a classic subscription on any one node hears every node's `PUBLISH` (the
//! cluster bus carries them), so a subscriber connects to one node given in the URL list and,
//! when that connection drops (the node died), to the next. Sharded pub/sub (`SPUBLISH`) would
//! spare the bus that broadcast, but a channel would then live in one slot: every campaign's
//! wake-ups would go through one master (the `work` channel is deployment-wide), and workers
//! and APIs would have to follow that slot through failovers. At rushline's message rate (one
//! `work` message per idle-to-busy change and one `decided` message per decided batch) the
//! broadcast is the cheaper choice.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{Stream, StreamExt};

use crate::{Queue, QueueError};

/// Opens subscriptions; cheap to clone.
#[derive(Clone)]
pub struct Subscriber {
    /// The single server, or each cluster node given in the URL list.
    nodes: Arc<[redis::Client]>,
    /// The node the next subscription tries first: moves on after a failure, so a dead node is
    /// not tried first again.
    next: Arc<AtomicUsize>,
    timeout: std::time::Duration,
}

/// A live subscription.
pub struct Notifications {
    messages: Pin<Box<dyn Stream<Item = redis::Msg> + Send>>,
}

impl Queue {
    /// A subscriber on this Redis.
    pub fn subscriber(&self) -> Subscriber {
        Subscriber {
            nodes: self.target.node_clients().into(),
            next: Arc::default(),
            timeout: self.config.timeout,
        }
    }
}

impl Subscriber {
    /// Subscribes to `channel` on a new dedicated connection (on a cluster: to the first node
    /// of the list, from the one after the last failure, that answers).
    pub async fn subscribe(&self, channel: &str) -> Result<Notifications, QueueError> {
        let mut last = QueueError::Config("no Redis node to subscribe on".into());
        for _ in 0..self.nodes.len() {
            let index = self.next.load(Ordering::Relaxed) % self.nodes.len();
            let client = &self.nodes[index];
            let connect = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(channel).await?;
                Ok::<_, QueueError>(pubsub)
            };
            match tokio::time::timeout(self.timeout, connect).await {
                Ok(Ok(pubsub)) => {
                    return Ok(Notifications {
                        messages: Box::pin(pubsub.into_on_message()),
                    });
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = QueueError::Timeout,
            }
            self.next.fetch_add(1, Ordering::Relaxed);
        }
        Err(last)
    }
}

impl Notifications {
    /// The next message's payload; `None` once the connection is gone (resubscribe).
    pub async fn next(&mut self) -> Option<String> {
        loop {
            let msg = self.messages.next().await?;
            if let Ok(payload) = msg.get_payload::<String>() {
                return Some(payload);
            }
        }
    }
}
