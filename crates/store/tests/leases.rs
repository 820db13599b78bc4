//! The stock-lease ledger of sharded campaigns (crates/store/src/leases.rs) against a real
//! PostgreSQL: grants never exceed the stock, each move id moves stock once, returns come back to
//! the unleased stock, pending moves survive a crash for replay, and for every campaign
//! `unleased + sum(delta) = stock`.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU64;
use std::sync::Arc;

use rushline_domain::{
    CampaignId, CampaignName, CampaignSpec, CouponCode, DecideMode, Decision, RequestId,
    RequestStatus, ShardCount, Stock, UserId, shard_of,
};
use rushline_store::{Lease, LeaseRefusal, MoveState, StockLedger, Store, StoreError};
use rushline_testkit::TestEnv;
use uuid::Uuid;

fn n(value: u64) -> NonZeroU64 {
    NonZeroU64::new(value).unwrap()
}

/// A random number below `bound` (v4 UUIDs are 122 random bits; no extra crate needed).
fn random_below(bound: u64) -> u64 {
    (Uuid::new_v4().as_u128() % u128::from(bound)) as u64
}

async fn create(env: &TestEnv, id: &str, stock: u64, shards: u64) -> anyhow::Result<CampaignId> {
    let id = CampaignId::parse(id)?;
    let spec = CampaignSpec {
        id: id.clone(),
        name: CampaignName::parse("sharded")?,
        stock: Stock::new(stock)?,
        opens_at: chrono::Utc::now(),
        closes_at: None,
        decide: DecideMode::Queued,
        waiting_room: None,
        shards: ShardCount::new(shards)?,
    };
    env.store.create_campaign(&spec, "test-code-key").await?;
    Ok(id)
}

/// `unleased + sum(delta) = stock` for every sharded campaign, and `unleased >= 0`, read
/// straight from the tables (not through the code under test).
async fn assert_ledgers_balance(store: &Store) -> anyhow::Result<()> {
    let broken: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT c.id, c.stock, c.unleased,
                COALESCE((SELECT sum(delta) FROM stock_moves m WHERE m.campaign_id = c.id), 0)
                    ::bigint
         FROM campaigns c
         WHERE c.unleased IS NOT NULL
           AND (c.unleased < 0 OR c.unleased + COALESCE(
                   (SELECT sum(delta) FROM stock_moves m WHERE m.campaign_id = c.id), 0)
                <> c.stock)",
    )
    .fetch_all(store.pool())
    .await?;
    assert!(
        broken.is_empty(),
        "(id, stock, unleased, moved): {broken:?}"
    );
    Ok(())
}

fn refusal<T: std::fmt::Debug>(result: Result<T, StoreError>) -> LeaseRefusal {
    match result {
        Err(StoreError::Lease(refusal)) => refusal,
        other => panic!("expected a ledger refusal, got {other:?}"),
    }
}

fn granted(lease: &Lease) -> (u64, bool) {
    match lease {
        Lease::Granted {
            stock_move,
            replayed,
        } => (stock_move.delta as u64, *replayed),
        Lease::NothingUnleased => (0, false),
    }
}

#[tokio::test]
async fn a_sharded_campaign_starts_with_its_stock_unleased_and_one_shard_has_no_ledger()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let sharded = create(&env, "sharded", 100, 3).await?;
    assert_eq!(
        env.store.stock_ledger(&sharded).await?,
        StockLedger {
            stock: 100,
            unleased: 100,
            moved: 0,
            pending: 0
        }
    );
    let single = create(&env, "single", 100, 1).await?;
    let unleased: Option<i64> =
        sqlx::query_scalar("SELECT unleased FROM campaigns WHERE id = 'single'")
            .fetch_one(env.store.pool())
            .await?;
    assert_eq!(unleased, None);
    let shard0 = ShardCount::ONE.shard(0)?;
    assert_eq!(
        refusal(
            env.store
                .grant_lease(&single, shard0, n(1), Uuid::new_v4())
                .await
        ),
        LeaseRefusal::NotSharded(single.clone())
    );
    // The record's constraints: never negative, present exactly when sharded.
    for statement in [
        "UPDATE campaigns SET unleased = -1 WHERE id = 'sharded'",
        "UPDATE campaigns SET unleased = NULL WHERE id = 'sharded'",
        "UPDATE campaigns SET unleased = 5 WHERE id = 'single'",
    ] {
        let refused = sqlx::query(statement).execute(env.store.pool()).await;
        let code = match refused {
            Err(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()),
            _ => None,
        };
        assert_eq!(code.as_deref(), Some("23514"), "{statement}");
    }
    assert_ledgers_balance(&env.store).await?;
    env.cleanup().await
}

