//! A small W3C WebDriver client over the workspace's `reqwest` (no extra crate to build), for
//! the console's browser tests: it starts `chromedriver` on a free port with headless Chromium
//! and a fresh profile, and offers the few commands the tests use.
//!
//! [`Browser::start`] answers `None` (the caller skips) only when `chromedriver` is not
//! installed and `PROSPECT_EVENTS_REQUIRE_BROWSER` is unset; CI sets it, so a missing browser
//! fails CI instead of skipping.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The flags headless Chromium needs here (no sandbox in containers, nothing phoning home).
const CHROMIUM_ARGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// An element of the page (a WebDriver element reference).
#[derive(Clone, Debug)]
pub struct Element(String);

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

impl Browser {
    /// A headless Chromium session at `width`×`height`, or `None` when the test should skip.
    pub async fn start(width: u32, height: u32) -> Option<Browser> {
        let required = std::env::var_os("PROSPECT_EVENTS_REQUIRE_BROWSER").is_some();
        let Some(driver_path) = find_on_path("chromedriver") else {
            assert!(
                !required,
                "PROSPECT_EVENTS_REQUIRE_BROWSER is set but chromedriver is not installed \
                 (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "skipping: chromedriver not installed (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _profile: profile,
        };
        b.wait_ready().await;
        b.new_session(width, height).await;
        Some(b)
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = self.http.get(format!("{}/status", self.base)).send().await;
            if let Ok(r) = ready {
                let v: Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn new_session(&mut self, width: u32, height: u32) {
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            self._profile.path().display()
        ));
        args.push(format!("--window-size={width},{height}"));
        let mut options = json!({ "args": args });
        if let Some(bin) = find_on_path("chromium") {
            options["binary"] = json!(bin);
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options,
            "unhandledPromptBehavior": "accept"}}});
        let v = self.raw("POST", "/session", Some(caps)).await;
        let id = v["sessionId"].as_str().expect("a session id").to_string();
        self.base = format!("{}/session/{id}", self.base);
    }

    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{}", self.base, path);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or(json!({}))),
        };
        let resp = req.send().await.expect("webdriver request");
        let status = resp.status();
        let v: Value = resp.json().await.expect("webdriver JSON");
        assert!(status.is_success(), "webdriver {method} {path}: {v}");
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.raw("POST", "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn set_size(&self, width: u32, height: u32) {
        self.raw(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Elements matching a CSS selector (or an XPath when it starts with `/` or `(`).
    pub async fn all(&self, selector: &str) -> Vec<Element> {
        let using = if selector.starts_with('/') || selector.starts_with('(') {
            "xpath"
        } else {
            "css selector"
        };
        let v = self
            .raw(
                "POST",
                "/elements",
                Some(json!({"using": using, "value": selector})),
            )
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| Element(e[ELEMENT].as_str().unwrap().to_string()))
            .collect()
    }

    /// The first element matching `selector`, waiting up to 10 s for it to appear.
    pub async fn find(&self, selector: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.all(selector).await.into_iter().next() {
                return e;
            }
            if Instant::now() > deadline {
                let page = self.text_of_page().await;
                panic!("no element {selector} on the page:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The element that has the keyboard focus.
    pub async fn active(&self) -> Element {
        let v = self.raw("GET", "/element/active", None).await;
        Element(v[ELEMENT].as_str().expect("a focused element").to_string())
    }

    pub async fn click(&self, e: &Element) {
        self.raw("POST", &format!("/element/{}/click", e.0), None)
            .await;
    }

    /// Clears a text field and types `text` into it.
    pub async fn type_into(&self, e: &Element, text: &str) {
        self.raw("POST", &format!("/element/{}/clear", e.0), None)
            .await;
        self.raw(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Presses keys (WebDriver key codes, e.g. "\u{E004}" for Tab) in the focused element.
    pub async fn keys(&self, e: &Element, keys: &str) {
        self.raw(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": keys })),
        )
        .await;
    }

    pub async fn text(&self, e: &Element) -> String {
        self.raw("GET", &format!("/element/{}/text", e.0), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn property(&self, e: &Element, name: &str) -> Value {
        self.raw("GET", &format!("/element/{}/property/{name}", e.0), None)
            .await
    }

    /// Runs `script` in the page with `args` (elements as `{"element-…": id}`).
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.raw(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    pub fn arg(e: &Element) -> Value {
        json!({ ELEMENT: e.0 })
    }

    /// Sets a `<select>`'s value as a user choosing it would (fires `change`).
    pub async fn select(&self, e: &Element, value: &str) {
        self.execute(
            "arguments[0].value = arguments[1]; \
             arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
            vec![Self::arg(e), json!(value)],
        )
        .await;
    }

    /// The visible text of the whole page.
    pub async fn text_of_page(&self) -> String {
        self.execute("return document.body.innerText;", vec![])
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits (up to `timeout`) until the page's visible text contains `needle`.
    pub async fn wait_for_text(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let page = self.text_of_page().await;
            if page.contains(needle) {
                return page;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {needle:?}:\n{page}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG screenshot of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let v = self.raw("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Saves a screenshot of the whole page (the window grown to the page's height first).
    pub async fn full_screenshot(&self, path: &Path, width: u32) {
        let h = self
            .execute(
                "return Math.ceil(document.documentElement.scrollHeight);",
                vec![],
            )
            .await
            .as_u64()
            .unwrap_or(800) as u32;
        self.set_size(width, h.clamp(400, 4000) + 120).await;
        self.screenshot(path).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (closing Chromium) best-effort, then stops the driver we started.
        let url = self.base.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let _ = reqwest::Client::new().delete(url).send().await;
                });
            }
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
