//! One campaign's figures from the record, for a test's assertions.

use anyhow::Context;
use rushline_domain::CampaignId;
use rushline_store::Store;

use crate::guarantees::Record;

/// What the record says about one campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// The campaign's stock.
    pub stock: i64,
    /// Issued rows, counted.
    pub issued_rows: i64,
    /// The trigger-kept `campaigns.issued`.
    pub issued_counter: i64,
    /// Rows by status: (issued, sold_out, duplicate).
    pub by_status: (i64, i64, i64),
    /// Users holding more than one issued coupon.
    pub users_with_two_coupons: i64,
    /// Codes appearing on more than one row.
    pub repeated_codes: i64,
}

impl Audit {
    /// Panics with the audit if guarantee 1, 2 or 3 (or the counter) is violated.
    pub fn assert_guarantees(&self) {
        assert!(
            self.issued_rows <= self.stock,
            "guarantee 1 violated: {self:?}"
        );
        assert_eq!(
            self.users_with_two_coupons, 0,
            "guarantee 2 violated: {self:?}"
        );
        assert_eq!(self.repeated_codes, 0, "guarantee 3 violated: {self:?}");
        assert_eq!(
            self.issued_rows, self.issued_counter,
            "issued counter disagrees: {self:?}"
        );
    }
}

/// Reads [`Audit`] figures for `campaign` straight from PostgreSQL, through the one guarantee
/// audit ([`Record`]).
pub async fn audit(store: &Store, campaign: &CampaignId) -> anyhow::Result<Audit> {
    let record = Record::read(store.pool(), &[campaign.as_str().to_owned()]).await?;
    let recorded = record
        .campaigns
        .first()
        .with_context(|| format!("campaign {campaign} is not in PostgreSQL"))?;
    let count = |status: &str| record.rows.iter().filter(|r| r.status == status).count() as i64;
    let issued = count("issued");
    Ok(Audit {
        stock: recorded.stock,
        issued_rows: issued,
        issued_counter: recorded.issued,
        by_status: (issued, count("sold_out"), count("duplicate")),
        users_with_two_coupons: record.users_with_two_coupons().len() as i64,
        repeated_codes: record.repeated_codes().len() as i64,
    })
}

/// Rows recorded for `campaign`.
pub async fn recorded_rows(store: &Store, campaign: &CampaignId) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM requests WHERE campaign_id = $1")
            .bind(campaign.as_str())
            .fetch_one(store.pool())
            .await?,
    )
}
