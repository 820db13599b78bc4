//! The waiting-room page in a real browser: Debian's headless Chromium, driven through
//! chromedriver, walks a person from the pre-queue through the countdown, the line and
//! admission to the coupon code — in English, in Korean (by `Accept-Language`) and on a
//! 360-px-wide phone.
//!
//! The walk ([`walk`]) knows the backend only through [`WaitingRoom`]: the walks run against
//! the real API and a worker ([`real::RealRoom`], real Redis and PostgreSQL); the tests of faults
//! the real API cannot show on cue (a busy API, a refused ticket, a pass that expires now) run
//! against a contract-faithful stand-in ([`fake::FakeRoom`]) serving the same page.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`scripts/setup` installs them) and
//! fails, naming that script, without them. `RUSHLINE_SCREENSHOTS=1` saves the screenshots the
//! README shows to `docs/screenshots/`.

// A test file is a crate root: its modules are found beside it unless told.
#[path = "browser/chrome.rs"]
mod chrome;
#[path = "browser/fake.rs"]
mod fake;
#[path = "browser/real.rs"]
mod real;

use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;

use chrome::{Browser, ENTER, TAB, Window};
use fake::{Endpoint, FakeRoom};
use real::RealRoom;

/// What the walk needs from a waiting room's backend.
pub trait WaitingRoom {
    /// Where the browser finds the page and the API (`http://127.0.0.1:port`).
    fn base_url(&self) -> &str;

    /// A campaign with a waiting room opening `opens_in` from now by the server's clock, with
    /// `already_waiting` other people joined before anyone the walk sends; its id.
    fn create_campaign(
        &self,
        opens_in: Duration,
        already_waiting: u64,
    ) -> impl Future<Output = String>;

    /// Admission reaches `position` (every position up to it is admitted); returns where the
    /// serving counter stopped (at or just past `position`).
    fn admit_through(&self, campaign: &str, position: u64) -> impl Future<Output = u64>;
}

/// The strings the walk expects, in one language of the page.
struct Expected {
    lang: &'static str,
    accept_language: &'static str,
    prequeue_title: &'static str,
    announce_prequeued: &'static str,
    waiting_title: &'static str,
    issued_title: &'static str,
    busy: &'static str,
}

const ENGLISH: Expected = Expected {
    lang: "en",
    accept_language: "en-US,en",
    prequeue_title: "You are in line early",
    announce_prequeued: "You are in line early. Places are given out when the sale opens.",
    waiting_title: "You are in line",
    issued_title: "You got a coupon!",
    busy: "Lots of people are here right now.",
};

const KOREAN: Expected = Expected {
    lang: "ko",
    accept_language: "ko-KR,ko,en-US;q=0.5",
    prequeue_title: "미리 줄을 섰습니다",
    announce_prequeued: "미리 줄을 섰습니다. 판매가 시작되면 순번이 배정됩니다.",
    waiting_title: "줄을 서 있습니다",
    issued_title: "쿠폰을 받았습니다!",
    busy: "지금 접속자가 매우 많습니다.",
};

/// Seconds a countdown text such as `00:05` or `01:02:03` stands for.
fn countdown_secs(text: &str) -> u64 {
    text.split(':').fold(0, |total, part| {
        total * 60
            + part
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("countdown {text:?}"))
    })
}

/// Every step fits the viewport's width (no sideways scrolling on a phone) and is styled (the
/// CSP let the inline style through).
async fn assert_fits_and_styled(browser: &Browser) {
    let fits = browser
        .eval("return document.documentElement.scrollWidth <= window.innerWidth;")
        .await;
    assert_eq!(fits, true, "the page is wider than the viewport");
    let styled = browser
        .eval("return getComputedStyle(document.querySelector('main')).maxWidth !== 'none';")
        .await;
    assert_eq!(styled, true, "the inline style was not applied (CSP?)");
}

