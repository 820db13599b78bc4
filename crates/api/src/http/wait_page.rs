//! `GET /wait/{id}`: the waiting-room page a person's browser opens.
//!
//! One self-contained file, `assets/wait.html` (HTML, inline CSS, inline script; nothing from
//! the network), compiled in. The server fills in five values outside the script and the style
//! (language, campaign id, name, opening instant, server time), so both keep a fixed SHA-256
//! and the `Content-Security-Policy` allows exactly them by hash: no `unsafe-inline`, no nonce
//! to generate per response. The script speaks to the public API only (`connect-src 'self'`).
//!
//! The page's language comes from `Accept-Language` ([`Language::negotiate`]); the script holds
//! the strings of both languages and picks by the `lang` attribute. The server time it is
//! rendered with is Redis's clock, the clock `accept.lua` opens campaigns by, so the page's
//! countdown never rests on the phone's clock.
//!
//! [`WaitPage`] is public so a test can serve the very same page from a stand-in of the
//! waiting-room endpoints (`crates/api/tests/browser.rs`).

use std::fmt::Write as _;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rushline_domain::CampaignId;
use sha2::{Digest, Sha256};

use crate::http::extract::ApiPath;
use crate::http::{ApiError, campaign_view, schemas};
use crate::state::AppState;

/// The page, as written: `{{name}}` placeholders outside `<script>` and `<style>`.
const TEMPLATE: &str = include_str!("../../assets/wait.html");

/// The route.
pub fn router() -> Router<AppState> {
    Router::new().route("/wait/{id}", get(waiting_room_page))
}

#[utoipa::path(
    get,
    path = "/wait/{id}",
    tag = "waiting room",
    summary = "The waiting-room page (HTML)",
    description = "The page a person's browser opens: countdown to the opening by server time, \
        position, people ahead, ETA and progress; when admitted it submits the request and shows \
        the outcome. English or Korean by `Accept-Language`. The user comes from the query \
        parameter `user` (the embedding site has authenticated them).",
    params(
        ("id" = schemas::CampaignId, Path, description = "Campaign id (a malformed one is a 400)"),
        ("user" = Option<String>, Query, description = "The user id the page joins the queue with (read by the page's script, not the server)"),
        ("Accept-Language" = Option<String>, Header, description = "`ko` for Korean; anything else English"),
    ),
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html",
            headers(
                ("Content-Security-Policy" = String, description = "Only this page's own script and style (by hash) and requests to this origin"),
                ("Content-Language" = String, description = "`en` or `ko`"),
            )),
        (status = 400, description = "The campaign id is malformed", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such campaign", body = schemas::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis or PostgreSQL unavailable", body = schemas::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn waiting_room_page(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id =
        CampaignId::parse(id).map_err(|e| ApiError::BadRequest(format!("campaign id: {e}")))?;
    let language = Language::from_headers(&headers);
    // Both reads at once, as a campaign view does: one round trip's wait.
    let (campaign, now) = tokio::join!(
        state.warmed(&id, || campaign_view::campaign_state(&state, &id)),
        state.now()
    );
    let campaign = campaign?;
    Ok(WaitPage {
        campaign: &id,
        name: &campaign.name,
        opens_at: campaign.opens_at,
        server_now: now?,
        language,
    }
    .into_response())
}

/// A language the page is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// The default.
    English,
    /// `ko`.
    Korean,
}

