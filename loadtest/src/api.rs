//! A typed client for the parts of rushline's HTTP contract the load test uses.
//!
//! Every answer is parsed by the API's own type from `rushline_domain` (what the API serializes
//! is what is read here, validation included), then kept in the plain form the checks compare
//! (statuses and ids as text, counts as `i64` like PostgreSQL's): the structs below are those
//! projections, not second definitions of the wire shapes.
//!
//! One `reqwest::Client` (a keep-alive pool) is shared by every task, so C concurrent tasks hold
//! at most C connections and reuse them; the ceiling server is measured through an identical
//! client ([`Api::with_base`]).

use std::net::IpAddr;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use rushline_domain::{AcceptedView, CampaignId, CampaignName, DecideMode, NewCampaign, Stock};
use serde::Deserialize;
use uuid::Uuid;

use crate::LoadError;

/// What `GET /v1/campaigns/{id}` answers (the fields the checks need).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "rushline_domain::CampaignView")]
pub struct CampaignView {
    /// Campaign id.
    pub id: String,
    /// Stock the campaign was created with.
    pub stock: i64,
    /// Coupons left.
    pub remaining: i64,
    /// Coupons issued (from Redis counters; may lag by the queue).
    pub issued: i64,
    /// `scheduled`, `open`, `sold_out` or `closed`.
    pub status: String,
}

/// What `GET /v1/requests/{id}` answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "rushline_domain::RequestView")]
pub struct RequestView {
    /// Request id.
    pub request_id: Uuid,
    /// Campaign id.
    pub campaign_id: String,
    /// The user who asked.
    pub user_id: String,
    /// `queued`, `issued`, `sold_out`, `duplicate`, …
    pub status: String,
    /// The coupon, when issued.
    pub coupon_code: Option<String>,
    /// When it was decided (RFC 3339).
    pub decided_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The body of a `202`/`200` answer to `POST …/requests` (the fields the checks need): the
/// `202`'s [`AcceptedView`], whose fields the `200`'s request view has too.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "AcceptedView")]
pub struct IssueAnswer {
    /// Request id.
    pub request_id: Uuid,
    /// `queued` for a `202`, a final status for a `200`.
    pub status: String,
}

impl TryFrom<rushline_domain::CampaignView> for CampaignView {
    type Error = std::num::TryFromIntError;
    fn try_from(view: rushline_domain::CampaignView) -> Result<Self, Self::Error> {
        Ok(Self {
            id: view.id.into(),
            stock: i64::try_from(view.stock)?,
            remaining: i64::try_from(view.remaining)?,
            issued: i64::try_from(view.issued)?,
            status: view.status.as_str().to_owned(),
        })
    }
}

impl From<rushline_domain::RequestView> for RequestView {
    fn from(view: rushline_domain::RequestView) -> Self {
        Self {
            request_id: view.request_id.as_uuid(),
            campaign_id: view.campaign_id.into(),
            user_id: view.user_id.into(),
            status: view.status.as_str().to_owned(),
            coupon_code: view.coupon_code.map(String::from),
            decided_at: view.decided_at,
        }
    }
}

impl From<AcceptedView> for IssueAnswer {
    fn from(answer: AcceptedView) -> Self {
        Self {
            request_id: answer.request_id.as_uuid(),
            status: answer.status.as_str().to_owned(),
        }
    }
}

/// A client for one rushline API on a loopback address.
#[derive(Debug, Clone)]
pub struct Api {
    base: Url,
    admin_token: Option<String>,
    client: reqwest::Client,
    /// The decide mode of every campaign this client creates.
    decide: DecideMode,
}

/// Checks that `url` is `http://` on a loopback IP literal (`127.0.0.0/8` or `::1`).
///
/// Host names are refused even when they are `localhost`: resolution is outside our control.
pub fn loopback_url(url: &str) -> Result<Url, LoadError> {
    let parsed = Url::parse(url).map_err(|e| LoadError::BadUrl {
        url: url.into(),
        reason: e.to_string(),
    })?;
    if parsed.scheme() != "http" {
        return Err(LoadError::BadUrl {
            url: url.into(),
            reason: "only http:// is supported".into(),
        });
    }
    let host = parsed.host_str().unwrap_or_default();
    let ip: Option<IpAddr> = host.trim_matches(['[', ']']).parse().ok();
    match ip {
        Some(ip) if ip.is_loopback() => Ok(parsed),
        _ => Err(LoadError::NotLoopback(url.into())),
    }
}

/// The HTTP client every task shares: keep-alive, no Nagle, pool sized for `concurrency`.
pub fn http_client(concurrency: usize) -> Result<reqwest::Client, LoadError> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(1))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?)
}