/// One person's way through the waiting room; `shots` prefixes the screenshots' names.
/// Returns the campaign, the user and the coupon code shown.
async fn walk(
    room: &impl WaitingRoom,
    browser: &Browser,
    expected: &Expected,
    shots: &str,
) -> (String, String, String) {
    let opens_in = Duration::from_secs(6);
    let campaign = room.create_campaign(opens_in, 41).await;
    let user = format!("u-{}", uuid::Uuid::new_v4().simple());
    browser
        .goto(&format!("{}/wait/{campaign}?user={user}", room.base_url()))
        .await;
    assert_eq!(
        browser.eval("return document.documentElement.lang;").await,
        expected.lang
    );

    // Pre-queue: a countdown by the server's clock (the fake's runs hours from the browser's).
    browser.await_shown("view-prequeue").await;
    assert_eq!(
        browser.text("prequeue-title").await,
        expected.prequeue_title
    );
    let left = countdown_secs(&browser.text("countdown").await);
    assert!(
        (1..=opens_in.as_secs()).contains(&left),
        "countdown shows {left} s, the opening is at most {} s away by the server's clock",
        opens_in.as_secs()
    );
    browser
        .await_text("announcer", expected.announce_prequeued)
        .await;
    assert_fits_and_styled(browser).await;
    browser.screenshot(&format!("{shots}-prequeue")).await;

    // The opening: the page asks by itself and gets a place in line.
    browser.await_shown("view-waiting").await;
    // The page announced its place in line at most a poll's wait ago.
    let announced_at = std::time::Instant::now();
    let position: u64 = browser
        .text("position")
        .await
        .replace(',', "")
        .parse()
        .expect("position");
    let ahead: u64 = browser
        .text("ahead")
        .await
        .replace(',', "")
        .parse()
        .expect("ahead");
    assert_eq!(ahead, position - 1, "nobody is admitted yet");
    assert!(
        browser
            .text("waiting-title")
            .await
            .contains(expected.waiting_title)
    );
    let announced = browser.text("announcer").await;
    assert!(
        announced.contains(&position.to_string()) && announced.contains(&ahead.to_string()),
        "the live region announces the place in line: {announced:?}"
    );
    assert_eq!(
        browser.attribute("progress", "role").await.as_deref(),
        Some("progressbar")
    );
    // Nothing done yet of the way to the front; at the front already, all of it.
    let progress = if ahead == 0 { "100" } else { "0" };
    assert_eq!(
        browser
            .attribute("progress", "aria-valuenow")
            .await
            .as_deref(),
        Some(progress)
    );

    // The line moves: about three quarters of the people ahead are admitted (the real pre-queue
    // draws positions at random: with fewer than 4 ahead, there is no line to move).
    if ahead >= 4 {
        let through = room.admit_through(&campaign, ahead * 3 / 4).await;
        assert!(
            through < position,
            "the line moved past the walker: {through}"
        );
        let ahead_now = position - through - 1;
        browser.await_text("ahead", &ahead_now.to_string()).await;
        // Shown at once, but not announced at once: a screen reader hears the line move at most
        // every 10 s (the page's rule), not on every poll.
        if announced_at.elapsed() < Duration::from_secs(9) {
            assert_eq!(browser.text("announcer").await, announced);
        }
        let percent = (100 * through + ahead / 2) / ahead;
        assert_eq!(
            browser.attribute("progress", "aria-valuenow").await,
            Some(percent.to_string())
        );
        // The bar is drawn as announced (once its transition, if motion is allowed, has run).
        browser
            .await_true(
                &format!("the progress bar drawn at {percent}%"),
                &format!(
                    "var bar = document.getElementById('progress').getBoundingClientRect().width;
                 var fill = document.getElementById('progress-fill').getBoundingClientRect().width;
                 return Math.abs(fill / bar - {percent} / 100) < 0.01;"
                ),
            )
            .await;
    }
    assert_fits_and_styled(browser).await;
    browser.screenshot(&format!("{shots}-waiting")).await;

    // Admitted: the page submits and shows the code.
    room.admit_through(&campaign, position).await;
    browser.await_shown("coupon-box").await;
    assert_eq!(browser.text("result-title").await, expected.issued_title);
    let code = browser.text("coupon").await;
    assert!(code.starts_with("RL-"), "coupon code {code:?}");
    assert!(browser.text("announcer").await.contains(&code));
    assert_fits_and_styled(browser).await;
    browser.screenshot(&format!("{shots}-coupon")).await;
    (campaign, user, code)
}

/// The walk in `expected`'s language in `window`, against the real API.
async fn walk_on_real(expected: &Expected, window: Window, shots: &str) {
    let room = RealRoom::start().await;
    let browser = Browser::launch(&window).await;
    // The progress bar glides, unless the person asked for less motion.
    let reduced = browser
        .eval("return window.matchMedia('(prefers-reduced-motion: reduce)').matches;")
        .await;
    assert_eq!(reduced, window.reduced_motion);
    let (campaign, _user, code) = walk(&room, &browser, expected, shots).await;
    let duration = browser
        .eval(
            "return getComputedStyle(document.getElementById('progress-fill')).transitionDuration;",
        )
        .await;
    assert_eq!(duration, if window.reduced_motion { "0s" } else { "0.6s" });
    // One request, issued: the code the page showed is the one coupon of the campaign.
    let view = room.campaign(&campaign).await;
    assert_eq!(view["issued"], 1, "{view}");
    assert!(code.starts_with("RL-"));
    browser.close().await;
    room.stop().await;
}

fn desktop(expected: &Expected) -> Window {
    Window {
        accept_language: expected.accept_language,
        width: 720,
        height: 900,
        reduced_motion: false,
    }
}

#[tokio::test]
async fn an_english_visitor_walks_from_the_pre_queue_to_a_coupon() {
    walk_on_real(&ENGLISH, desktop(&ENGLISH), "wait").await;
}

#[tokio::test]
async fn a_korean_visitor_gets_the_korean_page() {
    walk_on_real(&KOREAN, desktop(&KOREAN), "wait-ko").await;
}