impl Language {
    /// The BCP 47 tag: the page's `lang` attribute and `Content-Language`.
    pub fn tag(self) -> &'static str {
        match self {
            Self::English => "en",
            Self::Korean => "ko",
        }
    }

    /// The language for a request's `Accept-Language` values (every field line, in order).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let values: Vec<&str> = headers
            .get_all(header::ACCEPT_LANGUAGE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Self::negotiate(&values.join(","))
    }

    /// The page's best language for an `Accept-Language` value (RFC 9110 §12.5.4): the range
    /// with the highest weight that names one (`ko`, `ko-KR`, `en-GB`…; `*` means the default),
    /// the first listed among equals. English when none does; `q=0` means "not this one"; an
    /// entry with a malformed weight is skipped rather than guessed at.
    pub fn negotiate(accept_language: &str) -> Self {
        let mut best: Option<(u16, Self)> = None;
        for entry in accept_language.split(',') {
            let mut parts = entry.split(';');
            let range = parts.next().unwrap_or_default().trim();
            let Some(weight) = parts.try_fold(1000, |weight, param| {
                let param = param.trim();
                match param.split_once('=') {
                    Some((name, value)) if name.trim().eq_ignore_ascii_case("q") => {
                        weight_in_thousandths(value.trim())
                    }
                    _ => Some(weight),
                }
            }) else {
                continue;
            };
            let primary = range.split('-').next().unwrap_or_default();
            let language = if primary.eq_ignore_ascii_case("ko") {
                Self::Korean
            } else if primary.eq_ignore_ascii_case("en") || primary == "*" {
                Self::English
            } else {
                continue;
            };
            if weight > 0 && best.is_none_or(|(best_weight, _)| weight > best_weight) {
                best = Some((weight, language));
            }
        }
        best.map_or(Self::English, |(_, language)| language)
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn weight_in_thousandths(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, digit| n * 10 + u16::from(digit - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// One rendering of the page.
#[derive(Debug, Clone, Copy)]
pub struct WaitPage<'a> {
    /// Whose waiting room.
    pub campaign: &'a CampaignId,
    /// The campaign's display name (escaped here).
    pub name: &'a str,
    /// When the campaign opens: the countdown's target.
    pub opens_at: DateTime<Utc>,
    /// The server's clock as the page is rendered (Redis's, in the API): the page's countdown
    /// runs on it, not on the phone's.
    pub server_now: DateTime<Utc>,
    /// The page's language.
    pub language: Language,
}

impl WaitPage<'_> {
    /// The HTML.
    pub fn render(&self) -> String {
        let mut html = String::with_capacity(TEMPLATE.len() + 256);
        let mut rest = TEMPLATE;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                break;
            };
            html.push_str(&rest[..start]);
            let name = &rest[start + 2..start + len];
            match name {
                "lang" => html.push_str(self.language.tag()),
                "campaign_id" => html.push_str(self.campaign.as_str()),
                "campaign_name" => escape_html(&mut html, self.name),
                "opens_at_ms" => {
                    let _ = write!(html, "{}", self.opens_at.timestamp_millis());
                }
                "server_now_ms" => {
                    let _ = write!(html, "{}", self.server_now.timestamp_millis());
                }
                // Not a placeholder of ours: left as written.
                _ => html.push_str(&rest[start..start + len + 2]),
            }
            rest = &rest[start + len + 2..];
        }
        html.push_str(rest);
        html
    }
}

impl IntoResponse for WaitPage<'_> {
    fn into_response(self) -> Response {
        (
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(content_security_policy()),
                ),
                (
                    header::CONTENT_LANGUAGE,
                    HeaderValue::from_static(self.language.tag()),
                ),
                (header::VARY, HeaderValue::from_static("Accept-Language")),
                // The page carries the server's time of rendering: a cached copy would lie.
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                // The URL names the user (`?user=`): it must not leak to other sites.
                (
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            self.render(),
        )
            .into_response()
    }
}

/// The page's `Content-Security-Policy`: nothing by default; its one inline script and one
/// inline style by SHA-256; requests to this origin only; no framing by other sites (the page
/// is linked to, and a framed button invites clickjacking); no `<base>`, no form posts.
pub fn content_security_policy() -> &'static str {
    static POLICY: LazyLock<String> = LazyLock::new(|| {
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
             img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
            inline_hash(TEMPLATE, "<script>", "</script>"),
            inline_hash(TEMPLATE, "<style>", "</style>"),
        )
    });
    &POLICY
}

/// `'sha256-…'` of the text between the first `open` and the `close` after it; `'none'` when
/// the template has no such element (the unit tests make sure it has).
fn inline_hash(template: &str, open: &str, close: &str) -> String {
    let body = template
        .split_once(open)
        .and_then(|(_, after)| after.split_once(close).map(|(body, _)| body));
    match body {
        Some(body) => format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes()))
        ),
        None => "'none'".to_owned(),
    }
}