impl Api {
    /// A client for the API at `base` (must be loopback) with a pool for `concurrency` tasks.
    pub fn new(
        base: &str,
        admin_token: Option<String>,
        concurrency: usize,
    ) -> Result<Self, LoadError> {
        Ok(Self {
            base: loopback_url(base)?,
            admin_token,
            client: http_client(concurrency)?,
            decide: DecideMode::Queued,
        })
    }

    /// The same client, creating its campaigns with `decide` (`instant`: the API answers `200`
    /// with the final status at once, and workers only persist).
    pub fn deciding(self, decide: DecideMode) -> Self {
        Self { decide, ..self }
    }

    /// The decide mode of the campaigns this client creates.
    pub fn decide(&self) -> DecideMode {
        self.decide
    }

    /// The same client settings pointed at another loopback base (the ceiling server).
    pub fn with_base(&self, base: &str) -> Result<Self, LoadError> {
        Ok(Self {
            base: loopback_url(base)?,
            admin_token: self.admin_token.clone(),
            client: self.client.clone(),
            decide: self.decide,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The shared HTTP client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `request` with the admin bearer token, when this client has one.
    pub fn admin(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.admin_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `base` joined with an absolute `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    /// `POST /v1/campaigns`: creates an open campaign, decided as [`Api::deciding`] set.
    pub async fn create_campaign(&self, id: &str, stock: i64) -> Result<(), LoadError> {
        let invalid = |detail: String| LoadError::Unexpected {
            what: format!("campaign {id}"),
            detail,
        };
        let body = NewCampaign {
            id: Some(CampaignId::parse(id).map_err(|e| invalid(e.to_string()))?),
            name: CampaignName::parse(format!("loadtest {id}"))
                .map_err(|e| invalid(e.to_string()))?,
            stock: u64::try_from(stock)
                .map_err(|e| invalid(e.to_string()))
                .and_then(|n| Stock::new(n).map_err(|e| invalid(e.to_string())))?,
            opens_at: None,
            closes_at: None,
            decide: Some(self.decide),
            waiting_room: None,
            shards: None,
        };
        let response = self
            .admin(self.client.post(self.url("/v1/campaigns")))
            .json(&body)
            .send()
            .await?;
        if response.status() != StatusCode::CREATED {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(LoadError::Unexpected {
                what: format!("POST /v1/campaigns ({id})"),
                detail: format!("{status}: {body}"),
            });
        }
        Ok(())
    }

    /// `GET /v1/campaigns/{id}`.
    pub async fn campaign(&self, id: &str) -> Result<CampaignView, LoadError> {
        let response = self
            .client
            .get(self.url(&format!("/v1/campaigns/{id}")))
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(LoadError::Unexpected {
                what: format!("GET /v1/campaigns/{id}"),
                detail: response.status().to_string(),
            });
        }
        Ok(response.json().await?)
    }

    /// `GET /v1/requests/{id}?wait={wait}`.
    pub async fn request_status(&self, id: Uuid, wait: u64) -> Result<RequestView, LoadError> {
        let response = self
            .client
            .get(self.url(&format!("/v1/requests/{id}?wait={wait}")))
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(LoadError::Unexpected {
                what: format!("GET /v1/requests/{id}"),
                detail: response.status().to_string(),
            });
        }
        Ok(response.json().await?)
    }

    /// `GET /readyz` is 200.
    pub async fn ready(&self) -> Result<bool, LoadError> {
        let response = self.client.get(self.url("/readyz")).send().await?;
        Ok(response.status() == StatusCode::OK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_literals_are_accepted() {
        assert!(loopback_url("http://127.0.0.1:8080").is_ok());
        assert!(loopback_url("http://[::1]:8080/").is_ok());
        assert!(loopback_url("http://localhost:8080").is_err());
        assert!(loopback_url("http://10.0.0.1:8080").is_err());
        assert!(loopback_url("http://example.com").is_err());
        assert!(loopback_url("https://127.0.0.1").is_err());
    }
}
