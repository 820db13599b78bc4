//! The admin API over HTTP: one typed call per operator action.
//!
//! Errors keep what the API said: a problem+json answer becomes [`ClientError::Problem`] with its
//! status and detail, so the operator reads the server's own explanation (why a stock addition
//! was refused, which field is wrong) rather than a bare status code.

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error (problem+json).
    #[error("{detail} ({status} {title})")]
    Problem {
        /// HTTP status.
        status: StatusCode,
        /// The problem's title.
        title: String,
        /// The problem's detail: what went wrong, in the server's words.
        detail: String,
    },
    /// The API could not be reached, or its answer could not be read.
    #[error("talking to the API at {url}: {source}")]
    Transport {
        /// Where the API was expected.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// The API answered 2xx with a body this CLI does not understand (a version mismatch?).
    #[error("unexpected answer from the API: {0}")]
    Unexpected(String),
    /// An admin command was run without `RUSHLINE_ADMIN_TOKEN`.
    #[error("this command needs the admin token: set RUSHLINE_ADMIN_TOKEN (or pass --token)")]
    NoToken,
}

/// A campaign as the API reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct Campaign {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Coupons it can issue.
    pub stock: u64,
    /// Coupons left.
    pub remaining: u64,
    /// Coupons issued.
    pub issued: u64,
    /// `scheduled`, `open`, `sold_out` or `closed`.
    pub status: String,
    /// Window start (RFC 3339).
    pub opens_at: String,
    /// Window end, if any.
    pub closes_at: Option<String>,
}

/// One page of `GET /v1/campaigns`.
#[derive(Debug, Clone, Deserialize)]
pub struct CampaignPage {
    /// The campaigns, in id order.
    pub campaigns: Vec<Campaign>,
    /// Pass as `after` for the next page; `None` on the last.
    pub next: Option<String>,
}

/// Counts by final status.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Counts {
    /// `issued`.
    pub issued: u64,
    /// `sold_out`.
    pub sold_out: u64,
    /// `duplicate`.
    pub duplicate: u64,
    /// All of them.
    pub total: u64,
}

/// `GET /v1/campaigns/{id}/stats`.
#[derive(Debug, Clone, Deserialize)]
pub struct Stats {
    /// The campaign.
    pub campaign_id: String,
    /// Its status.
    pub status: String,
    /// Its stock.
    pub stock: u64,
    /// Coupons left.
    pub remaining: u64,
    /// Requests waiting for a worker.
    pub queued: u64,
    /// Decisions made, persisted or not.
    pub decided: Counts,
    /// Rows in PostgreSQL.
    pub persisted: Counts,
    /// How far persistence trails the decisions.
    pub persistence_lag: Lag,
    /// When the numbers were taken (RFC 3339).
    pub at: String,
}

/// Persistence lag.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Lag {
    /// Decided batches not yet persisted.
    pub log_entries: u64,
    /// Age of the oldest, if any.
    pub oldest_unpersisted_ms: Option<u64>,
}

/// An answer, typed for the text output and as sent for `--json` (so scripts see every field the
/// API returns, including ones this version of the CLI does not know).
#[derive(Debug, Clone)]
pub struct Reply<T> {
    /// The fields the CLI uses.
    pub typed: T,
    /// The API's JSON, untouched.
    pub raw: Value,
}

/// The admin API at one base URL.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for the API at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
        }
    }

    /// `POST /v1/campaigns` with the given body.
    pub async fn create_campaign(&self, body: &Value) -> Result<Reply<Campaign>, ClientError> {
        self.send(self.admin(Method::POST, "/v1/campaigns")?.json(body))
            .await
    }

    /// `GET /v1/campaigns/{id}` (public).
    pub async fn campaign(&self, id: &str) -> Result<Reply<Campaign>, ClientError> {
        let path = format!("/v1/campaigns/{}", segment(id));
        self.send(self.http.get(self.url(&path))).await
    }

    /// One page of `GET /v1/campaigns`.
    pub async fn campaigns(
        &self,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Reply<CampaignPage>, ClientError> {
        let mut request = self
            .admin(Method::GET, "/v1/campaigns")?
            .query(&[("limit", limit.to_string())]);
        if let Some(after) = after {
            request = request.query(&[("after", after)]);
        }
        self.send(request).await
    }

    /// `POST /v1/campaigns/{id}/close`.
    pub async fn close(&self, id: &str) -> Result<Reply<Campaign>, ClientError> {
        let path = format!("/v1/campaigns/{}/close", segment(id));
        self.send(self.admin(Method::POST, &path)?).await
    }

    /// `POST /v1/campaigns/{id}/stock`.
    pub async fn add_stock(&self, id: &str, add: u64) -> Result<Reply<Campaign>, ClientError> {
        let path = format!("/v1/campaigns/{}/stock", segment(id));
        let body = serde_json::json!({ "add": add });
        self.send(self.admin(Method::POST, &path)?.json(&body))
            .await
    }

    /// `GET /v1/campaigns/{id}/stats`.
    pub async fn stats(&self, id: &str) -> Result<Reply<Stats>, ClientError> {
        let path = format!("/v1/campaigns/{}/stats", segment(id));
        self.send(self.admin(Method::GET, &path)?).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn admin(&self, method: Method, path: &str) -> Result<RequestBuilder, ClientError> {
        let token = self.token.as_deref().ok_or(ClientError::NoToken)?;
        Ok(self.http.request(method, self.url(path)).bearer_auth(token))
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<Reply<T>, ClientError> {
        let transport = |source| ClientError::Transport {
            url: self.base.clone(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            let raw: Value = response.json().await.map_err(transport)?;
            let typed = T::deserialize(&raw).map_err(|e| ClientError::Unexpected(e.to_string()))?;
            return Ok(Reply { typed, raw });
        }
        let text = response.text().await.map_err(transport)?;
        let problem: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let field = |name: &str| problem[name].as_str().map(str::to_owned);
        Err(ClientError::Problem {
            status,
            title: field("title")
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
            detail: field("detail").unwrap_or(text),
        })
    }
}

/// A campaign id as one path segment. Valid ids need no escaping; anything else is sent
/// percent-encoded so the API, not the URL parser, rejects it (with a 404).
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_single_path_segments() {
        assert_eq!(segment("concert-2026_a"), "concert-2026_a");
        assert_eq!(segment("../x y"), "%2E%2E%2Fx%20y");
    }
}
