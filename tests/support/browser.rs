//! A real browser for the console's tests: Debian's headless Chromium driven over
//! WebDriver (the W3C protocol, spoken here over HTTP with reqwest) by its own
//! `chromedriver`. Screenshots go under the target directory's `console-screenshots/`.
//!
//! One browser runs at a time in the test binary ([`Browser::start`] holds a lock until it
//! is dropped): two cores do not fit more.

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A headless Chromium session; the driver stops when this is dropped.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: reqwest::Client,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// An element of the page.
#[derive(Clone, Debug)]
pub struct Element(String);

fn executable(name: &str, fallbacks: &[&str]) -> Option<String> {
    std::iter::once(name)
        .chain(fallbacks.iter().copied())
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_string)
}

/// Whether this machine has Chromium and its driver (the test command installs them).
pub fn available() -> bool {
    executable("/usr/bin/chromedriver", &[]).is_some()
        && executable("/usr/bin/chromium", &[]).is_some()
}

/// Where screenshots go.
pub fn screenshot_dir() -> std::path::PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_string());
    std::path::Path::new(&target).join("console-screenshots")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window of 1440×900.
    pub async fn start() -> Self {
        let turn = ONE_AT_A_TIME.lock().await;
        let port = crate::free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (apt-get install chromium chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{base}/status")).send().await
                && r.json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true)
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(format!("rapport-chromium-{port}"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1440,900", "--force-device-scale-factor=1", "--lang=en-US",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let created: Value = client
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new WebDriver session")
            .json()
            .await
            .expect("session JSON");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Self {
            driver,
            base,
            session,
            client,
            _turn: turn,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.client.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        v["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Opens a URL.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching a CSS selector now, if any.
    pub async fn find_now(&self, css: &str) -> Option<Element> {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        v[ELEMENT].as_str().map(|id| Element(id.to_string()))
    }

    /// Every element matching a CSS selector now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits up to 15 s for an element matching a CSS selector.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(e) = self.find_now(css).await {
                return e;
            }
            if Instant::now() > deadline {
                let body = self.text_of("body").await;
                panic!(
                    "no element {css} on {}; the page says: {body}",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to 15 s until the page's text contains `text`.
    pub async fn wait_for_text(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let body = self.text_of("body").await;
            if body.contains(text) {
                return;
            }
            if Instant::now() > deadline {
                panic!("the page never said {text:?}; it says: {body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The visible text of the first element matching `css` (empty when none).
    pub async fn text_of(&self, css: &str) -> String {
        match self.find_now(css).await {
            Some(e) => self.text(&e).await,
            None => String::new(),
        }
    }

    /// An element's visible text.
    pub async fn text(&self, e: &Element) -> String {
        self.get(&format!("/element/{}/text", e.0))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Clicks an element.
    pub async fn click(&self, e: &Element) {
        self.post(&format!("/element/{}/click", e.0), json!({}))
            .await;
    }

    /// Clicks the element matching `css`, waiting for it.
    pub async fn click_on(&self, css: &str) {
        let e = self.find(css).await;
        self.click(&e).await;
    }

    /// Replaces the value of the input matching `css` with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{}/clear", e.0), json!({}))
            .await;
        self.post(&format!("/element/{}/value", e.0), json!({"text": text}))
            .await;
    }

    /// Chooses the option with `value` in the select matching `css`.
    pub async fn choose(&self, css: &str, value: &str) {
        self.click_on(&format!("{css} option[value=\"{value}\"]"))
            .await;
    }

    /// Puts the file at `path` in the file input matching `css`.
    pub async fn attach(&self, css: &str, path: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{}/value", e.0), json!({"text": path}))
            .await;
    }

    /// Runs a script in the page (its body, with `arguments`); returns its result. An
    /// async body is awaited.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.post(
            "/execute/async",
            json!({"script": format!("const done = arguments[arguments.length - 1]; (async () => {{ {script} }})().then(done, (e) => done({{error: String(e)}}));"), "args": args}),
        )
        .await
    }

    /// Drags `from` with the mouse and drops it on `to`, in small steps.
    pub async fn drag(&self, from: &Element, to: &Element) {
        let origin = |e: &Element| json!({ELEMENT: e.0});
        self.post(
            "/actions",
            json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [
                {"type": "pointerMove", "origin": origin(from), "x": 0, "y": 0, "duration": 50},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerMove", "origin": "pointer", "x": 12, "y": 12, "duration": 100},
                {"type": "pointerMove", "origin": origin(to), "x": 0, "y": 10, "duration": 400},
                {"type": "pointerMove", "origin": origin(to), "x": 0, "y": 20, "duration": 100},
                {"type": "pointerUp", "button": 0}
            ]}]}),
        )
        .await;
        self.call(reqwest::Method::DELETE, "/actions", None).await;
    }

    /// A cookie's value (HttpOnly ones included: the driver sees what scripts cannot).
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let v = self.get(&format!("/cookie/{name}")).await;
        v["value"].as_str().map(str::to_string)
    }

    /// Saves a PNG of the window as `<name>.png` under [`screenshot_dir`]; returns its path.
    pub async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        use base64::Engine;
        // Let transitions and late requests settle.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let v = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("screenshot"))
            .expect("screenshot base64");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Best effort: the driver's death ends the browser too.
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        reqwest::Client::new().delete(url).send(),
                    )
                    .await;
                });
            }
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
