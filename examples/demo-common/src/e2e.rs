//! End-to-end checks both demo binaries pass: each starts the binary on a free port and
//! drives it over real HTTP with a cookie-jar client.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Client, StatusCode, Url, redirect};
use serde_json::Value;

/// A demo process, killed on drop. Its stderr (the log) is collected in `log`.
#[derive(Debug)]
pub struct Demo {
    child: Child,
    pub base: String,
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Collects `reader`'s lines into `into` on a thread of its own.
fn collect_lines(reader: impl std::io::Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            into.lock().expect("log lock").push(line);
        }
    });
}

impl Demo {
    /// Starts `binary` on a free port (`--port`), with `REDIS_URL` when given, and waits
    /// for `/healthz`.
    pub async fn start(binary: &str, redis_url: Option<&str>) -> Demo {
        Demo::start_with(binary, redis_url, &[], "warn").await
    }

    /// [`Demo::start`] with more arguments and a `RUST_LOG` filter.
    pub async fn start_with(
        binary: &str,
        redis_url: Option<&str>,
        args: &[&str],
        rust_log: &str,
    ) -> Demo {
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .args(["--port", &port.to_string()])
            .args(args)
            .env_remove("REDIS_URL")
            .env_remove("SESSION_KEY")
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = redis_url {
            command.env("REDIS_URL", url);
        }
        let mut child = command.spawn().expect("start the demo binary");
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            collect_lines(stderr, Arc::clone(&log));
        }
        let demo = Demo {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            log,
        };
        let client = Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", demo.base)).send().await
                && r.status().is_success()
            {
                return demo;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{binary} did not answer /healthz within 30 s; its log: {:?}",
                demo.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// Waits (up to `limit`) for a log line containing every one of `needles`.
    pub async fn wait_for_log(&self, needles: &[&str], limit: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self
                .log()
                .into_iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line;
            }
            assert!(
                started.elapsed() < limit,
                "no log line with {needles:?} within {limit:?}: {:#?}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A browser: a cookie jar, redirects followed.
pub fn browser() -> (Client, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    let client = Client::builder()
        .cookie_provider(Arc::clone(&jar))
        .redirect(redirect::Policy::limited(5))
        .build()
        .expect("client");
    (client, jar)
}

async fn json(client: &Client, url: String) -> Value {
    let response = client.get(url).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

fn session_cookie(jar: &Jar, base: &str) -> Option<String> {
    let url = Url::parse(base).expect("url");
    let header = jar.cookies(&url)?;
    let text = header.to_str().ok()?.to_owned();
    text.split("; ")
        .find(|c| c.starts_with("kv-demo-session="))
        .map(str::to_owned)
}

/// `/`, `/healthz`, the cache, the session flow and the rate limit of one demo.
pub async fn check_demo(binary: &str) {
    let demo = Demo::start(binary, None).await;
    let (client, jar) = browser();

    // The page and the health check.
    let page = client.get(demo.url("/")).send().await.expect("send");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let page = page.text().await.expect("text");
    for link in [
        "/slow",
        "/me",
        "/api/limited",
        "/healthz",
        "action=\"/login\"",
    ] {
        assert!(page.contains(link), "the page links {link}");
    }
    let health = client.get(demo.url("/healthz")).send().await.expect("send");
    assert_eq!(health.status(), StatusCode::OK);

    // The cache: a miss takes the handler's 500 ms, a hit is instant, with X-Cache and Age.
    let started = Instant::now();
    let first = client.get(demo.url("/slow")).send().await.expect("send");
    assert!(started.elapsed() >= Duration::from_millis(450));
    assert_eq!(first.headers()["x-cache"], "MISS");
    // kv caches it (s-maxage), a browser must ask each time (max-age=0).
    assert_eq!(
        first.headers()["cache-control"],
        "public, max-age=0, s-maxage=10"
    );
    let first: Value = first.json().await.expect("json");
    let started = Instant::now();
    let second = client.get(demo.url("/slow")).send().await.expect("send");
    let took = started.elapsed();
    // Far below the handler's 500 ms (not 50 ms: the CI machine is shared and loaded).
    assert!(took < Duration::from_millis(250), "a hit took {took:?}");
    assert_eq!(second.headers()["x-cache"], "HIT");
    assert!(second.headers().get("age").is_some());
    let second: Value = second.json().await.expect("json");
    assert_eq!(first, second, "a hit is the stored answer");
    assert!(
        first["generated_at"]
            .as_str()
            .is_some_and(|t| t.len() == 24 && t.ends_with('Z'))
    );
    // Concurrent first calls of one key run the handler once; a query is its own entry.
    let calls = (0..5).map(|_| client.get(demo.url("/slow?fresh=1")).send());
    let mut runs = Vec::new();
    for response in futures_join_all(calls).await {
        let v: Value = response.expect("send").json().await.expect("json");
        runs.push(v["runs"].as_u64().expect("runs"));
    }
    assert!(runs.windows(2).all(|w| w[0] == w[1]), "{runs:?}");
    assert_eq!(runs[0], first["runs"].as_u64().expect("runs") + 1);

    // The session: anonymous visits count, login keeps the data and cycles the id,
    // logout ends the session.
    let me = json(&client, demo.url("/me")).await;
    assert_eq!(me, serde_json::json!({"user": null, "visits": 1}));
    let anonymous = session_cookie(&jar, &demo.base).expect("a session cookie");
    let login = client
        .post(demo.url("/login"))
        .form(&[("user", "alice")])
        .send()
        .await
        .expect("send");
    assert_eq!(login.url().path(), "/me", "303 to /me");
    let me: Value = login.json().await.expect("json");
    assert_eq!(me, serde_json::json!({"user": "alice", "visits": 2}));
    let logged_in = session_cookie(&jar, &demo.base).expect("a session cookie");
    assert_ne!(anonymous, logged_in, "login cycles the session id");
    let logout = client.post(demo.url("/logout")).send().await.expect("send");
    assert_eq!(logout.url().path(), "/", "303 to /");
    let me = json(&client, demo.url("/me")).await;
    assert_eq!(me, serde_json::json!({"user": null, "visits": 1}));

    // The rate limit: 5 per 10 s per client, the 6th is refused with the headers.
    wait_for_fresh_window().await;
    let fresh = Client::new();
    for i in 1..=5 {
        let r = fresh
            .get(demo.url("/api/limited"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::OK, "call {i}");
        assert!(r.headers().get("ratelimit").is_some());
    }
    let sixth = fresh
        .get(demo.url("/api/limited"))
        .send()
        .await
        .expect("send");
    assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(sixth.headers().get("retry-after").is_some());
    assert!(sixth.headers().get("ratelimit-policy").is_some());

    // The metrics of what happened above, in the Prometheus text format.
    let text = metrics(&client, &demo).await;
    assert!(
        sample(&text, "kv_cache_requests_total{outcome=\"hit\"}") >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "kv_cache_requests_total{outcome=\"miss\"}") >= 2.0,
        "{text}"
    );
    assert!(
        sample(&text, "kv_cache_requests_total{outcome=\"coalesced\"}") >= 1.0,
        "{text}"
    );
}

/// `GET /metrics`: a 200 in the Prometheus text format.
async fn metrics(client: &Client, demo: &Demo) -> String {
    let r = client.get(demo.url("/metrics")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain"),
        "the Prometheus text format"
    );
    r.text().await.expect("text")
}

/// The value of the sample `series` (`name{labels}` as rendered), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(series))
        .filter_map(|rest| rest.trim().parse::<f64>().ok())
        .sum()
}

/// Two replicas of `binary` on one Redis share sessions and the rate limit.
pub async fn check_replicas(binary: &str, redis_url: &str) {
    let a = Demo::start(binary, Some(redis_url)).await;
    let b = Demo::start(binary, Some(redis_url)).await;
    let (client, jar) = browser();

    // A session created on A is read on B (the cookie key was shared through Redis).
    let login = client
        .post(a.url("/login"))
        .form(&[("user", "bob")])
        .send()
        .await
        .expect("send");
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = session_cookie(&jar, &a.base).expect("a session cookie");
    let on_b = client
        .get(b.url("/me"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("send");
    let me: Value = on_b.json().await.expect("json");
    assert_eq!(me["user"], "bob");

    // 5 requests spread over both replicas, the 6th refused on either.
    wait_for_fresh_window().await;
    let fresh = Client::new();
    for (i, demo) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        let r = fresh
            .get(demo.url("/api/limited"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::OK, "call {}", i + 1);
    }
    for demo in [&a, &b] {
        let r = fresh
            .get(demo.url("/api/limited"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    // On Redis, every store call is timed, under its store method.
    for demo in [&a, &b] {
        let text = metrics(&client, demo).await;
        assert!(
            text.lines()
                .any(|l| l.starts_with("kv_store_operation_duration_seconds")
                    && l.contains("backend=\"redis\"")
                    && l.contains("operation=\"incr_by\"")),
            "{text}"
        );
    }
}

/// Awaits every future, in order (a tiny `join_all`, to keep this crate's dependencies
/// small).
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

/// The rate limits' fixed windows are 10 s long and aligned to the Unix epoch: when less
/// than 3 s are left in the current one, waits for the next, so that a test's burst of
/// requests falls inside one window (at most 3 s, 0.45 s on average).
pub async fn wait_for_fresh_window() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let into = now.as_millis() % 10_000;
    if into > 7_000 {
        let rest = u64::try_from(10_000 - into).unwrap_or(0) + 50;
        tokio::time::sleep(Duration::from_millis(rest)).await;
    }
}
