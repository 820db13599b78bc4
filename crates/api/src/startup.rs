//! Building and running the application: `main` only wires these.
//!
//! The API serves HTTP/1.1 from its own accept loop ([`Application::run_until_stopped`]) rather
//! than `axum::serve`, because slow clients must be bounded where only hyper can see them:
//!
//! - a connection may hold at most one permit of `RUSHLINE_HTTP_MAX_CONNECTIONS`; past that a new
//!   connection is answered a canned `503` and closed at once, so the open ones keep being served
//!   and the process never runs out of file descriptors on idle sockets;
//! - hyper closes a connection whose request head is not complete within
//!   `RUSHLINE_HTTP_HEADER_TIMEOUT_MS` of the connection opening or of its previous response
//!   (a half-sent head, a silent socket);
//! - a watchdog closes a kept-alive connection that starts no request within
//!   `RUSHLINE_HTTP_IDLE_TIMEOUT_MS` of its last response;
//! - the body's read time is bounded where it is read (`http::extract::ApiJson`, `408`).
//!
//! HTTP/2 is not served: clients reach rushline through a load balancer or directly with plain
//! HTTP/1.1 keep-alive, and leaving h2 out leaves out its own slow-client surface (streams,
//! pings, flow-control windows).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use rushline_queue::behind::BehindCheck;
use rushline_queue::{Queue, QueueConfig};
use rushline_runtime::postgres;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::accept::Acceptor;
use crate::config::{Config, ConnectionLimits};
use crate::state::{AppState, Parts};
use crate::tickets::Tickets;
use crate::waiters::Waiters;
use crate::waiting_room::WaitingRoom;
use crate::{http, telemetry};

/// How long shutdown waits for open connections to finish before dropping them. In-flight
/// requests finish well within it (backing calls are bounded, `?wait=` callers are woken); what
/// it cuts short is a client still dribbling a request head or body.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);

/// Largest request head (request line and headers): past it, `431` (or `414` for a URI that
/// alone is too long). Header fields are also capped at hyper's default of 100 (`431`), left
/// as is: setting that number moves hyper's header array from the stack to the heap.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long the accept loop pauses after an accept error other than a client's reset (out of
/// file descriptors, say), so it does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A bound, ready-to-serve API.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects to PostgreSQL (patiently, so a stack can start in any order: see
    /// `rushline_runtime::postgres`), applies migrations, prepares Redis and binds the listener
    /// (port 0 picks a free port).
    pub async fn build(config: Config, shutdown: CancellationToken) -> anyhow::Result<Self> {
        telemetry::metrics();
        tokio::spawn(telemetry::upkeep(shutdown.clone()));
        let store = postgres::connect_patiently(postgres::Connect {
            url: &config.shared.database_url,
            max_connections: config.db_max_connections,
            timeout: config.backend_timeout,
        })
        .await
        .context("connecting to PostgreSQL")?;
        store.migrate().await.context("applying migrations")?;
        let queue = Queue::new(QueueConfig {
            namespace: config.shared.key_namespace.clone(),
            timeout: config.backend_timeout,
            status_ttl: config.shared.status_ttl,
            max_queue: config.max_queue,
            max_log_entries: config.shared.max_log_entries,
            cluster: config.shared.redis_cluster,
            ..QueueConfig::new(config.shared.redis_url.clone())
        })
        .context("configuring Redis")?;
        let tickets = ticket_keys(&config, &queue, &shutdown);
        let listener = TcpListener::bind(&config.http_addr)
            .await
            .with_context(|| format!("binding {}", config.http_addr))?;
        let waiters = Waiters::default();
        tokio::spawn(waiters.clone().listen(
            queue.subscriber(),
            queue.keys().decided_channel(),
            shutdown.clone(),
        ));
        let acceptor = Acceptor::spawn(
            queue.clone(),
            config.accept_batch,
            config.accept_in_flight,
            config.rate_limits.user,
        );
        let waiting_room = WaitingRoom::new(queue.clone(), tickets.clone());
        let state = AppState::new(Parts {
            config: Arc::new(config),
            queue,
            store,
            acceptor,
            waiters,
            waiting_room,
            tickets,
            shutdown,
            behind: BehindCheck::default(),
        });
        Ok(Self { listener, state })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (tests use its Redis and PostgreSQL handles).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the shutdown token is cancelled, then stops accepting connections, wakes
    /// `?wait=` callers so they answer at once, finishes in-flight requests and returns.
    ///
    /// Connections still open [`SHUTDOWN_DRAIN`] after shutdown began are dropped.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.state.shutdown.clone();
        let limits = self.state.config.connections;
        let router = http::router(self.state);
        serve(self.listener, router, limits, shutdown).await;
        Ok(())
    }
}

