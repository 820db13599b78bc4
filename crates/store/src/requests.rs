//! Reading decided requests back.

use chrono::{DateTime, Utc};
use rushline_domain::{CampaignId, CouponCode, RequestId, RequestView, UserId};
use uuid::Uuid;

use crate::{Store, StoreError};

#[derive(sqlx::FromRow)]
struct RequestRow {
    request_id: Uuid,
    campaign_id: String,
    user_id: String,
    status: String,
    coupon_code: Option<String>,
    decided_at: DateTime<Utc>,
}

impl Store {
    /// The recorded request, or `None` (not decided yet, not persisted yet, or unknown).
    pub async fn request(&self, id: RequestId) -> Result<Option<RequestView>, StoreError> {
        self.bounded(async {
            let row: Option<RequestRow> = sqlx::query_as(
                "SELECT request_id, campaign_id, user_id, status, coupon_code, decided_at
                 FROM requests WHERE request_id = $1",
            )
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r| {
                Ok(RequestView {
                    request_id: r.request_id.into(),
                    campaign_id: CampaignId::parse(r.campaign_id).map_err(StoreError::corrupt)?,
                    user_id: UserId::from_record(r.user_id).map_err(StoreError::corrupt)?,
                    status: r.status.parse().map_err(StoreError::corrupt)?,
                    coupon_code: r
                        .coupon_code
                        .map(CouponCode::parse)
                        .transpose()
                        .map_err(StoreError::corrupt)?,
                    decided_at: Some(r.decided_at),
                })
            })
            .transpose()
        })
        .await
    }
}