#[tokio::test]
async fn a_lease_grants_at_most_the_unleased_stock_once_per_move_id() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let shards = ShardCount::new(3)?;
    let campaign = create(&env, "leases", 100, 3).await?;
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());

    let lease = env
        .store
        .grant_lease(&campaign, shards.shard(0)?, n(40), first)
        .await?;
    assert_eq!(granted(&lease), (40, false));
    // The same id again, even asking for more: the same grant, nothing new.
    let again = env
        .store
        .grant_lease(&campaign, shards.shard(0)?, n(99), first)
        .await?;
    assert_eq!(granted(&again), (40, true));
    assert_eq!(env.store.stock_ledger(&campaign).await?.unleased, 60);

    // More than is left: what is left.
    let rest = env
        .store
        .grant_lease(&campaign, shards.shard(2)?, n(1_000), second)
        .await?;
    assert_eq!(granted(&rest), (60, false));
    let Lease::Granted { stock_move, .. } = &rest else {
        unreachable!()
    };
    assert_eq!(
        (stock_move.shard, stock_move.state),
        (shards.shard(2)?, MoveState::Granted)
    );
    // Nothing left: nothing granted, no row, and the id stays unused.
    let empty_id = Uuid::new_v4();
    assert_eq!(
        env.store
            .grant_lease(&campaign, shards.shard(1)?, n(1), empty_id)
            .await?,
        Lease::NothingUnleased
    );
    assert_eq!(env.store.stock_move(empty_id).await?, None);

    // An id of another shard's move, or a shard past the count, is refused.
    assert_eq!(
        refusal(
            env.store
                .grant_lease(&campaign, shards.shard(1)?, n(5), first)
                .await
        ),
        LeaseRefusal::MoveIdTaken(first)
    );
    let past = ShardCount::new(64)?.shard(3)?;
    assert!(matches!(
        refusal(
            env.store
                .grant_lease(&campaign, past, n(1), Uuid::new_v4())
                .await
        ),
        LeaseRefusal::NoSuchShard { .. }
    ));
    assert_eq!(
        env.store.stock_ledger(&campaign).await?,
        StockLedger {
            stock: 100,
            unleased: 0,
            moved: 100,
            pending: 2
        }
    );
    assert_ledgers_balance(&env.store).await?;
    env.cleanup().await
}

