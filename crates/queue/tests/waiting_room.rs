//! The waiting room's Redis state (`lua/waiting_room.lua`) against the real Redis, warmed from a
//! real PostgreSQL: positions, the pre-queue shuffle, the serving counter's bound, pause and rate
//! changes, expired passes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use rushline_domain::{CampaignId, UserId, WaitingRoom};
use rushline_queue::{
    JoinOutcome, Placement, Queue, QueueCounter, QueuePlace, WaitingRoomRead, keys::meta_field,
};
use rushline_testkit::TestEnv;
use rushline_testkit::eventually;
use sha1::{Digest, Sha1};

fn user(i: usize) -> UserId {
    UserId::parse(format!("user-{i:05}")).unwrap()
}

fn room(rate: u64, prequeue_secs: u64) -> WaitingRoom {
    WaitingRoom::new(rate, 600, prequeue_secs).unwrap()
}

async fn join(queue: &Queue, campaign: &CampaignId, user: &UserId) -> (bool, QueuePlace) {
    match queue.join_queue(campaign, user).await.unwrap() {
        JoinOutcome::Joined { first, place } => (first, place),
        other => panic!("join of {user}: {other:?}"),
    }
}

fn position(place: &QueuePlace) -> u64 {
    match place.placement {
        Placement::Positioned(p) => p,
        Placement::Prequeued => panic!("pre-queued: {place:?}"),
    }
}

async fn counter(queue: &Queue, campaign: &CampaignId) -> QueueCounter {
    match queue.waiting_room_counter(campaign).await.unwrap() {
        WaitingRoomRead::Ready(counter) => counter,
        other => panic!("counter: {other:?}"),
    }
}

async fn place(queue: &Queue, campaign: &CampaignId, user: &UserId) -> Option<QueuePlace> {
    match queue.queue_place(campaign, user).await.unwrap() {
        WaitingRoomRead::Ready(place) => place,
        other => panic!("place: {other:?}"),
    }
}

/// 2,000 users joining over 32 tasks, each also joining again: positions 1..2000, each once,
/// one per user, and a repeat gets the same position with `first: false`.
#[tokio::test]
async fn concurrent_joins_hand_out_dense_unique_positions() {
    let env = TestEnv::new().await.unwrap();
    let queue = Arc::new(Queue::new(env.queue_config()).unwrap());
    let campaign = env
        .warm_waiting_room_campaign(&queue, 10, Utc::now(), room(1, 0))
        .await
        .unwrap();
    const USERS: usize = 2000;
    const TASKS: usize = 32;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (queue, campaign) = (queue.clone(), campaign.clone());
        tasks.spawn(async move {
            let mut seen = Vec::new();
            for i in (task..USERS).step_by(TASKS) {
                let u = user(i);
                let (first, placed) = join(&queue, &campaign, &u).await;
                assert!(first, "{u}'s first join");
                seen.push((i, position(&placed)));
            }
            // Repeats, another task's users among them: same position, not first.
            for i in (task..USERS).step_by(TASKS * 3) {
                let (first, again) = join(&queue, &campaign, &user(i)).await;
                assert!(!first, "user {i} joined again");
                seen.push((i, position(&again)));
            }
            seen
        });
    }
    let mut by_user: HashMap<usize, u64> = HashMap::new();
    while let Some(seen) = tasks.join_next().await {
        for (i, p) in seen.unwrap() {
            let held = *by_user.entry(i).or_insert(p);
            assert_eq!(held, p, "user {i} got two positions");
        }
    }
    let positions: HashSet<u64> = by_user.values().copied().collect();
    assert_eq!(by_user.len(), USERS);
    assert_eq!(positions, (1..=USERS as u64).collect(), "dense and unique");
    assert_eq!(counter(&queue, &campaign).await.joined, USERS as u64);
    env.cleanup().await.unwrap();
}