/// Appends `text` with `& < > " '` escaped: safe in element content and quoted attributes.
fn escape_html(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn page(name: &str, language: Language) -> String {
        let id = CampaignId::parse("concert-2026").unwrap();
        let at = DateTime::from_timestamp_millis(1_800_000_000_123).unwrap();
        WaitPage {
            campaign: &id,
            name,
            opens_at: at,
            server_now: at,
            language,
        }
        .render()
    }

    #[test]
    fn accept_language_weights_pick_the_language() {
        let cases = [
            ("", Language::English),
            ("ko", Language::Korean),
            ("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", Language::Korean),
            ("en-US,en;q=0.9,ko;q=0.8", Language::English),
            ("ko;q=0.5, en;q=0.9", Language::English),
            ("en;q=0.5, KO;q=0.9", Language::Korean),
            ("fr-CH, fr;q=0.9, ko;q=0.8, *;q=0.5", Language::Korean),
            ("fr, de", Language::English),
            ("ko;q=0", Language::English),
            ("ko;q=0.000, en;q=0.001", Language::English),
            ("ko;q=1.0", Language::Korean),
            ("*", Language::English),
            ("*;q=0.9, ko", Language::Korean),
            ("ko, en", Language::Korean),
            ("en, ko", Language::English),
            // Malformed weights: the entry is skipped, not guessed at.
            ("ko;q=2, en;q=0.1", Language::English),
            ("ko;q=0.5555", Language::English),
            ("ko;q=abc", Language::English),
            ("ko;q=, en", Language::English),
            ("ko ; Q=0.8 , en;q=0.7", Language::Korean),
            ("kok, en;q=0.1", Language::English),
        ];
        for (value, expected) in cases {
            assert_eq!(Language::negotiate(value), expected, "{value:?}");
        }
    }

    #[test]
    fn every_placeholder_is_filled_and_the_name_escaped() {
        let html = page("<b>\"Tom & Jerry's\"</b> {{lang}}", Language::Korean);
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<html lang=\"ko\""));
        assert!(html.contains("data-campaign=\"concert-2026\""));
        assert!(html.contains("data-opens-at=\"1800000000123\""));
        assert!(html.contains("data-server-now=\"1800000000123\""));
        assert!(html.contains("&lt;b&gt;&quot;Tom &amp; Jerry&#39;s&quot;&lt;/b&gt; {{lang}}"));
        // The only braces left are the name's (in the title and the heading): every template
        // placeholder was replaced, and none inside the name was expanded.
        assert_eq!(html.matches("{{").count(), 2);
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_script_and_style() {
        let policy = content_security_policy();
        assert!(!policy.contains("'none'; style-src 'none'"));
        assert!(!policy.contains("unsafe"));
        assert_eq!(TEMPLATE.matches("<script>").count(), 1);
        assert_eq!(TEMPLATE.matches("<style>").count(), 1);
        assert_eq!(policy.matches("'sha256-").count(), 2);
        // No placeholder inside the hashed parts, or the hash would not match what is served.
        for (open, close) in [("<script>", "</script>"), ("<style>", "</style>")] {
            let body = TEMPLATE
                .split_once(open)
                .unwrap()
                .1
                .split_once(close)
                .unwrap()
                .0;
            assert!(!body.contains("{{"), "{open} holds a placeholder");
        }
        // Nothing in markup that the policy would block: no inline handlers or style attributes.
        assert!(!TEMPLATE.contains(" style=\""));
        assert!(!TEMPLATE.contains(" onclick="));
    }

    proptest! {
        /// Any header value: an answer, never a panic; English unless `ko` is named.
        #[test]
        fn any_accept_language_negotiates(value in "\\PC{0,80}") {
            let language = Language::negotiate(&value);
            if !value.to_ascii_lowercase().contains("ko") {
                prop_assert_eq!(language, Language::English);
            }
        }

        /// Any campaign name renders as text: no markup gets through.
        #[test]
        fn any_name_is_escaped(name in "\\PC{0,200}") {
            let html = page(&name, Language::English);
            let mut escaped = String::new();
            escape_html(&mut escaped, &name);
            let heading = format!("<h1 id=\"campaign-name\">{escaped}</h1>");
            prop_assert!(html.contains(&heading));
        }
    }
}
