//! The OpenAPI document: committed, served, and true to the code.
//!
//! `RUSHLINE_BLESS_OPENAPI=1 cargo test -p rushline-api --test api openapi` rewrites the committed
//! `openapi.json` after an intended change to the API.

use std::collections::BTreeSet;
use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use rushline_api::http::openapi::ApiDoc;
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::helpers::{ADMIN_TOKEN, TestApp, spawn_app, spawn_app_with_workers};

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json")
}

fn generated() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the document serializes");
    text.push('\n');
    text
}

#[test]
fn the_committed_openapi_json_is_what_the_code_generates() {
    let generated = generated();
    if std::env::var_os("RUSHLINE_BLESS_OPENAPI").is_some() {
        std::fs::write(committed_path(), &generated).expect("write openapi.json");
    }
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.json differs from the code: run \
         `RUSHLINE_BLESS_OPENAPI=1 cargo test -p rushline-api --test api openapi` and commit it"
    );
    let doc: Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
}

#[tokio::test]
async fn the_api_serves_the_document() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let served: Value = response.json().await.unwrap();
    let expected: Value = serde_json::from_str(&generated()).unwrap();
    assert_eq!(served, expected);
    app.stop().await;
}

/// Every documented operation is routed, and every answer it documents carries what it says.
#[tokio::test]
async fn every_documented_operation_exists_and_errors_are_problems() {
    let app = spawn_app().await;
    let doc: Value = serde_json::from_str(&generated()).unwrap();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let url = app.url(&path.replace("{id}", "no-such-thing"));
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app
                .client
                .request(method.clone(), url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            let documented = &operation["responses"][status.as_str()];
            assert!(
                documented.is_object(),
                "{method} {path}: {status} not documented"
            );
            if status.is_client_error() || status.is_server_error() {
                let body: Value = response.json().await.unwrap();
                assert_ne!(
                    body["detail"], "no such route",
                    "{method} {path} is not routed"
                );
                assert!(
                    documented["content"]["application/problem+json"].is_object(),
                    "{method} {path}: {status} not documented as a problem"
                );
            }
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert!(documented["headers"]["Retry-After"].is_object());
            }
        }
    }
    assert!(operations >= 12, "{operations}");
    app.stop().await;
}

/// The property names a documented schema declares.
fn documented_fields(doc: &Value, schema: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {schema} has properties"))
        .keys()
        .cloned()
        .collect()
}

fn fields(body: &Value) -> BTreeSet<String> {
    body.as_object().unwrap().keys().cloned().collect()
}

async fn admin_get(app: &TestApp, path: &str) -> Value {
    let response = app
        .client
        .request(Method::GET, app.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

/// The documented shapes are the ones the API really sends, field for field.
#[tokio::test]
async fn documented_shapes_match_real_answers() {
    let app = spawn_app().await;
    let doc: Value = serde_json::from_str(&generated()).unwrap();
    let campaign = app.open_campaign(5).await;
    let view = app.campaign(&campaign).await;
    // `waiting_room` and `queue` are only there for a campaign with a waiting room.
    let mut plain = documented_fields(&doc, "CampaignView");
    plain.remove("waiting_room");
    plain.remove("queue");
    assert_eq!(fields(&view), plain);
    let created: Value = app
        .create_campaign(&json!({"name": "line", "stock": 5,
            "waiting_room": {"admit_per_second": 10}}))
        .await
        .json()
        .await
        .unwrap();
    let with_room = app.campaign(created["id"].as_str().unwrap()).await;
    assert_eq!(fields(&with_room), documented_fields(&doc, "CampaignView"));
    assert_eq!(
        fields(&with_room["waiting_room"]),
        documented_fields(&doc, "WaitingRoom")
    );
    let mut unpaused = documented_fields(&doc, "QueueFigures");
    unpaused.remove("paused");
    assert_eq!(fields(&with_room["queue"]), unpaused);
    let response = app.issue(&campaign, "u-1").await;
    assert!(response.headers().contains_key("location"));
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(fields(&accepted), documented_fields(&doc, "AcceptedView"));
    let status: Value = app
        .request_status(accepted["request_id"].as_str().unwrap(), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fields(&status), documented_fields(&doc, "RequestView"));
    let page = admin_get(&app, "/v1/campaigns").await;
    assert_eq!(fields(&page), documented_fields(&doc, "CampaignPage"));
    let stats = admin_get(&app, &format!("/v1/campaigns/{campaign}/stats")).await;
    let mut without_seed = documented_fields(&doc, "CampaignStats");
    without_seed.remove("prequeue_seed");
    assert_eq!(fields(&stats), without_seed);
    let line = created["id"].as_str().unwrap();
    let stats = admin_get(&app, &format!("/v1/campaigns/{line}/stats")).await;
    assert_eq!(fields(&stats), documented_fields(&doc, "CampaignStats"));
    // A problem has the required members; `request_id` is an optional extension member.
    let problem: Value = app.issue("no-such", "u-1").await.json().await.unwrap();
    let required: BTreeSet<String> = doc["components"]["schemas"]["Problem"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields(&problem), required);
    assert!(fields(&problem).is_subset(&documented_fields(&doc, "Problem")));
    app.stop().await;
}

/// Every answer parses as the domain type the document's schema is derived from (the type the
/// CLI and the load test read it with) and renders back unchanged: nothing the API sends is
/// outside the shape, and nothing in the shape is lost on the way through a client.
#[tokio::test]
async fn real_answers_are_the_domain_types() {
    fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(what: &str, body: &Value) {
        let parsed: T = serde_json::from_value(body.clone())
            .unwrap_or_else(|e| panic!("{what} does not parse as its domain type: {e}: {body}"));
        assert_eq!(&serde_json::to_value(parsed).unwrap(), body, "{what}");
    }
    let app = spawn_app_with_workers(1).await;
    let campaign = app.open_campaign(5).await;
    round_trips::<rushline_domain::CampaignView>("campaign", &app.campaign(&campaign).await);
    let accepted: Value = app.issue(&campaign, "u-1").await.json().await.unwrap();
    round_trips::<rushline_domain::AcceptedView>("accepted", &accepted);
    let id = accepted["request_id"].as_str().unwrap();
    round_trips::<rushline_domain::RequestView>("queued request", &{
        app.request_status(id, None).await.json().await.unwrap()
    });
    round_trips::<rushline_domain::RequestView>("final request", &app.final_status(id).await);
    round_trips::<rushline_domain::CampaignPage>("page", &admin_get(&app, "/v1/campaigns").await);
    let stats = admin_get(&app, &format!("/v1/campaigns/{campaign}/stats")).await;
    round_trips::<rushline_domain::CampaignStats>("stats", &stats);
    app.stop().await;
}

/// Every `$ref` in the document names a schema it defines: the derived schemas pull in the
/// newtypes' schemas, and a missing one would leave clients with a dangling reference.
#[test]
fn every_reference_resolves() {
    fn refs(value: &Value, found: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.insert(target.clone());
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }
    let doc: Value = serde_json::from_str(&generated()).unwrap();
    let mut found = BTreeSet::new();
    refs(&doc, &mut found);
    assert!(found.len() > 10, "{found:?}");
    for target in found {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{target} is not a component schema"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{target} is not defined"
        );
    }
}