/// Joins before the opening get no position; at the opening they hold 1..P in an order that is
/// uncorrelated with join order and is exactly the audit's (sha1 of the revealed seed and the
/// user id); later joiners follow from P + 1.
#[tokio::test]
async fn the_prequeue_is_shuffled_at_the_opening_ahead_of_later_joiners() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    // Not yet in its pre-queue window: refused.
    let later = env
        .warm_waiting_room_campaign(&queue, 10, Utc::now() + TimeDelta::hours(1), room(10, 60))
        .await
        .unwrap();
    assert_eq!(
        queue.join_queue(&later, &user(0)).await.unwrap(),
        JoinOutcome::NotOpenYet
    );

    const PREQUEUED: usize = 2000;
    let opens_at = Utc::now() + TimeDelta::seconds(6);
    let campaign = env
        .warm_waiting_room_campaign(&queue, 10, opens_at, room(10, 60))
        .await
        .unwrap();
    // In join order, one at a time, so that "join order" is well defined.
    for i in 0..PREQUEUED {
        let (first, placed) = join(&queue, &campaign, &user(i)).await;
        assert!(first);
        assert_eq!(placed.placement, Placement::Prequeued, "user {i}");
        assert!(
            placed.counter.now < opens_at,
            "pre-queue joins took too long"
        );
    }
    let (first, again) = join(&queue, &campaign, &user(0)).await;
    assert!(!first);
    assert_eq!(again.placement, Placement::Prequeued);
    let before = counter(&queue, &campaign).await;
    assert_eq!((before.joined, before.prequeued), (0, PREQUEUED as u64));

    eventually(Duration::from_secs(15), "the opening", async || {
        counter(&queue, &campaign).await.now >= opens_at
    })
    .await;
    let opened = counter(&queue, &campaign).await;
    assert_eq!((opened.joined, opened.prequeued), (PREQUEUED as u64, 0));
    for i in PREQUEUED..PREQUEUED + 10 {
        let (first, placed) = join(&queue, &campaign, &user(i)).await;
        assert!(first);
        assert_eq!(position(&placed), i as u64 + 1, "a later joiner");
    }

    let mut positions = Vec::with_capacity(PREQUEUED);
    for i in 0..PREQUEUED {
        let placed = place(&queue, &campaign, &user(i)).await.expect("joined");
        positions.push(position(&placed));
    }
    let distinct: HashSet<u64> = positions.iter().copied().collect();
    assert_eq!(distinct, (1..=PREQUEUED as u64).collect());

    // Spearman's rho of join order against position; under independence its standard deviation
    // is 1/sqrt(n - 1) ~ 0.022, so 0.1 is over four of them.
    let n = PREQUEUED as f64;
    let d2: f64 = positions
        .iter()
        .enumerate()
        .map(|(i, &p)| (i as f64 + 1.0 - p as f64).powi(2))
        .sum();
    let rho = 1.0 - 6.0 * d2 / (n * (n * n - 1.0));
    assert!(
        rho.abs() < 0.1,
        "pre-queue order follows join order: rho {rho}"
    );

    // The audit: the revealed seed reproduces every position.
    let seed = env.store.prequeue_seed(&campaign).await.unwrap().unwrap();
    let seed_hex = rushline_queue::waiting_room::hex(&seed);
    let mut audit: Vec<(String, usize)> = (0..PREQUEUED)
        .map(|i| {
            let digest = Sha1::digest(format!("{seed_hex}{}", user(i)).as_bytes());
            (
                format!("{}:{}", rushline_queue::waiting_room::hex(&digest), user(i)),
                i,
            )
        })
        .collect();
    audit.sort();
    for (rank, (_, i)) in audit.iter().enumerate() {
        assert_eq!(
            positions[*i],
            rank as u64 + 1,
            "user {i}'s audited position"
        );
    }
    env.cleanup().await.unwrap();
}

