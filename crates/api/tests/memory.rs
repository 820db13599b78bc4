//! Memory under load: the API keeps nothing per request it served.
//!
//! Its own test binary, because it counts every heap byte of the process with a global
//! allocator. The API (and one worker) run in-process against real Redis and PostgreSQL. Rounds
//! of traffic go through every path a spike uses — accepts grouped by the acceptor, `?wait=`
//! parks, status reads, unknown campaign and request ids — and after each the bounded structures
//! are asserted empty again: waiters, the accept backlog, the code-key cache. Then the live heap
//! is taken around a long burst of requests on one connection: sizes, not RSS (the live heap is
//! what the process holds, without the allocator's fragmentation). It must not grow with the
//! burst; it grew 16 bytes a request while the metrics recorder kept every latency sample until
//! `/metrics` was scraped.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use rushline_domain::{CampaignId, RequestId};
use rushline_queue::Queue;
use rushline_testkit::app::{TestApp, spawn_app};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Counts the bytes the process holds on the heap.
struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter only observes
// sizes of calls that succeeded.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout, which upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (hence the system's) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from the system allocator with `layout`; the caller upholds the rest.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

const ADMIN_TOKEN: &str = "memory-admin-token";
/// Rounds of traffic through every path.
const ROUNDS: usize = 2;
/// Accepted requests per round (each also read back, a tenth of them with `?wait=`).
const ACCEPTS: usize = 1_000;
/// Requests per round for campaign ids that do not exist, and status reads of unknown ids.
const UNKNOWN: usize = 100;
/// Client tasks.
const CONCURRENCY: usize = 32;
/// Requests that bring the connection's buffers to their working size before measuring.
const WARM_UP: usize = 1_000;
/// Requests measured.
const BURST: usize = 20_000;
/// Allowed growth of the live heap over the burst: about a second of latency samples not yet
/// folded (`telemetry::UPKEEP_EVERY`), far less than the 8 bytes per request it grew by while
/// the recorder kept every sample until `/metrics` was scraped (160 KB over the burst).
const MAX_GROWTH_BYTES: isize = 64 * 1024;

struct Stack {
    app: TestApp,
    base: String,
    client: reqwest::Client,
    state: rushline_api::state::AppState,
    queue: Queue,
}

async fn start() -> Stack {
    let app = spawn_app(ADMIN_TOKEN, 1)
        .await
        .expect("start the API and a worker");
    Stack {
        base: app.url.clone(),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(CONCURRENCY)
            .build()
            .expect("client"),
        state: app.state.clone(),
        queue: app.queue().clone(),
        app,
    }
}

/// One press: accept, then read the status back (every tenth waits for the decision).
async fn press(stack: &Stack, campaign: &str, user: String, wait: bool) {
    let answer = stack
        .client
        .post(format!("{}/v1/campaigns/{campaign}/requests", stack.base))
        .json(&json!({ "user_id": user }))
        .send()
        .await
        .expect("POST request");
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let body: Value = answer.json().await.expect("accepted json");
    let id = body["request_id"].as_str().expect("request id").to_owned();
    let query = if wait { "?wait=10" } else { "" };
    let status = stack
        .client
        .get(format!("{}/v1/requests/{id}{query}", stack.base))
        .send()
        .await
        .expect("GET status");
    assert_eq!(status.status(), StatusCode::OK);
    let view: Value = status.json().await.expect("status json");
    if wait {
        assert_eq!(view["status"], "issued", "{view}");
    }
}

/// What a client that does not know the ids does: unknown campaigns, unknown request ids.
async fn stray(stack: &Stack, round: usize, i: usize) {
    let campaign = format!("gone-{round}-{i}");
    let answer = stack
        .client
        .post(format!("{}/v1/campaigns/{campaign}/requests", stack.base))
        .json(&json!({ "user_id": "u" }))
        .send()
        .await
        .expect("POST unknown campaign");
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let id = RequestId::new_for(&CampaignId::parse(campaign).expect("campaign id"));
    let status = stack
        .client
        .get(format!("{}/v1/requests/{id}?wait=5", stack.base))
        .send()
        .await
        .expect("GET unknown id");
    assert_eq!(status.status(), StatusCode::NOT_FOUND);
}

async fn round(stack: &Arc<Stack>, campaign: &str, round: usize) {
    // Every tenth job is a stray; the rest are presses, every tenth of which waits.
    let jobs = ACCEPTS + UNKNOWN;
    futures::stream::iter(0..jobs)
        .map(|i| {
            let stack = stack.clone();
            let campaign = campaign.to_owned();
            async move {
                if i % 11 == 10 && i / 11 < UNKNOWN {
                    stray(&stack, round, i).await;
                } else {
                    press(&stack, &campaign, format!("u-{round}-{i}"), i % 10 == 0).await;
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    // Everything sent was answered; what the worker still holds is drained before measuring.
    let id = CampaignId::parse(campaign).expect("campaign id");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let queued = stack.queue.queue_len(&id).await.expect("queue length");
        let unpersisted = stack.queue.log_len(&id).await.expect("log length");
        if queued == 0 && unpersisted == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "round {round} not drained in 60 s"
        );
        // Not synchronisation by sleep: a bounded poll of a condition with no event to await.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One keep-alive connection, one request at a time: the server's buffers stay the same size,
/// so what the heap gains over the burst is what the API kept per request.
async fn sequential_burst(stack: &Stack, requests: usize) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");
    for _ in 0..requests {
        let answer = client
            .get(format!("{}/healthz", stack.base))
            .send()
            .await
            .expect("GET /healthz");
        assert_eq!(answer.status(), StatusCode::OK);
        answer.bytes().await.expect("body");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_nothing_per_request() {
    let stack = Arc::new(start().await);
    let created = stack
        .client
        .post(format!("{}/v1/campaigns", stack.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "memory", "stock": ROUNDS * ACCEPTS}))
        .send()
        .await
        .expect("create campaign");
    assert_eq!(created.status(), StatusCode::CREATED);
    let campaign: Value = created.json().await.expect("campaign json");
    let campaign = campaign["id"].as_str().expect("campaign id").to_owned();

    // Every path a spike takes; after each round the bounded structures are empty again.
    for n in 0..ROUNDS {
        round(&stack, &campaign, n).await;
        assert_eq!(stack.state.waiters.len(), 0, "waiters left after round {n}");
        assert_eq!(
            stack.state.acceptor.backlog(),
            0,
            "accept backlog after round {n}"
        );
        assert!(
            stack.queue.cached_code_keys() <= 1,
            "code keys cached for campaigns that do not exist: {}",
            stack.queue.cached_code_keys()
        );
    }

    // The heap over a long burst of requests, after a short one brought every buffer on the
    // way to its working size.
    sequential_burst(&stack, WARM_UP).await;
    let before = live_bytes();
    sequential_burst(&stack, BURST).await;
    let growth = live_bytes() - before;
    assert!(
        growth <= MAX_GROWTH_BYTES,
        "the live heap grew by {growth} bytes over {BURST} requests ({:.1} bytes each)",
        growth as f64 / BURST as f64
    );

    let stack = Arc::into_inner(stack).expect("no request left running");
    stack.app.stop().await.expect("stop the API and the worker");
}
