//! The record's own rules, checked against a real PostgreSQL: whatever a caller sends, rows
//! naming a campaign the record does not hold cannot commit, and a campaign with requests cannot
//! disappear from under them (migration 20261125000002 checks this once per statement).

use rushline_domain::CampaignId;
use rushline_testkit::TestEnv;

/// SQLSTATE of a foreign-key violation, which the per-statement check raises like the key did.
const FOREIGN_KEY_VIOLATION: &str = "23503";

fn sqlstate(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> Option<String> {
    match result {
        Err(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()),
        _ => None,
    }
}

async fn insert_rows(
    env: &TestEnv,
    campaigns: &[&str],
) -> Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
    sqlx::query(
        "INSERT INTO requests (request_id, campaign_id, user_id, status, decided_at)
         SELECT gen_random_uuid(), c, 'user-' || ord, 'sold_out', now()
         FROM UNNEST($1::text[]) WITH ORDINALITY AS r(c, ord)",
    )
    .bind(campaigns)
    .execute(env.store.pool())
    .await
}

#[tokio::test]
async fn rows_for_a_campaign_the_record_does_not_hold_never_commit() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    env.create_open_campaign(&CampaignId::parse("known")?, 10)
        .await?;

    assert_eq!(
        insert_rows(&env, &["known", "known"])
            .await?
            .rows_affected(),
        2
    );
    // One unknown campaign in a batch refuses the whole statement, as the foreign key did.
    for batch in [&["unknown"][..], &["known", "unknown", "known"][..]] {
        assert_eq!(
            sqlstate(insert_rows(&env, batch).await).as_deref(),
            Some(FOREIGN_KEY_VIOLATION),
            "{batch:?}"
        );
    }
    let moved = sqlx::query("UPDATE requests SET campaign_id = 'unknown'")
        .execute(env.store.pool())
        .await;
    assert_eq!(sqlstate(moved).as_deref(), Some(FOREIGN_KEY_VIOLATION));

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM requests")
        .fetch_one(env.store.pool())
        .await?;
    assert_eq!(rows, 2);
    env.cleanup().await
}

#[tokio::test]
async fn a_campaign_with_requests_cannot_be_deleted_renamed_or_truncated() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    env.create_open_campaign(&CampaignId::parse("held")?, 10)
        .await?;
    env.create_open_campaign(&CampaignId::parse("empty")?, 10)
        .await?;
    insert_rows(&env, &["held"]).await?;

    for statement in [
        "DELETE FROM campaigns WHERE id = 'held'",
        "UPDATE campaigns SET id = 'renamed' WHERE id = 'held'",
        // With stock_moves, which references campaigns by a plain foreign key: PostgreSQL
        // refuses `TRUNCATE campaigns` alone (0A000) before any trigger; named together, the
        // guard on requests is what refuses.
        "TRUNCATE campaigns, stock_moves",
    ] {
        let refused = sqlx::query(statement).execute(env.store.pool()).await;
        assert_eq!(
            sqlstate(refused).as_deref(),
            Some(FOREIGN_KEY_VIOLATION),
            "{statement}"
        );
    }
    // A campaign nobody refers to is free to go.
    let deleted = sqlx::query("DELETE FROM campaigns WHERE id = 'empty'")
        .execute(env.store.pool())
        .await?;
    assert_eq!(deleted.rows_affected(), 1);
    env.cleanup().await
}