/// The counter never decreases, never passes `joined`, grows by at most `rate × (T + 1)` over
/// every window of samples, and does advance; a pause stops it, a resume restarts it, a higher
/// rate takes effect; the measured outflow follows the rate.
#[tokio::test]
async fn the_serving_counter_keeps_its_rate_bound_and_obeys_the_operator() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    const RATE: u32 = 50;
    let opens_at = Utc::now();
    let campaign = env
        .warm_waiting_room_campaign(&queue, 10, opens_at, room(u64::from(RATE), 0))
        .await
        .unwrap();
    // An idle line for two seconds fills the bucket to its capacity; then a crowd arrives at
    // once: the burst it may be admitted in is one second's worth, no more.
    eventually(Duration::from_secs(10), "two idle seconds", async || {
        counter(&queue, &campaign).await.now >= opens_at + TimeDelta::seconds(2)
    })
    .await;
    let idle = counter(&queue, &campaign).await;
    assert_eq!((idle.joined, idle.admitted_through), (0, 0));
    for i in 0..1000 {
        join(&queue, &campaign, &user(i)).await;
    }

    let mut samples = vec![idle];
    samples.extend(sample(&queue, &campaign, Duration::from_secs(3)).await);
    assert_bound(&samples, RATE);
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let secs = (last.now - first.now).as_seconds_f64();
    let advanced = (last.admitted_through - first.admitted_through) as f64;
    assert!(
        advanced >= f64::from(RATE) * (secs - 0.5),
        "advanced {advanced} in {secs} s at {RATE}/s"
    );
    assert!(
        (f64::from(RATE) * 0.5..=f64::from(RATE) * 1.5).contains(&last.outflow_per_sec),
        "measured outflow {}",
        last.outflow_per_sec
    );

    // Pause: it stops.
    let paused = queue
        .set_admission(&campaign, None, Some(true))
        .await
        .unwrap()
        .ready()
        .unwrap();
    assert!(paused.paused);
    let samples = sample(&queue, &campaign, Duration::from_millis(1200)).await;
    assert!(
        samples
            .iter()
            .all(|s| s.admitted_through == paused.admitted_through && s.paused),
        "moved while paused"
    );

    // Resume at four times the rate: it takes effect, within the new bound.
    let resumed = queue
        .set_admission(&campaign, Some(4 * RATE), Some(false))
        .await
        .unwrap()
        .ready()
        .unwrap();
    assert_eq!(
        (resumed.admit_per_second, resumed.paused),
        (4 * RATE, false)
    );
    let samples = sample(&queue, &campaign, Duration::from_millis(1500)).await;
    assert_bound(&samples, 4 * RATE);
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let secs = (last.now - first.now).as_seconds_f64();
    let advanced = (last.admitted_through - first.admitted_through) as f64;
    assert!(
        advanced > f64::from(RATE) * (secs + 1.0),
        "the old rate's bound still holds: {advanced} in {secs} s"
    );
    assert!(last.admitted_through <= last.joined);
    env.cleanup().await.unwrap();
}

