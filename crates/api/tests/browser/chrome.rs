//! A headless Chromium driven through chromedriver (W3C WebDriver), each test its own.
//!
//! Debian's `chromium` and `chromium-driver` packages (`scripts/setup` installs them; nothing
//! downloads a browser of its own). `RUSHLINE_CHROMIUM` / `RUSHLINE_CHROMEDRIVER` point
//! elsewhere. chromedriver listens on a free loopback port; the browser gets a fresh profile
//! directory, removed when the test ends.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep_until};

/// WebDriver's key codes.
pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";

/// How long any awaited condition in the browser may take.
pub const PATIENCE: Duration = Duration::from_secs(25);

/// The window a test browses with.
pub struct Window {
    /// Sent as `Accept-Language` (Chromium's `intl.accept_languages` and `--lang`).
    pub accept_language: &'static str,
    /// CSS pixels.
    pub width: u32,
    /// CSS pixels.
    pub height: u32,
    /// Asks for reduced motion (`prefers-reduced-motion: reduce`), as a phone's setting would.
    pub reduced_motion: bool,
}

/// One browser session and the chromedriver serving it.
///
/// Field order is drop order: the browser's processes die before its profile is removed.
pub struct Browser {
    pub client: Client,
    /// Held for its drop.
    _driver: Driver,
    /// Held for its drop.
    _profile: Profile,
}

/// chromedriver, leader of a process group that Chromium and its helpers join. A test that
/// fails mid-walk never reaches [`Browser::close`]: dropping this kills the whole group, so no
/// browser outlives its test (killing chromedriver alone leaves Chromium running).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(group) = self.0.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The browser's profile directory, removed on drop (a failed test included).
struct Profile(PathBuf);

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn binary(variable: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.is_file(),
        "{} is missing: the browser test needs Debian's `{package}` package. Run scripts/setup \
         (it installs chromium and chromium-driver, as CI does), or set {variable}.",
        path.display()
    );
    path
}

