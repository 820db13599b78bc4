//! The admin API over HTTP: one typed call per operator action.
//!
//! Errors keep what the API said: a problem+json answer becomes [`ClientError::Problem`] with its
//! status and detail, so the operator reads the server's own explanation (why a stock addition
//! was refused, which field is wrong) rather than a bare status code.

use reqwest::{Method, RequestBuilder, StatusCode};
use rushline_domain::AddStock;
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

// The shapes are the API's own types: what it serializes is what this client parses.
pub use rushline_domain::{CampaignPage, CampaignStats as Stats, CampaignView as Campaign};

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
        self.send(self.admin(Method::POST, &path)?.json(&AddStock { add }))
            .await
    }

    /// `POST /v1/campaigns/{id}/admission`.
    pub async fn admission(
        &self,
        id: &str,
        change: &rushline_domain::AdmissionChange,
    ) -> Result<Reply<Campaign>, ClientError> {
        let path = format!("/v1/campaigns/{}/admission", segment(id));
        self.send(self.admin(Method::POST, &path)?.json(change))
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