/// The configured ticket keys or, unset, the development key shared through Redis: read in the
/// background, so the API starts (and answers `503` where it needs a key) while Redis is down.
fn ticket_keys(config: &Config, queue: &Queue, shutdown: &CancellationToken) -> Tickets {
    match &config.ticket_keys {
        Some(keys) => Tickets::new(keys.clone(), config.ticket_cache_entries),
        None => {
            let tickets = Tickets::awaiting_shared_key(config.ticket_cache_entries);
            tokio::spawn(
                tickets
                    .clone()
                    .share_through_redis(queue.clone(), shutdown.clone()),
            );
            tickets
        }
    }
}

/// The accept loop: one task per connection, each holding a permit of the connection cap.
async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .max_header_size(MAX_HEAD_BYTES);
    let over_capacity = over_capacity_response();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_client_reset(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "accepting a connection failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(&stream, &over_capacity);
            continue;
        };
        connections.spawn(serve_connection(
            stream,
            peer,
            http.clone(),
            router.clone(),
            limits.keep_alive_idle,
            Shutdown {
                graceful: shutdown.clone(),
                hard: hard_stop.clone(),
            },
            permit,
        ));
    }
    // Stop accepting: the listener closes here, so new clients are refused by the kernel.
    drop(listener);
    connections.close();
    if tokio::time::timeout(SHUTDOWN_DRAIN, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown drain; dropping them"
        );
        hard_stop.cancel();
        connections.wait().await;
    }
}

/// The two ways a connection is told to stop.
struct Shutdown {
    /// Finish the request in flight, then close (idle connections close at once).
    graceful: CancellationToken,
    /// Drop the connection now.
    hard: CancellationToken,
}

/// Serves one connection until the client closes it, a bound closes it, or shutdown does.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    http: http1::Builder,
    router: Router,
    keep_alive_idle: Duration,
    shutdown: Shutdown,
    permit: OwnedSemaphorePermit,
) {
    metrics::gauge!(telemetry::HTTP_CONNECTIONS).increment(1.0);
    let (activity, watched) = watch::channel(Activity::default());
    let service = ConnectionService {
        router,
        peer,
        activity: Arc::new(activity),
    };
    let mut connection = pin!(http.serve_connection(TokioIo::new(stream), service));
    let mut idle = pin!(idle_for(watched, keep_alive_idle));
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    // A client that left, timed out or sent garbage: its problem, not ours.
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = shutdown.graceful.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = &mut idle, if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = shutdown.hard.cancelled() => break,
        }
    }
    metrics::gauge!(telemetry::HTTP_CONNECTIONS).decrement(1.0);
    drop(permit);
}

/// What a connection is doing, for its idle watchdog.
#[derive(Default)]
struct Activity {
    /// Requests being answered.
    in_flight: usize,
}

/// Resolves once the connection has had no request in flight for `idle`: never while one is.
async fn idle_for(mut activity: watch::Receiver<Activity>, idle: Duration) {
    loop {
        let busy = activity.borrow_and_update().in_flight > 0;
        let changed = if busy {
            activity.changed().await
        } else {
            match tokio::time::timeout(idle, activity.changed()).await {
                Err(_elapsed) => return,
                Ok(changed) => changed,
            }
        };
        if changed.is_err() {
            // The connection is gone; its own future ends the task.
            std::future::pending::<()>().await;
        }
    }
}

/// The router as hyper calls it, counting the connection's requests in flight and telling each
/// request its TCP peer (axum's `ConnectInfo`, which the per-address rate limit reads).
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    activity: Arc<watch::Sender<Activity>>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnectionService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, mut request: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::begin(self.activity.clone());
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let response = self
            .router
            .clone()
            .oneshot(request.map(axum::body::Body::new));
        Box::pin(async move {
            let response = response.await;
            drop(in_flight);
            response
        })
    }
}

/// One request in flight on a connection; dropping it (answered, or the client left) ends it.
struct InFlight(Arc<watch::Sender<Activity>>);

impl InFlight {
    fn begin(activity: Arc<watch::Sender<Activity>>) -> Self {
        activity.send_modify(|a| a.in_flight += 1);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|a| a.in_flight -= 1);
    }
}

/// Errors `accept` returns for one client that gave up during the handshake; nothing to log.
fn is_client_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// The canned answer to a connection over the cap: problem+json `503` with `Retry-After`, then
/// close.
fn over_capacity_response() -> Vec<u8> {
    let body = r#"{"type":"urn:rushline:problem:overloaded","title":"Service Unavailable","status":503,"detail":"too many open connections; retry after Retry-After seconds"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: {}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        http::problem::RETRY_AFTER_SECS,
        body.len()
    )
    .into_bytes()
}

/// Answers a connection over the cap without a task: one non-blocking write into the fresh
/// socket's empty send buffer (a client that cannot take it gets the close alone), then close.
fn refuse(stream: &TcpStream, response: &[u8]) {
    metrics::counter!(telemetry::HTTP_CONNECTIONS_REFUSED).increment(1);
    let _ = stream.try_write(response);
}