/// Counter readings every ~20 ms for `span` (sampling, not synchronisation).
async fn sample(queue: &Queue, campaign: &CampaignId, span: Duration) -> Vec<QueueCounter> {
    let until = tokio::time::Instant::now() + span;
    let mut samples = Vec::new();
    while tokio::time::Instant::now() < until {
        samples.push(counter(queue, campaign).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    samples
}

fn assert_bound(samples: &[QueueCounter], rate: u32) {
    for (i, a) in samples.iter().enumerate() {
        assert!(a.admitted_through <= a.joined, "{a:?}");
        for b in &samples[i + 1..] {
            assert!(
                b.admitted_through >= a.admitted_through,
                "decreased: {a:?} {b:?}"
            );
            // In whole milliseconds (the scripts' clock), so the bound's equality case is exact.
            let ms = u64::try_from((b.now - a.now).num_milliseconds()).unwrap();
            let grown = b.admitted_through - a.admitted_through;
            assert!(
                grown * 1000 <= u64::from(rate) * (ms + 1000),
                "{grown} in {ms} ms at {rate}/s"
            );
        }
    }
}

/// A pass that expired: joining again gives a new position at the back (`first: true`). The
/// contract's shortest pass is 10 s; the test shortens it to 1 s by writing the campaign's Redis
/// field `wr_pass` directly (what the script reads), rather than waiting ten minutes.
#[tokio::test]
async fn an_expired_pass_joins_again_at_the_back() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let campaign = env
        .warm_waiting_room_campaign(&queue, 10, Utc::now(), room(1000, 0))
        .await
        .unwrap();
    let mut redis = env.redis().await.unwrap();
    let meta = queue.keys().campaign(&campaign).meta;
    redis::cmd("HSET")
        .arg(&meta)
        .arg(meta_field::WR_PASS)
        .arg(1)
        .query_async::<i64>(&mut redis)
        .await
        .unwrap();

    let (first, placed) = join(&queue, &campaign, &user(1)).await;
    assert!(first);
    assert_eq!(position(&placed), 1);
    eventually(Duration::from_secs(5), "admitted", async || {
        place(&queue, &campaign, &user(1))
            .await
            .is_some_and(|p| p.admitted_at.is_some())
    })
    .await;
    let (_, other) = join(&queue, &campaign, &user(2)).await;
    assert_eq!(position(&other), 2);
    let (first, still) = join(&queue, &campaign, &user(1)).await;
    assert!(!first, "not expired yet: {still:?}");
    assert_eq!(position(&still), 1);

    eventually(Duration::from_secs(5), "the pass expires", async || {
        place(&queue, &campaign, &user(1))
            .await
            .is_some_and(|p| p.expired)
    })
    .await;
    let (first, again) = join(&queue, &campaign, &user(1)).await;
    assert!(first, "an expired pass makes a new place");
    assert_eq!(position(&again), 3, "at the back");
    assert!(!again.expired);
    env.cleanup().await.unwrap();
}

/// A campaign without a waiting room, and one Redis does not hold, say so.
#[tokio::test]
async fn no_waiting_room_and_cold_campaigns_are_told_apart() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let plain = env.warm_open_campaign(&queue, 10).await.unwrap();
    let with_room = env
        .warm_waiting_room_campaign(&queue, 10, Utc::now(), room(7, 0))
        .await
        .unwrap();
    // The warm-up marks exactly the campaigns with a waiting room (accept.lua gates on it) and
    // copies the settings.
    let mut redis = env.redis().await.unwrap();
    for (campaign, marked) in [(&plain, None), (&with_room, Some("1".to_owned()))] {
        let field: Option<String> = redis::cmd("HGET")
            .arg(queue.keys().campaign(campaign).meta)
            .arg(meta_field::WAITING_ROOM)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(field, marked, "{campaign}");
    }
    let state = queue.campaign_state(&with_room).await.unwrap().unwrap();
    assert_eq!(state.waiting_room, Some(room(7, 0)));
    assert_eq!(
        queue
            .campaign_state(&plain)
            .await
            .unwrap()
            .unwrap()
            .waiting_room,
        None
    );
    assert_eq!(
        queue.join_queue(&plain, &user(1)).await.unwrap(),
        JoinOutcome::NoWaitingRoom
    );
    assert_eq!(
        queue.waiting_room_counter(&plain).await.unwrap(),
        WaitingRoomRead::NoWaitingRoom
    );
    let cold = CampaignId::parse("never-warmed").unwrap();
    assert_eq!(
        queue.join_queue(&cold, &user(1)).await.unwrap(),
        JoinOutcome::Unknown
    );
    assert_eq!(
        queue.queue_place(&cold, &user(1)).await.unwrap(),
        WaitingRoomRead::NotWarm
    );
    env.cleanup().await.unwrap();
}

/// A rebuild of a state Redis still holds (an operator's repair) keeps the line; a Redis that
/// lost its data comes back with the settings from PostgreSQL and an empty line (the README's
/// crash section: users join again).
#[tokio::test]
async fn a_rebuild_keeps_the_line_and_a_data_loss_empties_it() {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let campaign = env
        .warm_waiting_room_campaign(&queue, 10, Utc::now(), room(1, 0))
        .await
        .unwrap();
    for i in 0..5 {
        join(&queue, &campaign, &user(i)).await;
    }
    assert!(queue.invalidate_for_rebuild(&campaign).await.unwrap());
    assert_eq!(
        queue.join_queue(&campaign, &user(9)).await.unwrap(),
        JoinOutcome::Unknown,
        "out of service until rebuilt"
    );
    queue.warm(&campaign, &env.store).await.unwrap();
    let kept = place(&queue, &campaign, &user(3)).await.expect("kept");
    assert_eq!(position(&kept), 4);
    assert_eq!(kept.counter.joined, 5);

    env.flush_redis().await.unwrap();
    queue.warm(&campaign, &env.store).await.unwrap();
    let after = counter(&queue, &campaign).await;
    assert_eq!((after.joined, after.admitted_through), (0, 0));
    assert_eq!(after.admit_per_second, 1);
    assert_eq!(place(&queue, &campaign, &user(3)).await, None);
    let (first, again) = join(&queue, &campaign, &user(3)).await;
    assert!(first);
    assert_eq!(position(&again), 1);
    env.cleanup().await.unwrap();
}