#[tokio::test]
async fn the_walk_works_360_pixels_wide_with_reduced_motion() {
    let phone = Window {
        accept_language: ENGLISH.accept_language,
        width: 360,
        height: 740,
        reduced_motion: true,
    };
    walk_on_real(&ENGLISH, phone, "wait-360").await;
}

/// A crowded API (503 on joining, 429 on submitting) is retried with a polite notice, the
/// retries and a reload carry the same Idempotency-Key, and one request results.
#[tokio::test]
async fn a_busy_api_is_retried_politely_and_a_reload_does_not_submit_twice() {
    let room = FakeRoom::start().await;
    let browser = Browser::launch(&desktop(&ENGLISH)).await;
    let campaign = room.create_campaign(Duration::ZERO, 0).await;
    room.admit_through(&campaign, 1).await;
    room.fail_next(Endpoint::Join, StatusCode::SERVICE_UNAVAILABLE);
    room.fail_next(Endpoint::Submit, StatusCode::TOO_MANY_REQUESTS);
    browser
        .goto(&format!("{}/wait/{campaign}?user=u-busy", room.base_url()))
        .await;
    browser.await_shown("notice").await;
    assert!(browser.text("notice").await.starts_with(ENGLISH.busy));
    browser.await_shown("coupon-box").await;
    assert_eq!(room.faults_left(), 0, "both faults were met");
    assert_eq!(
        browser.attribute("notice", "hidden").await.as_deref(),
        Some("")
    );
    let code = browser.text("coupon").await;

    browser.reload().await;
    browser.await_shown("coupon-box").await;
    assert_eq!(
        browser.text("coupon").await,
        code,
        "the same request, replayed"
    );
    let observed = room.observed();
    assert_eq!(observed.requests_created, 1);
    assert_eq!(observed.submit_keys.len(), 3, "{:?}", observed.submit_keys);
    assert!(observed.submit_keys[0].is_some());
    assert!(
        observed
            .submit_keys
            .iter()
            .all(|k| *k == observed.submit_keys[0]),
        "one Idempotency-Key across retries and reloads: {:?}",
        observed.submit_keys
    );
    browser.close().await;
    room.stop();
}

/// A ticket refused at submit time (a `401`: say the signing key rotated) sends the page to join
/// again, which gives it a fresh ticket for the same place, and the coupon still comes.
#[tokio::test]
async fn a_ticket_refused_at_submit_time_is_renewed_by_joining_again() {
    let room = FakeRoom::start().await;
    let browser = Browser::launch(&desktop(&ENGLISH)).await;
    let campaign = room.create_campaign(Duration::ZERO, 0).await;
    room.admit_through(&campaign, 1).await;
    room.fail_next(Endpoint::Submit, StatusCode::UNAUTHORIZED);
    browser
        .goto(&format!(
            "{}/wait/{campaign}?user=u-renewed",
            room.base_url()
        ))
        .await;
    browser.await_shown("coupon-box").await;
    let observed = room.observed();
    assert_eq!(observed.joins, 2, "joined again after the refusal");
    assert_eq!(observed.requests_created, 1);
    assert_eq!(observed.stale_tickets, 0);
    browser.close().await;
    room.stop();
}

/// An expired pass offers "Join again", reachable and pressed by keyboard alone, which puts the
/// person back in line at the back.
#[tokio::test]
async fn an_expired_pass_is_joined_again_by_keyboard() {
    let room = FakeRoom::start().await;
    let browser = Browser::launch(&desktop(&ENGLISH)).await;
    let campaign = room.create_campaign(Duration::ZERO, 0).await;
    browser
        .goto(&format!("{}/wait/{campaign}?user=u-late", room.base_url()))
        .await;
    browser.await_shown("view-waiting").await;
    assert_eq!(browser.text("position").await, "1");
    room.expire(&campaign, "u-late");
    browser.await_shown("rejoin").await;
    assert_eq!(browser.text("result-title").await, "Your turn has passed");
    // Focus is on the step's heading; the next Tab stop is the button.
    browser.press(TAB).await;
    assert_eq!(
        browser.eval("return document.activeElement.id;").await,
        "rejoin"
    );
    browser.press(ENTER).await;
    browser.await_shown("view-waiting").await;
    browser.await_text("position", "2").await;
    assert_eq!(browser.text("ahead").await, "1");
    browser.close().await;
    room.stop();
}

/// A link without `?user=` says so instead of joining as nobody.
#[tokio::test]
async fn a_link_without_a_user_explains_itself() {
    let room = FakeRoom::start().await;
    let browser = Browser::launch(&Window {
        accept_language: KOREAN.accept_language,
        width: 360,
        height: 740,
        reduced_motion: false,
    })
    .await;
    let campaign = room.create_campaign(Duration::from_secs(60), 0).await;
    browser
        .goto(&format!("{}/wait/{campaign}", room.base_url()))
        .await;
    browser.await_shown("view-result").await;
    assert_eq!(
        browser.text("result-title").await,
        "회원 정보를 확인할 수 없습니다"
    );
    assert_eq!(room.observed().joins, 0, "nobody joins as nobody");
    browser.close().await;
    room.stop();
}