/// 32 tasks grant random amounts to random shards, a fifth of the time with a move id from a
/// shared pool of 16 (each bound to a home shard, so most reuses are replays; a quarter of them
/// name another shard, so whichever call comes first decides the id's shard and the others must
/// be refused). Demand is many times the stock.
#[tokio::test]
async fn concurrent_grants_never_exceed_the_stock_and_grant_each_move_id_once() -> anyhow::Result<()>
{
    const STOCK: u64 = 1_000;
    const TASKS: usize = 32;
    const GRANTS_PER_TASK: usize = 25;
    let env = TestEnv::new().await?;
    let shards = ShardCount::new(8)?;
    let campaign = create(&env, "crowd", STOCK, 8).await?;
    let shared: Arc<Vec<(Uuid, u64)>> =
        Arc::new((0..16).map(|i| (Uuid::new_v4(), i % 8)).collect());

    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (store, campaign, shared) = (env.store.clone(), campaign.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..GRANTS_PER_TASK {
                let (move_id, shard) = if random_below(5) == 0 {
                    let (id, home) = shared[random_below(16) as usize];
                    let shard = if random_below(4) == 0 {
                        (home + 1) % 8
                    } else {
                        home
                    };
                    (id, shard)
                } else {
                    (Uuid::new_v4(), random_below(8))
                };
                let shard = shards.shard(shard)?;
                let want = n(1 + random_below(50));
                let result = store.grant_lease(&campaign, shard, want, move_id).await;
                seen.push((move_id, shard, result));
            }
            anyhow::Ok(seen)
        }));
    }
    let mut calls = Vec::new();
    for task in tasks {
        calls.extend(task.await??);
    }
    // The record, read straight from the table.
    let rows: Vec<(Uuid, i16, i64)> =
        sqlx::query_as("SELECT move_id, shard, delta FROM stock_moves WHERE campaign_id = 'crowd'")
            .fetch_all(env.store.pool())
            .await?;
    let recorded: HashMap<Uuid, (u8, u64)> = rows
        .into_iter()
        .map(|(id, shard, delta)| (id, (shard as u8, delta as u64)))
        .collect();
    let mut first_grants = HashSet::new();
    let mut total = 0;
    for (move_id, shard, result) in calls {
        let row = recorded.get(&move_id).copied();
        match result {
            Ok(Lease::Granted {
                stock_move,
                replayed,
            }) => {
                let amount = stock_move.delta as u64;
                // Every answer, first or replayed, is what the record holds for the id.
                assert_eq!(row, Some((shard.get(), amount)), "move {move_id}");
                if !replayed {
                    assert!(first_grants.insert(move_id), "move {move_id} granted twice");
                    total += amount;
                }
            }
            Ok(Lease::NothingUnleased) => {}
            Err(StoreError::Lease(LeaseRefusal::MoveIdTaken(id))) => {
                assert_eq!(id, move_id);
                let (held, _) = row.expect("a refused id is taken");
                assert_ne!(held, shard.get(), "refused {id} on its own shard");
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Demand far exceeds the stock, so all of it, and no more, went out, one row per grant.
    assert_eq!(total, STOCK);
    assert_eq!(recorded.len(), first_grants.len());
    assert_eq!(
        env.store.stock_ledger(&campaign).await?,
        StockLedger {
            stock: STOCK,
            unleased: 0,
            moved: STOCK as i64,
            pending: first_grants.len() as u64
        }
    );
    assert_ledgers_balance(&env.store).await?;
    env.cleanup().await
}

#[tokio::test]
async fn returns_go_back_to_the_unleased_stock_and_are_granted_again() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let shards = ShardCount::new(2)?;
    let (zero, one) = (shards.shard(0)?, shards.shard(1)?);
    let campaign = create(&env, "returns", 100, 2).await?;
    let lease = Uuid::new_v4();
    env.store.grant_lease(&campaign, zero, n(60), lease).await?;
    // Granted but not applied: not yet in the shard, so nothing of it can come back.
    assert_eq!(env.store.shard_allocation(&campaign, zero).await?, 0);
    assert_eq!(
        refusal(
            env.store
                .credit_return(&campaign, zero, Uuid::new_v4(), n(1))
                .await
        ),
        LeaseRefusal::ReturnExceedsAllocation {
            shard: zero,
            returned: 1,
            allocation: 0
        }
    );
    assert_eq!(
        env.store.mark_applied(lease).await?.state,
        MoveState::Applied
    );
    assert_eq!(env.store.shard_allocation(&campaign, zero).await?, 60);

    let back = Uuid::new_v4();
    let credited = env
        .store
        .credit_return(&campaign, zero, back, n(25))
        .await?;
    assert_eq!((credited.delta, credited.state), (-25, MoveState::Applied));
    // Replayed after a crash: the same move, credited once.
    assert_eq!(
        env.store
            .credit_return(&campaign, zero, back, n(25))
            .await?,
        credited
    );
    assert_eq!(
        refusal(env.store.credit_return(&campaign, zero, back, n(24)).await),
        LeaseRefusal::MoveIdTaken(back)
    );
    assert_eq!(
        refusal(env.store.credit_return(&campaign, one, lease, n(1)).await),
        LeaseRefusal::MoveIdTaken(lease)
    );
    assert_eq!(env.store.stock_ledger(&campaign).await?.unleased, 65);
    assert_eq!(env.store.shard_allocation(&campaign, zero).await?, 35);
    // No more than the shard holds.
    assert!(matches!(
        refusal(
            env.store
                .credit_return(&campaign, zero, Uuid::new_v4(), n(36))
                .await
        ),
        LeaseRefusal::ReturnExceedsAllocation { allocation: 35, .. }
    ));

    // What came back goes to the other shard.
    let regrant = Uuid::new_v4();
    let lease = env
        .store
        .grant_lease(&campaign, one, n(500), regrant)
        .await?;
    assert_eq!(lease.granted(), 65);
    env.store.mark_applied(regrant).await?;
    assert_eq!(env.store.shard_allocation(&campaign, one).await?, 65);
    assert_eq!(
        env.store.stock_ledger(&campaign).await?,
        StockLedger {
            stock: 100,
            unleased: 0,
            moved: 100,
            pending: 0
        }
    );
    assert_ledgers_balance(&env.store).await?;
    env.cleanup().await
}

/// Tasks grant-and-apply and return concurrently on 4 shards: whatever interleaving, the ledger
/// balances and no shard's allocation goes negative.
#[tokio::test]
async fn concurrent_grants_and_returns_keep_the_ledger_balanced() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let shards = ShardCount::new(4)?;
    let campaign = create(&env, "churn", 200, 4).await?;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, campaign) = (env.store.clone(), campaign.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                let shard = shards.shard(random_below(4))?;
                if random_below(2) == 0 {
                    let id = Uuid::new_v4();
                    if let Lease::Granted { .. } = store
                        .grant_lease(&campaign, shard, n(1 + random_below(30)), id)
                        .await?
                    {
                        store.mark_applied(id).await?;
                    }
                } else {
                    let held = store.shard_allocation(&campaign, shard).await?;
                    if held > 0 {
                        // Another task may return from this shard in between: then the
                        // ledger refuses this one rather than over-credit.
                        match store
                            .credit_return(
                                &campaign,
                                shard,
                                Uuid::new_v4(),
                                n(1 + random_below(held)),
                            )
                            .await
                        {
                            Ok(_)
                            | Err(StoreError::Lease(LeaseRefusal::ReturnExceedsAllocation {
                                ..
                            })) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let mut allocated = 0;
    for shard in shards.shards() {
        allocated += env.store.shard_allocation(&campaign, shard).await?;
    }
    let ledger = env.store.stock_ledger(&campaign).await?;
    assert_eq!(ledger.pending, 0);
    assert_eq!(ledger.unleased + allocated, 200);
    assert_ledgers_balance(&env.store).await?;
    env.cleanup().await
}

/// A coordinator that crashed after the record granted, before Redis applied: a fresh store (a
/// new process) finds the grants pending, replays them by id, and marks them applied once.
#[tokio::test]
async fn pending_moves_survive_a_crash_for_replay_by_id() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let shards = ShardCount::new(3)?;
    let campaign = create(&env, "crashy", 90, 3).await?;
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    env.store
        .grant_lease(&campaign, shards.shard(0)?, n(10), a)
        .await?;
    env.store
        .grant_lease(&campaign, shards.shard(1)?, n(20), b)
        .await?;
    env.store.mark_applied(b).await?;
    env.store
        .grant_lease(&campaign, shards.shard(2)?, n(30), c)
        .await?;

    // "Restart": a new pool on the same database; the old one is gone.
    let url = env.database_url.clone();
    env.store.pool().close().await;
    let store = Store::connect(&url, 2, std::time::Duration::from_secs(10)).await?;
    let pending = store.pending_moves(&campaign).await?;
    assert_eq!(
        pending
            .iter()
            .map(|m| (m.move_id, m.delta))
            .collect::<Vec<_>>(),
        [(a, 10), (c, 30)]
    );
    // The replay asks again by id (whatever it asks, it gets the recorded grant).
    let replayed = store
        .grant_lease(&campaign, shards.shard(0)?, n(90), a)
        .await?;
    assert_eq!(granted(&replayed), (10, true));
    assert_eq!(store.mark_applied(a).await?.state, MoveState::Applied);
    assert_eq!(store.mark_applied(a).await?.state, MoveState::Applied);
    assert_eq!(
        store
            .pending_moves(&campaign)
            .await?
            .iter()
            .map(|m| m.move_id)
            .collect::<HashSet<_>>(),
        HashSet::from([c])
    );
    // Only applied moves count towards a shard's allocation (a rebuild's starting point).
    assert_eq!(
        store.shard_allocation(&campaign, shards.shard(0)?).await?,
        10
    );
    assert_eq!(
        store.shard_allocation(&campaign, shards.shard(2)?).await?,
        0
    );
    assert_eq!(store.stock_ledger(&campaign).await?.unleased, 30);
    assert_ledgers_balance(&store).await?;
    store.pool().close().await;
    env.cleanup().await
}

#[tokio::test]
async fn unknown_campaigns_and_moves_are_refused() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let nowhere = CampaignId::parse("nowhere")?;
    let shard = ShardCount::new(2)?.shard(1)?;
    let unknown = LeaseRefusal::UnknownCampaign(nowhere.clone());
    assert_eq!(
        refusal(
            env.store
                .grant_lease(&nowhere, shard, n(1), Uuid::new_v4())
                .await
        ),
        unknown
    );
    assert_eq!(
        refusal(
            env.store
                .credit_return(&nowhere, shard, Uuid::new_v4(), n(1))
                .await
        ),
        unknown
    );
    assert_eq!(refusal(env.store.pending_moves(&nowhere).await), unknown);
    assert_eq!(
        refusal(env.store.shard_allocation(&nowhere, shard).await),
        unknown
    );
    assert_eq!(refusal(env.store.stock_ledger(&nowhere).await), unknown);
    let id = Uuid::new_v4();
    let error = env.store.mark_applied(id).await.unwrap_err();
    assert!(error.is_permanent());
    assert_eq!(refusal::<()>(Err(error)), LeaseRefusal::UnknownMove(id));
    assert_eq!(env.store.stock_move(id).await?, None);
    env.cleanup().await
}

#[tokio::test]
async fn adding_stock_raises_the_unleased_stock_of_a_sharded_campaign() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let shards = ShardCount::new(4)?;
    let campaign = create(&env, "restock", 10, 4).await?;
    let single = create(&env, "restock-one", 10, 1).await?;
    let now = chrono::Utc::now();
    env.store
        .grant_lease(&campaign, shards.shard(3)?, n(10), Uuid::new_v4())
        .await?;
    assert_eq!(
        env.store
            .grant_lease(&campaign, shards.shard(0)?, n(1), Uuid::new_v4())
            .await?,
        Lease::NothingUnleased
    );
    env.store.add_stock(&campaign, 5, now).await?;
    assert_eq!(
        env.store.stock_ledger(&campaign).await?,
        StockLedger {
            stock: 15,
            unleased: 5,
            moved: 10,
            pending: 1
        }
    );
    let lease = env
        .store
        .grant_lease(&campaign, shards.shard(0)?, n(8), Uuid::new_v4())
        .await?;
    assert_eq!(lease.granted(), 5);
    // A withdrawal of an addition that shards were leased meanwhile is refused (the record
    // keeps saying where the stock is); one of unleased stock goes through.
    env.store.add_stock(&campaign, 3, now).await?;
    env.store
        .grant_lease(&campaign, shards.shard(1)?, n(2), Uuid::new_v4())
        .await?;
    assert!(env.store.withdraw_stock(&campaign, 3).await.is_err());
    env.store.withdraw_stock(&campaign, 1).await?;
    assert_eq!(
        env.store.stock_ledger(&campaign).await?,
        StockLedger {
            stock: 17,
            unleased: 0,
            moved: 17,
            pending: 3
        }
    );
    // A one-shard campaign's stock moves as before, with no ledger.
    env.store.add_stock(&single, 5, now).await?;
    env.store.withdraw_stock(&single, 2).await?;
    let (stock, unleased): (i64, Option<i64>) =
        sqlx::query_as("SELECT stock, unleased FROM campaigns WHERE id = 'restock-one'")
            .fetch_one(env.store.pool())
            .await?;
    assert_eq!((stock, unleased), (13, None));
    assert_ledgers_balance(&env.store).await?;
    env.cleanup().await
}

