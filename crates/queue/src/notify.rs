//! Notifications over Redis pub/sub, each subscription on its own dedicated connection.
//!
//! Two channels: `work` (a campaign has new queue or log entries — wakes idle workers without
//! polling) and `decided` (these requests just got their final status — wakes `?wait=` callers).
//! A subscription that drops loses messages; callers reconnect and then re-check state, so a lost
//! message costs latency, never correctness.

use std::pin::Pin;

use futures::{Stream, StreamExt};

use crate::{Queue, QueueError};

/// Opens subscriptions; cheap to clone.
#[derive(Clone)]
pub struct Subscriber {
    client: redis::Client,
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
            client: (*self.client).clone(),
            timeout: self.config.timeout,
        }
    }
}

impl Subscriber {
    /// Subscribes to `channel` on a new dedicated connection.
    pub async fn subscribe(&self, channel: &str) -> Result<Notifications, QueueError> {
        let connect = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, QueueError>(pubsub)
        };
        let pubsub = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| QueueError::Timeout)??;
        Ok(Notifications {
            messages: Box::pin(pubsub.into_on_message()),
        })
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
