//! Coupon codes minted outside Redis, read back through every path, against the real Redis (and
//! PostgreSQL, which the campaigns are warmed from). The key is testkit's `test-code-key`.

use std::collections::HashSet;

use rushline_domain::{
    CampaignId, CouponCode, Decision, RequestId, RequestStatus, RequestView, UserId,
};
use rushline_queue::RedisConnection;
use rushline_queue::{AcceptItem, AcceptOutcome, LogEntry, Queue, QueueError, Rollback};
use rushline_testkit::TestEnv;

/// The key [`TestEnv::create_open_campaign`] gives every campaign.
const KEY: &str = "test-code-key";

struct Setup {
    env: TestEnv,
    queue: Queue,
    campaign: CampaignId,
    redis: RedisConnection,
}

/// A warm open campaign with `stock`, and `users` requests queued for it (one per user).
async fn campaign_with_queued(stock: u64, users: usize) -> (Setup, Vec<RequestId>) {
    let env = TestEnv::new().await.unwrap();
    let queue = Queue::new(env.queue_config()).unwrap();
    let campaign = env.warm_open_campaign(&queue, stock).await.unwrap();
    let items: Vec<AcceptItem> = (0..users)
        .map(|n| AcceptItem {
            request_id: RequestId::new_for(&campaign),
            user_id: UserId::parse(format!("user-{n}")).unwrap(),
            idempotency_key: None,
            admitted: false,
        })
        .collect();
    let outcomes = queue.accept(&campaign, &items).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == AcceptOutcome::Queued));
    let redis = env.redis().await.unwrap();
    let setup = Setup {
        env,
        queue,
        campaign,
        redis,
    };
    (setup, items.iter().map(|i| i.request_id).collect())
}

impl Setup {
    async fn raw_status(&mut self, id: RequestId) -> Option<String> {
        redis::cmd("GET")
            .arg(self.queue.keys().status(&id))
            .query_async(&mut self.redis)
            .await
            .unwrap()
    }

    async fn status(&self, id: RequestId) -> RequestView {
        self.queue.request_status(id).await.unwrap().unwrap()
    }

    async fn decisions(&self) -> Vec<Decision> {
        let entries: Vec<LogEntry> = self
            .queue
            .read_log(&self.campaign, "test", 1000)
            .await
            .unwrap()
            .entries;
        entries.into_iter().flat_map(|e| e.decisions).collect()
    }

    async fn cleanup(self) {
        self.env.cleanup().await.unwrap();
    }
}

#[tokio::test]
async fn codes_read_back_through_status_and_log_are_minted_from_the_sequence() {
    let (mut s, ids) = campaign_with_queued(40, 50).await;
    let outcome = s.queue.decide(&s.campaign, 100).await.unwrap().unwrap();
    assert_eq!((outcome.decided, outcome.issued), (50, 40));

    // Redis records the sequence number, not the code.
    let mut seqs = Vec::new();
    for &id in &ids {
        let raw = s.raw_status(id).await.unwrap();
        let fields: Vec<&str> = raw.split('\t').collect();
        if fields[0] == "i" {
            seqs.push((id, fields[3].parse::<u64>().expect("a decimal seq")));
        } else {
            assert_eq!((fields[0], fields[3]), ("s", ""), "{raw}");
        }
    }
    assert_eq!(seqs.len(), 40);

    // The status path mints it: through this process's cache (filled by the warm-up) and through
    // a fresh process's first read of the campaign's key.
    let fresh = Queue::new(s.env.queue_config()).unwrap();
    let mut codes = HashSet::new();
    for &(id, seq) in &seqs {
        let expected = CouponCode::mint(KEY, seq);
        let view = s.status(id).await;
        assert_eq!(view.status, RequestStatus::Issued);
        assert_eq!(view.coupon_code.as_ref(), Some(&expected));
        let cold = fresh.request_status(id).await.unwrap().unwrap();
        assert_eq!(cold, view);
        codes.insert(expected);
    }
    assert_eq!(codes.len(), 40, "guarantee 3: codes are distinct");

    // The log carries the same codes, so PostgreSQL records what the API answered.
    let decisions = s.decisions().await;
    assert_eq!(decisions.len(), 50);
    for d in decisions
        .iter()
        .filter(|d| d.status == RequestStatus::Issued)
    {
        let seq = u64::try_from(d.coupon_seq.unwrap()).unwrap();
        assert_eq!(d.coupon_code, Some(CouponCode::mint(KEY, seq)));
        assert_eq!(d.coupon_code, s.status(d.request_id).await.coupon_code);
    }
    assert!(
        decisions
            .iter()
            .filter(|d| d.status != RequestStatus::Issued)
            .all(|d| d.coupon_code.is_none() && d.coupon_seq.is_none())
    );
    s.cleanup().await;
}

