//! The real API as the walk's backend: `rushline-api` and a worker in this process, on the test's
//! own database and Redis namespace, driven only through the HTTP API an operator uses.
//!
//! Admission really runs at a rate, so "admission reaches position N" is made by the operator's
//! control (`POST /v1/campaigns/{id}/admission`): the campaign is created paused; to move the line,
//! admission resumes at a slow rate and pauses again once the serving counter has reached N. The
//! counter may pass N by the one or two positions admitted between the last read and the pause;
//! [`WaitingRoom::admit_through`] returns where it stopped.

use std::time::Duration;

use reqwest::StatusCode;
use rushline_testkit::app::{TestApp, spawn_app};
use serde_json::{Value, json};

use super::WaitingRoom;

const ADMIN_TOKEN: &str = "browser-admin-token";
/// Positions per second while the walk moves the line: slow enough to pause near a target.
const CREEP_PER_SECOND: u32 = 4;

/// The real API and one worker.
pub struct RealRoom {
    app: TestApp,
    client: reqwest::Client,
}

impl RealRoom {
    pub async fn start() -> Self {
        let app = spawn_app(ADMIN_TOKEN, 1)
            .await
            .expect("the API and a worker");
        Self {
            app,
            client: reqwest::Client::new(),
        }
    }

    pub async fn stop(self) {
        self.app.stop().await.expect("stop the API");
    }

    /// The campaign as `GET /v1/campaigns/{id}` shows it.
    pub async fn campaign(&self, campaign: &str) -> Value {
        let response = self
            .client
            .get(format!("{}/v1/campaigns/{campaign}", self.app.url))
            .send()
            .await
            .expect("GET campaign");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("campaign json")
    }

    async fn admission(&self, campaign: &str, change: Value) {
        let response = self
            .client
            .post(format!(
                "{}/v1/campaigns/{campaign}/admission",
                self.app.url
            ))
            .bearer_auth(ADMIN_TOKEN)
            .json(&change)
            .send()
            .await
            .expect("POST admission");
        assert_eq!(response.status(), StatusCode::OK, "admission {change}");
    }

    async fn admitted_through(&self, campaign: &str) -> u64 {
        self.campaign(campaign).await["queue"]["admitted_through"]
            .as_u64()
            .expect("queue.admitted_through")
    }
}

impl WaitingRoom for RealRoom {
    fn base_url(&self) -> &str {
        &self.app.url
    }

    async fn create_campaign(&self, opens_in: Duration, already_waiting: u64) -> String {
        // The server's clock decides the window; the API's own reading of it is the one to use.
        let now = self.app.state.now().await.expect("Redis's clock");
        let opens_at = now + chrono::TimeDelta::from_std(opens_in).expect("opens_in");
        let response = self
            .client
            .post(format!("{}/v1/campaigns", self.app.url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({
                "name": "Concert presale",
                "stock": 100,
                "opens_at": opens_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "waiting_room": {"admit_per_second": CREEP_PER_SECOND, "prequeue_secs": 3600},
            }))
            .send()
            .await
            .expect("POST campaign");
        assert_eq!(response.status(), StatusCode::CREATED);
        let campaign = response.json::<Value>().await.expect("campaign json")["id"]
            .as_str()
            .expect("id")
            .to_owned();
        self.admission(&campaign, json!({"paused": true})).await;
        for n in 0..already_waiting {
            let response = self
                .client
                .post(format!("{}/v1/campaigns/{campaign}/queue", self.app.url))
                .json(&json!({"user_id": format!("crowd-{n}")}))
                .send()
                .await
                .expect("POST queue");
            assert_eq!(response.status(), StatusCode::CREATED);
        }
        campaign
    }

    async fn admit_through(&self, campaign: &str, position: u64) -> u64 {
        if self.admitted_through(campaign).await >= position {
            return self.admitted_through(campaign).await;
        }
        self.admission(campaign, json!({"paused": false})).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.admitted_through(campaign).await < position {
            assert!(
                tokio::time::Instant::now() < deadline,
                "admission did not reach {position}"
            );
            // Not synchronisation by sleep: the counter moves with time, and this polls it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.admission(campaign, json!({"paused": true})).await;
        self.admitted_through(campaign).await
    }
}