/// A shard's rebuild starts from allocation − issued rows of its users: the users are counted
/// by `shard_of`, page by page.
#[tokio::test]
async fn a_shards_issued_rows_are_those_of_its_users() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let shards = ShardCount::new(3)?;
    let campaign = create(&env, "rebuild", 10_000, 3).await?;
    // More than one page of holders (5,000 a page).
    let decisions: Vec<Decision> = (0..6_000)
        .map(|i| {
            Ok(Decision {
                request_id: RequestId::new_for(&campaign),
                user_id: UserId::parse(format!("u-{i}"))?,
                status: RequestStatus::Issued,
                coupon_code: Some(CouponCode::mint("test-code-key", i)),
                coupon_seq: Some(i as i64),
                decided_at: chrono::Utc::now(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    for chunk in decisions.chunks(2_000) {
        env.store.persist(&campaign, chunk).await?;
    }
    let mut expected = [0u64; 3];
    for decision in &decisions {
        expected[shard_of(&decision.user_id, shards).get() as usize] += 1;
    }
    let mut counted = [0u64; 3];
    for shard in shards.shards() {
        counted[shard.get() as usize] = env.store.shard_issued(&campaign, shard).await?;
    }
    assert_eq!(counted, expected);
    assert_eq!(counted.iter().sum::<u64>(), 6_000);
    assert!(counted.iter().all(|&c| c > 1_500), "{counted:?}");
    assert!(matches!(
        refusal(
            env.store
                .shard_issued(&campaign, ShardCount::new(4)?.shard(3)?)
                .await
        ),
        LeaseRefusal::NoSuchShard { .. }
    ));
    assert_eq!(
        refusal(
            env.store
                .shard_issued(&CampaignId::parse("nowhere")?, shards.shard(0)?)
                .await
        ),
        LeaseRefusal::UnknownCampaign(CampaignId::parse("nowhere")?)
    );
    env.cleanup().await
}

/// One move id sent for two campaigns at once: their row locks do not order the calls, the
/// primary key does. Exactly one call grants; each other call either replays that grant (same
/// campaign) or is refused (the other campaign).
#[tokio::test]
async fn one_move_id_raced_across_campaigns_moves_stock_once() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let shard = ShardCount::new(2)?.shard(1)?;
    let left = create(&env, "left", 50, 2).await?;
    let right = create(&env, "right", 50, 2).await?;
    for _ in 0..5 {
        let id = Uuid::new_v4();
        let calls = (0..8).map(|i| {
            let store = env.store.clone();
            let campaign = if i % 2 == 0 {
                left.clone()
            } else {
                right.clone()
            };
            tokio::spawn(async move {
                let result = store.grant_lease(&campaign, shard, n(3), id).await;
                (campaign, result)
            })
        });
        let mut firsts = Vec::new();
        let mut outcomes = Vec::new();
        for call in calls.collect::<Vec<_>>() {
            let (campaign, result) = call.await?;
            match result {
                Ok(Lease::Granted {
                    stock_move,
                    replayed: false,
                }) => firsts.push(stock_move.campaign),
                other => outcomes.push((campaign, other)),
            }
        }
        assert_eq!(firsts.len(), 1, "{firsts:?}");
        let owner = &firsts[0];
        for (campaign, outcome) in outcomes {
            match outcome {
                Ok(Lease::Granted { replayed: true, .. }) => assert_eq!(&campaign, owner),
                Err(StoreError::Lease(LeaseRefusal::MoveIdTaken(taken))) => {
                    assert_eq!(taken, id);
                    assert_ne!(&campaign, owner);
                }
                other => panic!("{campaign}: {other:?}"),
            }
        }
    }
    let (l, r) = (
        env.store.stock_ledger(&left).await?,
        env.store.stock_ledger(&right).await?,
    );
    assert_eq!(l.moved + r.moved, 15);
    assert_ledgers_balance(&env.store).await?;
    env.cleanup().await
}
