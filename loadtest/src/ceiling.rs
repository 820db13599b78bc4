//! The ceiling: a minimal in-process axum server that answers every POST the way rushline
//! answers an accepted request — `202`, a `Location` header and a JSON body of the same size —
//! and does nothing else. Blasting it with the same client settings in the same run tells how
//! much of the accept rate the client, the loopback and the HTTP stack alone allow on this
//! machine; rushline's rate is reported as a ratio of it.
//!
//! The issue's ceiling runs inside the load generator, sharing its runtime with the client.
//! rushline's API is a process of its own, so the same server is also started as a child
//! process ([`CeilingProcess`], this binary's hidden `ceiling-server` command): the two ceilings
//! show how much of the gap is just the second process.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
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

/// Serves the ceiling until standard input closes (the parent [`CeilingProcess`] dropped it,
/// or died): prints the base URL as its first line of output.
pub async fn serve_until_stdin_closes(body_len: usize) -> Result<(), LoadError> {
    let ceiling = Ceiling::start(body_len).await?;
    println!("{}", ceiling.base());
    let mut sink = Vec::new();
    tokio::io::stdin()
        .read_to_end(&mut sink)
        .await
        .map_err(LoadError::io("waiting on standard input"))?;
    Ok(())
}

/// The same ceiling server in a child process of its own; killed when dropped.
#[derive(Debug)]
pub struct CeilingProcess {
    base: String,
    child: Child,
}

impl CeilingProcess {
    /// Starts this binary's (`rushline-loadtest`'s) `ceiling-server` and waits for its address.
    pub async fn spawn(body_len: usize) -> Result<Self, LoadError> {
        let exe = std::env::current_exe().map_err(LoadError::io("finding this binary"))?;
        Self::spawn_from(&exe, body_len).await
    }

    /// Like [`CeilingProcess::spawn`], with the `rushline-loadtest` binary at `exe`.
    pub async fn spawn_from(exe: &std::path::Path, body_len: usize) -> Result<Self, LoadError> {
        let mut child = Command::new(exe)
            .arg("ceiling-server")
            .arg("--body-len")
            .arg(body_len.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(LoadError::io("starting the ceiling process"))?;
        let stdout = child.stdout.take().ok_or_else(|| LoadError::Unexpected {
            what: "the ceiling process".into(),
            detail: "no standard output".into(),
        })?;
        let mut line = String::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await;
        match read {
            Ok(Ok(n)) if n > 0 && line.starts_with("http://127.0.0.1:") => Ok(Self {
                base: line.trim().to_owned(),
                child,
            }),
            Ok(Ok(_)) => Err(LoadError::Unexpected {
                what: "the ceiling process".into(),
                detail: format!("first line {line:?}, not its address"),
            }),
            Ok(Err(e)) => Err(LoadError::io("reading the ceiling process's address")(e)),
            Err(_) => Err(LoadError::Timeout(
                "the ceiling process's address (10 s)".into(),
            )),
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The child's process id, for its CPU time.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
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
