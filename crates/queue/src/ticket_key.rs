//! The waiting-room ticket key API replicas share when `RUSHLINE_TICKET_KEYS` is unset.
//!
//! Several replicas behind a balancer must sign with one key (a ticket from one is polled at
//! another), so the first replica to start stores its fresh key and every replica uses what is
//! stored. No TTL: the key must outlive every ticket signed with it. A development default:
//! the key is lost with Redis's data (see the API's `tickets` module).

use crate::{Queue, QueueError};

impl Queue {
    /// Stores `candidate` under [`crate::Keys::ticket_key`] unless a key is there already, and
    /// returns the key stored: `SET NX` and `GET` in one `MULTI`/`EXEC`, so the answer is the
    /// value the `SET NX` kept (the candidate when this call stored it, the earlier one
    /// otherwise) and every replica, however they race, gets the same key.
    pub async fn shared_ticket_key(&self, candidate: &str) -> Result<String, QueueError> {
        let key = self.keys.ticket_key();
        let key = key.as_str();
        let (stored,): (Option<String>,) = self
            .run(|mut conn| async move {
                Ok(redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(key)
                    .arg(candidate)
                    .arg("NX")
                    .ignore()
                    .cmd("GET")
                    .arg(key)
                    .query_async(&mut conn)
                    .await?)
            })
            .await?;
        // Inside one transaction the GET reads what SET NX left: never nothing.
        stored.ok_or_else(|| QueueError::Protocol(format!("{key} empty right after SET NX")))
    }
}
