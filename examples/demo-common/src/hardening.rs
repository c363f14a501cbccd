//! The attacks issue 21 found against the demos, each as a check both binaries pass
//! (called from `examples/*/tests/hardening.rs`).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::cookie::Jar;
use reqwest::{Client, Method, StatusCode, redirect};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::e2e::{Demo, browser, wait_for_fresh_window};

/// What Chromium sends when it navigates.
const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

fn no_redirects() -> (Client, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    let client = Client::builder()
        .cookie_provider(Arc::clone(&jar))
        .redirect(redirect::Policy::none())
        .build()
        .expect("client");
    (client, jar)
}

/// Reads until the server closes the connection (end of stream or reset), at most
/// `limit`: what was received and when the connection ended (`None`: still open).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Instant>) {
    let deadline = Instant::now() + limit;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (received, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, Some(Instant::now())),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Item 5: a connection that never finishes its request head, one that sends it a byte at
/// a time (slowloris), and an idle keep-alive connection are all closed within the
/// client timeout (`--client-timeout 1` here; 10 s by default).
pub async fn check_slow_clients(binary: &str) {
    let timeout = Duration::from_secs(1);
    let demo = Demo::start_with(binary, None, &["--client-timeout", "1"], "warn").await;
    let addr = format!("127.0.0.1:{}", demo.port);
    let bound = timeout + Duration::from_millis(1500);

    // Half a request head, then nothing.
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let sent = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: demo\r\n")
        .await
        .expect("write");
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let took = closed
        .expect("a half-sent head must not hold a connection")
        .duration_since(sent);
    assert!(
        took >= timeout - Duration::from_millis(200),
        "closed after {took:?}: too early"
    );
    assert!(took <= bound, "half a head held the connection {took:?}");

    // A byte every 100 ms: a head that never ends, however busy the client looks.
    let stream = TcpStream::connect(&addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let sent = Instant::now();
    let dribble = tokio::spawn(async move {
        let _ = writer
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: demo\r\nX-Slow: ")
            .await;
        for _ in 0..100 {
            if writer.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    let took = sent.elapsed();
    assert!(closed.is_ok(), "a dribbled head held the connection 10 s");
    assert!(
        took <= bound,
        "a dribbled head held the connection {took:?}"
    );
    dribble.abort();

    // A keep-alive connection left idle after its answer.
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: demo\r\n\r\n")
        .await
        .expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"ok") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer")
            .expect("read");
        assert!(n > 0, "closed before answering");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let answered = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let idle = closed
        .expect("an idle keep-alive connection must be closed")
        .duration_since(answered);
    assert!(
        idle <= bound,
        "an idle keep-alive connection was kept {idle:?}"
    );

    // A client that keeps talking is not cut off: three requests on one connection,
    // 400 ms apart (each well inside the timeout), all answered.
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    for i in 0..3 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: demo\r\n\r\n")
            .await
            .expect("write");
        let mut got = Vec::new();
        while !got.ends_with(b"ok") {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .expect("an answer")
                .expect("read");
            assert!(n > 0, "request {i}: closed");
            got.extend_from_slice(&buf[..n]);
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

async fn login(client: &Client, demo: &Demo, user: &str) -> StatusCode {
    client
        .post(demo.url("/login"))
        .form(&[("user", user)])
        .send()
        .await
        .expect("send")
        .status()
}

/// The header the rate limiter keys users on is the server's to set: a client that sends
/// `x-kv-demo-user` itself (naming a logged-in victim, or a new name per request to get a
/// fresh quota each time) is counted under its address, and the victim keeps its quota.
pub async fn check_forged_user_header(binary: &str) {
    let demo = Demo::start_with(binary, None, &[], "warn").await;
    let (alice, _) = no_redirects();
    assert_eq!(login(&alice, &demo, "alice").await, StatusCode::SEE_OTHER);
    wait_for_fresh_window().await;
    let anonymous = Client::new();
    let forged = |name: &str| {
        anonymous
            .get(demo.url("/api/limited"))
            .header(crate::USER_HEADER, name)
            .send()
    };
    // Five in the victim's name: the attacker's own five (keyed by its address).
    for call in 0..crate::PER_USER_LIMIT {
        let r = forged("alice").await.expect("send");
        assert_eq!(r.status(), StatusCode::OK, "forged call {call}");
    }
    // A new name does not buy a new quota.
    let r = forged("mallory-6").await.expect("send");
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a forged user name reset the quota"
    );
    // Alice's quota was not touched by the calls made in her name.
    for call in 0..crate::PER_USER_LIMIT {
        let r = alice
            .get(demo.url("/api/limited"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::OK, "alice's call {call}");
    }
}

/// Item 6: five accounts logged in from one address get 20 requests through in a window
/// (the per-address ceiling), not 25; the refusal names `per-address`; a user's own 5
/// still apply; and `/login` is limited per address (`--login-limit 6` here).
pub async fn check_address_ceiling(binary: &str) {
    let demo = Demo::start_with(binary, None, &["--login-limit", "6"], "warn").await;
    let mut clients = Vec::new();
    for i in 0..5 {
        let (client, _) = no_redirects();
        assert_eq!(
            login(&client, &demo, &format!("user{i}")).await,
            StatusCode::SEE_OTHER
        );
        clients.push(client);
    }
    wait_for_fresh_window().await;
    let (mut allowed, mut refused_by_address) = (0, 0);
    for (i, client) in clients.iter().enumerate() {
        for call in 0..5 {
            let r = client
                .get(demo.url("/api/limited"))
                .send()
                .await
                .expect("send");
            match r.status() {
                StatusCode::OK => allowed += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    let body: Value = r.json().await.expect("json");
                    assert!(body["retry_after"].as_u64().is_some(), "{body}");
                    refused_by_address += 1;
                    assert_eq!(
                        i, 4,
                        "user{i} call {call}: only the 5th user meets the ceiling"
                    );
                }
                other => panic!("user{i} call {call}: {other}"),
            }
        }
    }
    assert_eq!(
        (allowed, refused_by_address),
        (20, 5),
        "20 per 10 s per address"
    );
    // The ceiling is what refused: the headers name both policies.
    let r = clients[0]
        .get(demo.url("/api/limited"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let policy = r.headers()["ratelimit-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(policy.contains("\"per-client\";q=5;w=10"), "{policy}");
    assert!(policy.contains("\"per-address\";q=20;w=10"), "{policy}");

    // /login: the 6 attempts of this minute are spent (5 above, 1 here), the 7th is a 429.
    let (client, _) = no_redirects();
    assert_eq!(
        login(&client, &demo, "mallory").await,
        StatusCode::SEE_OTHER
    );
    let r = client
        .post(demo.url("/login"))
        .form(&[("user", "mallory2")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_some());
    let policy = r.headers()["ratelimit-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        policy.contains("\"login-per-address\";q=6;w=60"),
        "{policy}"
    );
}

/// Item 7: a cross-site form post to `/login` or `/logout` is refused with `403` before
/// the handler (no login happens, no logout happens); same-origin and non-browser posts
/// work.
pub async fn check_cross_origin(binary: &str) {
    let demo = Demo::start(binary, None).await;
    let (client, _) = no_redirects();
    let me = |client: Client| {
        let url = demo.url("/me");
        async move {
            let v: Value = client
                .get(url)
                .send()
                .await
                .expect("send")
                .json()
                .await
                .expect("json");
            v["user"].as_str().map(str::to_owned)
        }
    };
    let evil = "http://evil.example";
    for headers in [
        vec![("origin", evil)],
        vec![("origin", evil), ("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("origin", "null")],
        vec![
            ("sec-fetch-site", "same-site"),
            ("origin", "http://sub.127.0.0.1"),
        ],
    ] {
        let mut post = client
            .post(demo.url("/login"))
            .form(&[("user", "victim-of-csrf")]);
        for (name, value) in &headers {
            post = post.header(*name, *value);
        }
        let r = post.send().await.expect("send");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert_eq!(
            me(client.clone()).await,
            None,
            "{headers:?}: no login happened"
        );
    }
    // Same origin, by Sec-Fetch-Site or by Origin alone; and a client sending neither.
    for (i, headers) in [
        vec![
            ("sec-fetch-site", "same-origin"),
            ("origin", demo.base.as_str()),
        ],
        vec![("origin", demo.base.as_str())],
        vec![],
    ]
    .into_iter()
    .enumerate()
    {
        let user = format!("alice{i}");
        let mut post = client
            .post(demo.url("/login"))
            .form(&[("user", user.as_str())]);
        for (name, value) in &headers {
            post = post.header(*name, *value);
        }
        assert_eq!(
            post.send().await.expect("send").status(),
            StatusCode::SEE_OTHER,
            "{headers:?}"
        );
        assert_eq!(
            me(client.clone()).await.as_deref(),
            Some(user.as_str()),
            "{headers:?}"
        );
    }
    // A cross-site logout does not log the user out.
    let r = client
        .post(demo.url("/logout"))
        .header("origin", evil)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(me(client.clone()).await.as_deref(), Some("alice2"));
    let r = client
        .post(demo.url("/logout"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(me(client).await, None);
}

/// Item 8: `HEAD` wherever `GET` is (headers, no body); the request limits (header count
/// and size, body size) answered `431` / `413`; `/me` is `private, no-store`; `/` forbids
/// framing.
pub async fn check_head_limits_and_headers(binary: &str) {
    let demo = Demo::start(binary, None).await;
    let (client, _) = browser();
    for path in ["/", "/slow", "/me", "/api/limited", "/healthz", "/metrics"] {
        let get = client.get(demo.url(path)).send().await.expect("send");
        let get_type = get.headers().get("content-type").cloned();
        let r = client.head(demo.url(path)).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::OK, "HEAD {path}");
        assert_eq!(
            r.headers().get("content-type"),
            get_type.as_ref(),
            "HEAD {path}"
        );
        assert!(
            r.bytes().await.expect("body").is_empty(),
            "HEAD {path} has no body"
        );
    }
    let me = client.get(demo.url("/me")).send().await.expect("send");
    assert_eq!(me.headers()["cache-control"], "private, no-store");
    let page = client.get(demo.url("/")).send().await.expect("send");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(
        page.headers()["content-security-policy"],
        "frame-ancestors 'none'"
    );

    // Header count: 64 pass, 65 are refused; 16 KiB of headers pass, 17 KiB are refused.
    let plain = Client::new();
    let with_headers = |n: usize, len: usize| {
        let mut req = plain.get(demo.url("/healthz"));
        for i in 0..n {
            req = req.header(format!("x-pad-{i}"), "a".repeat(len));
        }
        req
    };
    // reqwest adds accept and host: 60 of ours make 62 (the exact bound: a unit test).
    let r = with_headers(60, 8).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let r = with_headers(70, 8).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let v: Value = r.json().await.expect("a JSON body");
    assert_eq!(v["status"], 431);
    let r = with_headers(1, 15 * 1024).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let r = with_headers(1, 17 * 1024).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    // Body size: a 4 KiB login form is read, a longer one refused (declared or chunked).
    let (client, _) = no_redirects();
    let form = |len: usize| format!("user=bob&pad={}", "a".repeat(len - 13));
    let r = client
        .post(demo.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(4096))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = client
        .post(demo.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(4097))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The same past the limit in chunks, no length declared (raw HTTP).
    let mut stream = TcpStream::connect(("127.0.0.1", demo.port))
        .await
        .expect("connect");
    let chunk = format!("user=bob&pad={}", "a".repeat(8192));
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: demo\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    // The server may answer and close before reading it all: a failed write is fine.
    let _ = stream.write_all(request.as_bytes()).await;
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "a chunked body past the limit: {answer}"
    );
}

/// Item 3: `404`, `405` and `429` have bodies a person can read: HTML with a link back
/// for a browser (by `Accept`), JSON for an API client; the `429` says when to retry,
/// the number of its `Retry-After`.
pub async fn check_friendly_errors(binary: &str) {
    let demo = Demo::start(binary, None).await;
    let client = Client::new();
    for (method, path, status) in [
        (Method::GET, "/no-such-page", StatusCode::NOT_FOUND),
        (Method::DELETE, "/me", StatusCode::METHOD_NOT_ALLOWED),
        (Method::GET, "/login", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let r = client
            .request(method.clone(), demo.url(path))
            .header("accept", BROWSER_ACCEPT)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), status, "{method} {path}");
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(r.headers().get("allow").is_some(), "{method} {path}: Allow");
        }
        assert!(
            r.headers()["content-type"]
                .to_str()
                .expect("ascii")
                .starts_with("text/html")
        );
        let page = r.text().await.expect("text");
        assert!(page.contains(&format!("<h1>{}", status.as_u16())), "{page}");
        assert!(page.contains("href=\"/\""), "a link back: {page}");

        let r = client
            .request(method.clone(), demo.url(path))
            .header("accept", "application/json")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), status);
        let v: Value = r.json().await.expect("a JSON body");
        assert_eq!(v["status"], status.as_u16(), "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }

    // The 429: its text names the seconds of Retry-After.
    wait_for_fresh_window().await;
    for _ in 0..5 {
        let r = client
            .get(demo.url("/api/limited"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = client
        .get(demo.url("/api/limited"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(
        r.headers().get("ratelimit").is_some(),
        "the rate-limit headers are kept"
    );
    let page = r.text().await.expect("text");
    let said = if retry == 1 {
        "try again in 1 second".to_owned()
    } else {
        format!("try again in {retry} seconds")
    };
    assert!(page.contains(&said), "{page}");
    assert!(page.contains("href=\"/\""), "{page}");
    let r = client
        .get(demo.url("/api/limited"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["retry_after"], retry);
}

/// Item 4: `--help`; startup errors that name the port or `REDIS_URL` (with no password);
/// the URL announced once the port is bound; one log line per request with the method,
/// path, status, time, cache outcome and rate-limit verdict, and no colour codes when
/// stderr is not a terminal.
pub async fn check_startup_and_logs(binary: &str) {
    // --help
    let out = Command::new(binary)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["--port", "--client-timeout", "REDIS_URL", "SESSION_KEY"] {
        assert!(help.contains(needle), "--help names {needle}: {help}");
    }
    let out = Command::new(binary)
        .args(["--port", "http"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port \"http\""));

    // A port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = run_to_exit(
        Command::new(binary)
            .args(["--port", &port.to_string()])
            .env_remove("REDIS_URL"),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    drop(taken);

    // A Redis that is not there (port 1 refuses), with a password that must not be shown.
    let out = run_to_exit(
        Command::new(binary)
            .args(["--port", "0"])
            .env("REDIS_URL", "redis://:hunter2@127.0.0.1:1"),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("REDIS_URL=redis://:***@127.0.0.1:1"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");

    // The announcement comes once the port accepts connections: connecting the moment
    // the line appears succeeds (actix used to announce before binding).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut child = Command::new(binary)
        .args(["--port", &port.to_string()])
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let url = format!("http://127.0.0.1:{port}");
    let connected = std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains(&url) {
                return Some(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
            }
        }
        None
    })
    .join()
    .expect("reader");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(connected, Some(true), "announced, and connectable at once");

    // The access log.
    let demo = Demo::start_with(binary, None, &[], "info").await;
    let client = Client::new();
    client.get(demo.url("/slow")).send().await.expect("send");
    client.get(demo.url("/slow")).send().await.expect("send");
    wait_for_fresh_window().await;
    for _ in 0..6 {
        client
            .get(demo.url("/api/limited"))
            .send()
            .await
            .expect("send");
    }
    let wait = Duration::from_secs(5);
    let miss = demo
        .wait_for_log(
            &[
                "method=GET",
                "path=/slow",
                "status=200",
                "cache=MISS",
                "ratelimit=-",
            ],
            wait,
        )
        .await;
    let ms: f64 = miss
        .split("ms=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("ms=");
    assert!(ms >= 450.0, "the miss took the handler's 500 ms: {miss}");
    demo.wait_for_log(&["path=/slow", "cache=HIT"], wait).await;
    demo.wait_for_log(
        &["path=/api/limited", "status=200", "ratelimit=allowed"],
        wait,
    )
    .await;
    demo.wait_for_log(
        &["path=/api/limited", "status=429", "ratelimit=denied"],
        wait,
    )
    .await;
    let log = demo.log();
    let per_request = log.iter().filter(|l| l.contains("path=/slow")).count();
    assert_eq!(per_request, 2, "one line per request: {log:#?}");
    assert!(
        log.iter().all(|l| !l.contains('\x1b')),
        "no colour codes: {log:#?}"
    );
}

/// Runs `command` to its exit (at most 20 s), stdout and stderr captured.
fn run_to_exit(command: &mut Command) -> std::process::Output {
    let mut child = command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("still running after 20 s: {:?}", child.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Item 9: a generated session key survives Redis losing its data. Replica A shares its
/// key; Redis restarts empty (`restart`); A notices within a second and shares it again;
/// replica B, started afterwards, adopts it, so each reads the other's cookies.
pub async fn check_key_survives_redis_restart(
    binary: &str,
    redis_url: &str,
    restart: impl FnOnce(),
) {
    let a = Demo::start_with(binary, Some(redis_url), &[], "info").await;
    restart();
    a.wait_for_log(&["was missing from the store"], Duration::from_secs(15))
        .await;
    let b = Demo::start_with(binary, Some(redis_url), &[], "info").await;
    b.wait_for_log(
        &["using the session key another replica shared"],
        Duration::from_secs(5),
    )
    .await;
    for (from, to, user) in [(&a, &b, "dave"), (&b, &a, "erin")] {
        let (client, _) = no_redirects();
        assert_eq!(login(&client, from, user).await, StatusCode::SEE_OTHER);
        let v: Value = client
            .get(to.url("/me"))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(
            v["user"], user,
            "a cookie from one replica is read on the other"
        );
    }
    assert!(
        a.log()
            .iter()
            .chain(b.log().iter())
            .all(|l| !l.contains("different session key")),
        "the replicas agree"
    );
}