#[tokio::test]
async fn without_the_campaign_key_reads_fail_instead_of_guessing() {
    let (mut s, ids) = campaign_with_queued(5, 1).await;
    s.queue.decide(&s.campaign, 10).await.unwrap().unwrap();
    // Redis loses the campaign's state but not the request's record or the log.
    redis::cmd("DEL")
        .arg(s.queue.keys().campaign(&s.campaign).meta)
        .query_async::<i64>(&mut s.redis)
        .await
        .unwrap();
    let fresh = Queue::new(s.env.queue_config()).unwrap();
    assert!(matches!(
        fresh.request_status(ids[0]).await,
        Err(QueueError::CodeKeyMissing(c)) if c == s.campaign
    ));
    // The log is not touched: nothing becomes pending on a reader that could not mint.
    assert!(matches!(
        fresh.read_log(&s.campaign, "test", 10).await,
        Err(QueueError::CodeKeyMissing(_))
    ));
    assert_eq!(fresh.pending_len(&s.campaign).await.unwrap(), 0);
    // A rebuild from the record restores the key, and the same code.
    fresh.warm(&s.campaign, &s.env.store).await.unwrap();
    let view = fresh.request_status(ids[0]).await.unwrap().unwrap();
    assert_eq!(view.coupon_code, s.status(ids[0]).await.coupon_code);
    assert_eq!(
        s.raw_status(ids[0]).await.map(|r| r.starts_with("i\t")),
        Some(true)
    );
    s.cleanup().await;
}

#[tokio::test]
async fn rollback_undoes_records_holding_the_sequence_number() {
    let (s, ids) = campaign_with_queued(5, 2).await;
    s.queue.decide(&s.campaign, 10).await.unwrap().unwrap();
    let decisions = s.decisions().await;
    let rollback = |d: &Decision| Rollback {
        request_id: d.request_id,
        user_id: d.user_id.clone(),
        coupon_seq: d.coupon_seq,
        new_status: RequestStatus::SoldOut,
        holder: None,
    };

    let undo: Vec<Rollback> = decisions.iter().map(rollback).collect();
    assert_eq!(s.queue.rollback(&s.campaign, &undo).await.unwrap(), 2);
    for &id in &ids {
        let view = s.status(id).await;
        assert_eq!(
            (view.status, view.coupon_code),
            (RequestStatus::SoldOut, None)
        );
    }
    let state = s.queue.campaign_state(&s.campaign).await.unwrap().unwrap();
    assert_eq!((state.issued, state.remaining), (0, 0));
    // Idempotent: the records no longer say issued with that coupon.
    assert_eq!(s.queue.rollback(&s.campaign, &undo).await.unwrap(), 0);
    let state = s.queue.campaign_state(&s.campaign).await.unwrap().unwrap();
    assert_eq!(state.issued, 0);
    s.cleanup().await;
}

#[tokio::test]
async fn rollback_leaves_a_record_naming_another_coupon() {
    let (s, ids) = campaign_with_queued(5, 1).await;
    s.queue.decide(&s.campaign, 10).await.unwrap().unwrap();
    let decided = &s.decisions().await[0];
    let seq = decided.coupon_seq.unwrap();
    let other = Rollback {
        request_id: ids[0],
        user_id: decided.user_id.clone(),
        coupon_seq: Some(seq + 1),
        new_status: RequestStatus::SoldOut,
        holder: None,
    };
    assert_eq!(s.queue.rollback(&s.campaign, &[other]).await.unwrap(), 0);
    assert_eq!(s.status(ids[0]).await.status, RequestStatus::Issued);
    s.cleanup().await;
}
