//! The ceiling: a minimal in-process axum server that answers every POST the way rushline
//! answers an accepted request — `202`, a `Location` header and a JSON body of the same size —
//! and does nothing else. Blasting it with the same client settings in the same run tells how
//! much of the accept rate the client, the loopback and the HTTP stack alone allow on this
//! machine; rushline's rate is reported as a ratio of it.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::LoadError;

/// A running ceiling server; stops when dropped.
#[derive(Debug)]
pub struct Ceiling {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

/// A `202` body of exactly `len` bytes shaped like rushline's
/// (`{"request_id":…,"status":"queued","campaign_id":…}`), padding the campaign id.
pub fn accept_body(len: usize) -> String {
    let fixed = r#"{"request_id":"00000000-0000-4000-8000-000000000000","status":"queued","campaign_id":""}"#;
    let pad = len.saturating_sub(fixed.len()).max(1);
    format!(
        r#"{{"request_id":"00000000-0000-4000-8000-000000000000","status":"queued","campaign_id":"{}"}}"#,
        "c".repeat(pad)
    )
}

impl Ceiling {
    /// Binds `127.0.0.1:0` and serves bodies of `body_len` bytes.
    pub async fn start(body_len: usize) -> Result<Self, LoadError> {
        let body = Bytes::from(accept_body(body_len));
        let location =
            HeaderValue::from_static("/v1/requests/00000000-0000-4000-8000-000000000000");
        let handler = move |_body: Bytes| {
            let (body, location) = (body.clone(), location.clone());
            async move {
                (
                    StatusCode::ACCEPTED,
                    [
                        (header::LOCATION, location),
                        (
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        ),
                    ],
                    body,
                )
                    .into_response()
            }
        };
        let router = Router::new().fallback(handler);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(LoadError::io("binding the ceiling server"))?;
        let addr = listener
            .local_addr()
            .map_err(LoadError::io("reading the ceiling server's address"))?;
        let task = tokio::spawn(async move {
            // Serving only ends when the task is aborted (on drop); an accept error ends it early
            // and the blast against it then reports failures.
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { addr, task })
    }

    /// `http://127.0.0.1:port`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_requested_size() {
        for len in [100, 120, 160] {
            assert_eq!(accept_body(len).len(), len);
        }
    }
}
