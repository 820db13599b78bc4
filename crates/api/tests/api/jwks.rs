//! `GET /.well-known/jwks.json` against the running API: every configured key published, a
//! ticket verified from it by an independent verifier, and the development key shared by
//! replicas through Redis when none is configured.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use redis::AsyncCommands;
use reqwest::StatusCode;
use rushline_api::http::openapi::ApiDoc;
use rushline_api::tickets::{TicketClaims, TicketKey, TicketKeys, Tickets};
use rushline_api::{Application, Config};
use rushline_domain::{CampaignId, UserId};
use rushline_testkit::TestEnv;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

use crate::helpers::{TestApp, spawn_app_with};

async fn served_jwks(app: &TestApp) -> (reqwest::header::HeaderMap, Value) {
    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("GET jwks");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    (headers, response.json().await.expect("jwks json"))
}

fn claims() -> TicketClaims {
    TicketClaims::admitted(
        UserId::parse("u-123").unwrap(),
        CampaignId::parse("concert-2026").unwrap(),
        7,
        Utc::now(),
        Duration::from_secs(600),
        Utc::now(),
    )
}

/// What a checkout does with nothing but the JWK Set: find the ticket's key, verify EdDSA only,
/// require rushline's issuer and an unexpired `exp`.
fn verify_independently(jwks: &Value, token: &str) -> jsonwebtoken::errors::Result<Value> {
    let jwks: JwkSet = serde_json::from_value(jwks.clone()).expect("a JWK Set");
    let kid = jsonwebtoken::decode_header(token)?.kid.unwrap_or_default();
    let Some(jwk) = jwks.find(&kid) else {
        return Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into());
    };
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["rushline"]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &validation)
        .map(|data| data.claims)
}

#[tokio::test]
async fn every_configured_key_is_published_and_verifies_its_tickets_independently() {
    let (current, previous, stranger) = (
        TicketKey::generate(),
        TicketKey::generate(),
        TicketKey::generate(),
    );
    let configured = TicketKeys::new(vec![current.clone(), previous.clone()]).unwrap();
    let keys = configured.clone();
    let app = spawn_app_with(move |c| c.ticket_keys = Some(keys)).await;
    let (headers, jwks) = served_jwks(&app).await;
    assert!(
        headers[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        headers[reqwest::header::CACHE_CONTROL],
        "public, max-age=300"
    );
    let served = jwks["keys"].as_array().expect("keys");
    let kids: Vec<&str> = served.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(
        kids,
        [current.kid(), previous.kid()],
        "the signing key first"
    );
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
    let documented: BTreeSet<&str> = doc["components"]["schemas"]["Jwk"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in served {
        let fields: BTreeSet<&str> = key
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, ["alg", "crv", "kid", "kty", "use", "x"].into());
        assert_eq!(fields, documented);
        assert_eq!(
            (&key["kty"], &key["crv"], &key["alg"], &key["use"]),
            (
                &"OKP".into(),
                &"Ed25519".into(),
                &"EdDSA".into(),
                &"sig".into()
            )
        );
    }

    // A ticket from the API's keys (the current one signs) and one from before the rotation
    // (the previous key) both verify from the served set; a stranger's does not.
    let now = Tickets::new(configured, 10).sign(&claims()).unwrap();
    let before = Tickets::new(TicketKeys::new(vec![previous]).unwrap(), 10)
        .sign(&claims())
        .unwrap();
    let forged = Tickets::new(TicketKeys::new(vec![stranger]).unwrap(), 10)
        .sign(&claims())
        .unwrap();
    assert_eq!(verify_independently(&jwks, &now).unwrap()["sub"], "u-123");
    assert_eq!(verify_independently(&jwks, &before).unwrap()["pos"], 7);
    assert!(verify_independently(&jwks, &forged).is_err());
    app.stop().await;
}

#[tokio::test]
async fn without_configured_keys_every_replica_signs_with_the_one_key_shared_in_redis() {
    let env = TestEnv::new().await.expect("test environment");
    let config = || {
        Config::from_lookup(env.settings(&[("RUSHLINE_HTTP_ADDR", "127.0.0.1:0")])).expect("config")
    };
    assert!(config().ticket_keys.is_none());
    // Three replicas starting at once race for the key: one stores it, all use it.
    let shutdown = CancellationToken::new();
    let replicas =
        futures::future::join_all((0..3).map(|_| Application::build(config(), shutdown.clone())))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .expect("replicas build");
    let stored: String = env
        .redis()
        .await
        .unwrap()
        .get(format!("rushline:{}:ticket-key", env.namespace))
        .await
        .expect("the shared key is in Redis");
    let shared = TicketKey::parse(&stored).expect("a usable key");
    let tickets: Vec<&Tickets> = replicas.iter().map(|r| &r.state().tickets).collect();
    for t in &tickets {
        assert_eq!(t.current_kid().unwrap(), shared.kid());
        assert_eq!(t.jwks().unwrap().keys.len(), 1);
    }
    // A ticket one replica signed verifies at another.
    let token = tickets[0].sign(&claims()).unwrap();
    assert_eq!(tickets[2].verify(&token).unwrap().sub.as_str(), "u-123");
    shutdown.cancel();
    drop(replicas);
    env.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn with_redis_down_and_no_keys_the_api_starts_and_answers_503_until_it_has_a_key() {
    let app = spawn_app_with(|c| {
        c.shared.redis_url = "redis://127.0.0.1:1".into();
        c.backend_timeout = Duration::from_millis(200);
    })
    .await;
    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("GET jwks");
    assert!(response.headers().contains_key("retry-after"));
    crate::helpers::assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    app.stop().await;
}