fn free_loopback_port() -> u16 {
    // Bound and released: chromedriver takes it a moment later (another process could take it
    // in between; then the readiness wait fails loudly rather than talking to a stranger long).
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

async fn await_driver(url: &str, driver: &mut Child) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(response) = client.get(format!("{url}/status")).send().await
            && let Ok(status) = response.json::<Value>().await
            && status["value"]["ready"] == true
        {
            return;
        }
        if let Ok(Some(exit)) = driver.try_wait() {
            panic!("chromedriver exited at start-up: {exit}");
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver not ready after {PATIENCE:?}"
        );
        sleep_until(Instant::now() + Duration::from_millis(50)).await;
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with `window`.
    pub async fn launch(window: &Window) -> Self {
        let chromium = binary("RUSHLINE_CHROMIUM", "/usr/bin/chromium", "chromium");
        let chromedriver = binary(
            "RUSHLINE_CHROMEDRIVER",
            "/usr/bin/chromedriver",
            "chromium-driver",
        );
        let port = free_loopback_port();
        let mut driver = Driver(
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display())),
        );
        let url = format!("http://127.0.0.1:{port}");
        await_driver(&url, &mut driver.0).await;

        let profile = Profile(
            std::env::temp_dir().join(format!("rushline-browser-{}", uuid::Uuid::new_v4())),
        );
        std::fs::create_dir_all(&profile.0).expect("browser profile directory");
        let primary = window.accept_language.split(',').next().unwrap_or("en");
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.0.display()));
        args.push(format!("--lang={primary}"));
        args.push(format!("--window-size={},{}", window.width, window.height));
        if window.reduced_motion {
            args.push("--force-prefers-reduced-motion".into());
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": args,
                "prefs": {"intl": {"accept_languages": window.accept_language}},
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a chromium session");
        let browser = Self {
            client,
            _driver: driver,
            _profile: profile,
        };
        browser.fit_viewport(window).await;
        browser
    }

    /// Makes the viewport (not the window) exactly `window`'s size: phones are measured by it.
    async fn fit_viewport(&self, window: &Window) {
        let inner = self
            .eval("return [window.innerWidth, window.innerHeight];")
            .await;
        let (Some(inner_width), Some(inner_height)) = (inner[0].as_u64(), inner[1].as_u64()) else {
            panic!("viewport size: {inner}");
        };
        let (outer_width, outer_height) = self.client.get_window_size().await.expect("size");
        let width = outer_width + u64::from(window.width) - inner_width;
        let height = outer_height + u64::from(window.height) - inner_height;
        self.client
            .set_window_size(
                u32::try_from(width).expect("width"),
                u32::try_from(height).expect("height"),
            )
            .await
            .expect("set window size");
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script {script:?}: {e}"))
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    pub async fn reload(&self) {
        self.client.refresh().await.expect("reload");
    }

    /// Polls `script` until it returns `true`, at most [`PATIENCE`]; `what` names the condition.
    pub async fn await_true(&self, what: &str, script: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if self.eval(script).await == Value::Bool(true) {
                return;
            }
            let page = self.eval(DESCRIBE_PAGE).await;
            assert!(
                Instant::now() < deadline,
                "not within {PATIENCE:?}: {what}; page: {page}"
            );
            sleep_until(Instant::now() + Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element `id` is shown (neither it nor an ancestor `hidden`).
    pub async fn await_shown(&self, id: &str) {
        self.await_true(
            &format!("#{id} shown"),
            &format!(
                "var e = document.getElementById({id:?}); return !!e && e.offsetParent !== null;"
            ),
        )
        .await;
    }

    /// Waits until the element `id`'s text is `text`.
    pub async fn await_text(&self, id: &str, text: &str) {
        self.await_true(
            &format!("#{id} reads {text:?}"),
            &format!(
                "var e = document.getElementById({id:?}); return !!e && e.textContent === {text:?};"
            ),
        )
        .await;
    }

    /// Presses `key` (a WebDriver key code such as [`TAB`]) on whatever has the focus, as a
    /// keyboard would.
    pub async fn press(&self, key: &str) {
        self.client
            .active_element()
            .await
            .expect("a focused element")
            .send_keys(key)
            .await
            .expect("key press");
    }

    /// The text of the element `id`.
    pub async fn text(&self, id: &str) -> String {
        let value = self
            .eval(&format!(
                "var e = document.getElementById({id:?}); return e ? e.textContent : null;"
            ))
            .await;
        value
            .as_str()
            .unwrap_or_else(|| panic!("no element #{id}"))
            .to_owned()
    }

    /// The attribute `name` of the element `id`.
    pub async fn attribute(&self, id: &str, name: &str) -> Option<String> {
        self.eval(&format!(
            "var e = document.getElementById({id:?}); return e ? e.getAttribute({name:?}) : null;"
        ))
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// Saves a PNG of the viewport as `docs/screenshots/{name}.png` when RUSHLINE_SCREENSHOTS=1
    /// (so ordinary runs leave the tree alone).
    pub async fn screenshot(&self, name: &str) {
        if std::env::var("RUSHLINE_SCREENSHOTS").as_deref() != Ok("1") {
            return;
        }
        let png = self.client.screenshot().await.expect("screenshot");
        let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&directory).expect("docs/screenshots");
        std::fs::write(directory.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Ends the session; dropping `self` then ends chromedriver and removes the profile.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// What a failed wait reports: the step shown and the texts that matter.
const DESCRIBE_PAGE: &str = "
    var shown = Array.prototype.filter.call(document.querySelectorAll('section'),
        function (s) { return !s.hidden; }).map(function (s) { return s.id; });
    var text = function (id) { var e = document.getElementById(id); return e ? e.textContent : null; };
    return { shown: shown, notice: text('notice'), announcer: text('announcer'),
             result: text('result-title'), url: location.href };";
