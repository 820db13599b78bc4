//! `GET /wait/{id}` over HTTP: the page, its language, its headers and its refusals. The page's
//! behaviour in a browser is `tests/browser.rs`.

use base64::Engine as _;
use reqwest::{Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, assert_problem, spawn_app};

async fn page(app: &TestApp, campaign: &str, accept_language: Option<&str>) -> Response {
    let mut request = app.client.get(app.url(&format!("/wait/{campaign}")));
    if let Some(value) = accept_language {
        request = request.header("Accept-Language", value);
    }
    request.send().await.expect("GET /wait/{id}")
}

fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// `'sha256-…'` of the text between `open` and `close` in `html`.
fn hash_of(html: &str, open: &str, close: &str) -> String {
    let body = html
        .split_once(open)
        .and_then(|(_, after)| after.split_once(close))
        .map(|(body, _)| body)
        .unwrap_or_else(|| panic!("no {open} in the page"));
    let digest = Sha256::digest(body.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[tokio::test]
async fn a_campaign_s_page_is_html_with_a_strict_policy() {
    let app = spawn_app().await;
    let created = app
        .create_campaign(
            &json!({"id": "concert-2026", "name": "<script>alert(1)</script> & co",
            "stock": 10, "opens_at": "2099-01-01T10:00:00Z"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);

    let response = page(&app, "concert-2026", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "content-type"),
        "text/html; charset=utf-8"
    );
    assert_eq!(header(&response, "content-language"), "en");
    assert_eq!(header(&response, "cache-control"), "no-store");
    assert_eq!(header(&response, "referrer-policy"), "no-referrer");
    assert_eq!(header(&response, "vary"), "Accept-Language");
    let policy = header(&response, "content-security-policy").to_owned();
    let html = response.text().await.expect("page text");

    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<html lang=\"en\" data-campaign=\"concert-2026\""));
    // 2099-01-01T10:00:00Z in milliseconds: the countdown's target.
    assert!(html.contains("data-opens-at=\"4070944800000\""));
    // The campaign's name is text, never markup.
    assert!(!html.contains("<script>alert(1)"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
    // Nothing loaded from anywhere: no src or href but the empty data: icon.
    assert!(!html.contains(" src="));
    assert_eq!(html.matches(" href=").count(), 1);

    // The policy allows exactly what is served: the inline script and style by their hashes.
    assert!(policy.starts_with("default-src 'none';"), "{policy}");
    assert!(!policy.contains("unsafe"), "{policy}");
    let script = hash_of(&html, "<script>", "</script>");
    let style = hash_of(&html, "<style>", "</style>");
    assert!(
        policy.contains(&format!("script-src {script};")),
        "{policy}"
    );
    assert!(policy.contains(&format!("style-src {style};")), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    app.stop().await;
}

#[tokio::test]
async fn the_server_time_the_page_counts_down_by_is_the_server_s() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(3).await;
    let before = chrono::Utc::now().timestamp_millis();
    let html = page(&app, &campaign, None)
        .await
        .text()
        .await
        .expect("page");
    let after = chrono::Utc::now().timestamp_millis();
    let server_now: i64 = html
        .split_once("data-server-now=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .and_then(|(ms, _)| ms.parse().ok())
        .expect("data-server-now");
    // The test's Redis runs on this machine: its clock is this one's, within a second.
    assert!(
        (before - 1000..=after + 1000).contains(&server_now),
        "{before} <= {server_now} <= {after}"
    );
    app.stop().await;
}

#[tokio::test]
async fn korean_is_chosen_by_accept_language() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(3).await;
    for (accept_language, lang) in [
        ("ko-KR,ko;q=0.9,en-US;q=0.8", "ko"),
        ("ko", "ko"),
        ("en;q=0.9, ko;q=0.1", "en"),
        ("fr-FR, de;q=0.5", "en"),
        ("ko;q=0", "en"),
        ("en-GB", "en"),
    ] {
        let response = page(&app, &campaign, Some(accept_language)).await;
        assert_eq!(response.status(), StatusCode::OK, "{accept_language}");
        assert_eq!(
            header(&response, "content-language"),
            lang,
            "{accept_language}"
        );
        let html = response.text().await.expect("page");
        assert!(
            html.contains(&format!("<html lang=\"{lang}\"")),
            "{accept_language}"
        );
        // Both languages' strings travel with the page; the script picks by `lang`.
        assert!(html.contains("미리 줄을 섰습니다") && html.contains("You are in line early"));
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_campaigns_are_404_and_malformed_ids_400() {
    let app = spawn_app().await;
    assert_problem(
        page(&app, "no-such-drop", None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    for malformed in ["UPPER", "a%20b", "%C3%A9t%C3%A9", &"x".repeat(65)] {
        let body = assert_problem(page(&app, malformed, None).await, StatusCode::BAD_REQUEST).await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("campaign id"),
            "{malformed}: {body}"
        );
    }
    // HEAD answers like GET, without a body.
    let campaign = app.open_campaign(1).await;
    let head = app
        .client
        .head(app.url(&format!("/wait/{campaign}")))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.headers().contains_key("content-security-policy"));
    let post = app
        .client
        .post(app.url(&format!("/wait/{campaign}")))
        .send()
        .await
        .expect("POST");
    assert_problem(post, StatusCode::METHOD_NOT_ALLOWED).await;
    app.stop().await;
}
