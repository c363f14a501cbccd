//! The demos in a real browser: headless Chromium driven through chromedriver's W3C
//! WebDriver HTTP API with the `reqwest` client the other checks use (no browser
//! automation dependency). Skipped when Chromium or chromedriver is missing, unless
//! `KV_REQUIRE_BROWSER=1` (set by `.ci/run`) makes that a failure. Screenshots go to
//! `target/e2e-screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};

use crate::e2e::{Demo, wait_for_fresh_window};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session, ended (and chromedriver stopped) on drop.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    http: Client,
    session: String,
    profile: PathBuf,
    shots: PathBuf,
}

fn program(var: &str, default: &str) -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_owned()));
    path.is_file().then_some(path)
}

/// `target/`: the test binary runs from `target/<profile>/deps/`.
fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"))
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Best effort: end the session so that Chromium exits, then chromedriver.
        let url = format!("{}/session/{}", self.driver_url(), self.session);
        let http = self.http.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(5), http.delete(url).send()).await
                });
            }
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    fn driver_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.driver_port())
    }

    fn driver_port(&self) -> u16 {
        self.profile
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit('-').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Starts chromedriver and a headless Chromium session; `None` (after saying why)
    /// when either is missing and `KV_REQUIRE_BROWSER` is not `1`.
    pub async fn start() -> Option<Browser> {
        let required = std::env::var("KV_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        let (Some(chromium), Some(chromedriver)) = (
            program("CHROMIUM", "/usr/bin/chromium"),
            program("CHROMEDRIVER", "/usr/bin/chromedriver"),
        ) else {
            assert!(
                !required,
                "KV_REQUIRE_BROWSER=1 but /usr/bin/chromium or /usr/bin/chromedriver is missing \
                 (apt-get install chromium chromium-driver, or set CHROMIUM / CHROMEDRIVER)"
            );
            eprintln!("skipped: no chromium / chromedriver (set KV_REQUIRE_BROWSER=1 to fail)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let profile =
            std::env::temp_dir().join(format!("kv-demo-chromium-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("a profile directory");
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1100,1400",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        }}});
        let mut browser = Browser {
            driver,
            http,
            session: String::new(),
            profile,
            shots: target_dir().join("e2e-screenshots"),
        };
        let created = browser
            .call(reqwest::Method::POST, "/session", Some(capabilities))
            .await
            .expect("a Chromium session");
        browser.session = created["sessionId"].as_str().expect("sessionId").to_owned();
        std::fs::create_dir_all(&browser.shots).expect("the screenshot directory");
        Some(browser)
    }

    /// One WebDriver command: its `value`, or the error it answered.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let url = if self.session.is_empty() {
            format!("{}{path}", self.driver_url())
        } else {
            format!("{}/session/{}{path}", self.driver_url(), self.session)
        };
        let mut req = self.http.request(method, url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.map_err(|e| e.to_string())?;
        let ok = r.status().is_success();
        let v: Value = r.json().await.map_err(|e| e.to_string())?;
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(v["value"].to_string())
        }
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .expect("navigate");
    }

    async fn element(&self, css: &str) -> Result<String, String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        v[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no element {css}: {v}"))
    }

    /// Runs `script` in the page (a function body; `return` gives the value).
    pub async fn run(&self, script: &str) -> Result<Value, String> {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    pub async fn click(&self, css: &str) {
        let id = self.element(css).await.expect(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await
        .expect("click");
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await.expect(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .expect("type");
    }

    /// The text of `css` (empty while it does not exist, during a navigation say).
    pub async fn text(&self, css: &str) -> String {
        let Ok(id) = self.element(css).await else {
            return String::new();
        };
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Waits (up to 15 s) until `css`'s text satisfies `ok`, and returns it.
    pub async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(css).await;
            if ok(&text) {
                return text;
            }
            if started.elapsed() >= Duration::from_secs(15) {
                let found = self.element(css).await;
                let page = self
                    .run("return document.documentElement.outerHTML.slice(0, 300);")
                    .await;
                panic!(
                    "{css}: waited for {what}, saw {text:?} (element: {found:?}; page: {page:?})"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes a PNG of the window to `target/e2e-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let v = self
            .call(reqwest::Method::GET, "/screenshot", None)
            .await
            .expect("screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64"))
            .expect("a PNG");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// The dashboard's table of calls, newest first: `[#, request, status, X-Cache, Age,
    /// RateLimit, Retry-After, ms, body]` per row.
    pub async fn calls(&self) -> Vec<Vec<String>> {
        let v = self
            .run("return [...document.querySelectorAll('#calls tr')].filter(r => r.cells.length >= 9).map(r => [...r.cells].map(c => c.textContent));")
            .await
            .unwrap_or(Value::Null);
        serde_json::from_value(v).unwrap_or_default()
    }

    /// Waits (up to 15 s) until the table holds at least `n` finished calls.
    pub async fn wait_calls(&self, n: usize) -> Vec<Vec<String>> {
        let started = Instant::now();
        loop {
            let rows = self.calls().await;
            if rows.len() >= n {
                return rows;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "waited for {n} calls, saw {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A person's visit, in headless Chromium: the dashboard, logging in through the form,
/// `/slow` twice (a miss, then kv's hit — the browser asked again), `/api/limited` past
/// the limit (the panel shows the `429` and `Retry-After`), the live counters, the
/// friendly `429` page and its link back, logging out. Screenshots `<name>-*.png`.
pub async fn check_in_browser(binary: &str, name: &str) {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let demo = Demo::start(binary, None).await;
    browser.goto(&demo.url("/")).await;
    browser
        .wait_text("#who", "an anonymous session", |t| {
            t.contains("Not logged in")
        })
        .await;
    browser.screenshot(&format!("{name}-1-dashboard")).await;

    // Log in through the form: the server sends the browser back to the dashboard.
    browser.type_into("#user", "alice").await;
    browser.click("#login-button").await;
    browser
        .wait_text("#who", "logged in as alice", |t| {
            t.contains("Logged in as alice")
        })
        .await;

    // /slow twice: the second answer is kv's cache (HIT, faster), so the browser asked
    // the server again instead of answering from its own cache (which would replay the
    // first answer's MISS).
    browser.click("#call-slow").await;
    let rows = browser.wait_calls(1).await;
    assert_eq!(
        (rows[0][2].as_str(), rows[0][3].as_str()),
        ("200", "MISS"),
        "{rows:?}"
    );
    browser.click("#call-slow").await;
    let rows = browser.wait_calls(2).await;
    assert_eq!(
        (rows[0][2].as_str(), rows[0][3].as_str()),
        ("200", "HIT"),
        "{rows:?}"
    );
    assert_ne!(rows[0][4], "–", "Age is shown: {rows:?}");
    let ms = |row: &Vec<String>| row[7].parse::<u64>().unwrap_or(u64::MAX);
    assert!(
        ms(&rows[0]) < ms(&rows[1]) && ms(&rows[1]) >= 450,
        "a hit is faster: {rows:?}"
    );

    // /api/limited ×3 twice: 5 pass with RateLimit, the 6th is a 429 with Retry-After.
    wait_for_fresh_window().await;
    browser.click("#call-limited").await;
    browser.wait_calls(5).await;
    browser.click("#call-limited").await;
    let rows = browser.wait_calls(8).await;
    let limited: Vec<_> = rows.iter().filter(|r| r[1] == "GET /api/limited").collect();
    assert_eq!(limited.len(), 6, "{rows:?}");
    let statuses: Vec<&str> = limited.iter().rev().map(|r| r[2].as_str()).collect();
    assert_eq!(
        statuses,
        ["200", "200", "200", "200", "200", "429"],
        "{rows:?}"
    );
    assert!(
        limited.iter().all(|r| r[5] != "–"),
        "RateLimit shown: {rows:?}"
    );
    let retry = &limited[0][6];
    assert!(
        retry.parse::<u64>().is_ok_and(|s| s >= 1),
        "Retry-After shown: {rows:?}"
    );
    assert!(limited[0][8].contains("try again in"), "{rows:?}");

    // The live counters catch up within a poll (2 s).
    browser
        .wait_text("#denied", "a 429 counted", |t| {
            t.parse::<u64>().is_ok_and(|n| n >= 1)
        })
        .await;
    browser
        .wait_text("#hit-ratio", "a hit ratio", |t| t == "50 %")
        .await;
    browser
        .wait_text("#sessions", "sessions counted", |t| {
            t.parse::<u64>().is_ok_and(|n| n >= 1)
        })
        .await;
    browser
        .screenshot(&format!("{name}-2-calls-and-counters"))
        .await;

    // Opening /api/limited itself: the friendly HTML 429 with a link back.
    // (If the 10 s window turned meanwhile, the quota is back: spend it again.)
    for _ in 0..=5 {
        browser.goto(&demo.url("/api/limited")).await;
        if browser.text("h1").await == "429 Too many requests" {
            break;
        }
    }
    browser
        .wait_text("h1", "the 429 page", |t| t == "429 Too many requests")
        .await;
    let message = browser.text("#message").await;
    assert!(message.contains("try again in"), "{message}");
    browser
        .screenshot(&format!("{name}-3-too-many-requests"))
        .await;
    browser.click("#back").await;
    browser
        .wait_text("#who", "the dashboard again", |t| {
            t.contains("Logged in as alice")
        })
        .await;

    // Log out.
    browser.click("#logout-button").await;
    browser
        .wait_text("#who", "logged out", |t| t.contains("Not logged in"))
        .await;
    browser.screenshot(&format!("{name}-4-logged-out")).await;
}
