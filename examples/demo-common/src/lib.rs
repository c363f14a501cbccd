//! What the two demo servers (`axum-demo`, `actix-demo`) share, so that they behave the
//! same: configuration, the store, the settings of the three middlewares, the dashboard
//! page, the JSON and error answers, the request limits, and (feature `e2e`) the
//! end-to-end checks both binaries pass, including the headless-Chromium one.
#![allow(missing_docs)]

#[cfg(feature = "e2e")]
pub mod browser;
#[cfg(feature = "e2e")]
pub mod e2e;
#[cfg(feature = "e2e")]
pub mod hardening;
mod page;

pub use page::INDEX_HTML;

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use kv_core::rate_limit::{KeySource, Policy, RateLimiter};
use kv_core::session::{Key, SessionManager};
use kv_core::{AnyStore, Store};

/// The internal header the demos put the logged-in user in, for the rate limiter's key.
/// Any value a client sends is removed first.
pub const USER_HEADER: &str = "x-kv-demo-user";

/// The usage `--help` prints (`{name}` is the binary).
pub fn usage(name: &str) -> String {
    format!(
        "{name}: the kv demo (response caching, sessions, rate limiting on one store)

usage: {name} [--port N] [--client-timeout SECS] [--login-limit N]

  --port N               listen on 127.0.0.1:N (default: $PORT, else 3000)
  --client-timeout SECS  a connection must send its request head within SECS, and an
                         idle keep-alive connection is closed after SECS (default 10)
  --login-limit N        POST /login attempts allowed per address per minute (default 10)
  -h, --help             this text

environment:
  REDIS_URL    redis://host:port: sessions, rate-limit counters and the cache live in
               Redis, shared by every replica (default: the embedded memory store)
  SESSION_KEY  base64 of at least 64 random bytes (`openssl rand -base64 64`) that signs
               the session cookies. Set it in production: without it the demo generates
               a key and shares it through the store, and every replica keeps re-sharing
               it if Redis loses its data, but a key that lives only in Redis and in the
               replicas' memory is gone once all of them restart, logging everyone out.
  RUST_LOG     log filter (default: info; one line per request)
"
    )
}

/// Where the demo listens and what it stores in.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    /// `REDIS_URL`, when set: every replica shares sessions, counters and the cache.
    pub redis_url: Option<String>,
    /// How long a client may take to send a request head, and how long an idle
    /// keep-alive connection is kept (default 10 s).
    pub client_timeout: Duration,
    /// `POST /login` attempts per address per minute (default 10).
    pub login_limit: u32,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Run(Config),
    Help,
}

impl Config {
    /// The command line (`--port N`, `--client-timeout SECS`, `--login-limit N`,
    /// `--help`) and the environment (`PORT`, `REDIS_URL`).
    pub fn from_env() -> Result<Command, String> {
        Config::parse(
            std::env::args().skip(1),
            std::env::var("PORT").ok(),
            std::env::var("REDIS_URL").ok(),
        )
    }

    /// [`Config::from_env`] on given inputs.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        port: Option<String>,
        redis_url: Option<String>,
    ) -> Result<Command, String> {
        let mut config = Config {
            port: match port {
                Some(p) => p.parse().map_err(|_| format!("PORT={p:?} is not a port"))?,
                None => 3000,
            },
            redis_url: redis_url.filter(|u| !u.trim().is_empty()),
            client_timeout: Duration::from_secs(10),
            login_limit: 10,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
            match arg.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "--port" => {
                    let v = value("--port")?;
                    config.port = v
                        .parse()
                        .map_err(|_| format!("--port {v:?} is not a port"))?;
                }
                "--client-timeout" => {
                    let v = value("--client-timeout")?;
                    config.client_timeout = v
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                        .map(Duration::from_secs_f64)
                        .ok_or(format!(
                            "--client-timeout {v:?} is not a number of seconds (0 < SECS <= 3600)"
                        ))?;
                }
                "--login-limit" => {
                    let v = value("--login-limit")?;
                    config.login_limit = v
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or(format!("--login-limit {v:?} is not a positive number"))?;
                }
                other => return Err(format!("unknown argument {other:?} (try --help)")),
            }
        }
        Ok(Command::Run(config))
    }

    /// The configuration, or the end of the process: `--help` prints the usage and exits
    /// 0; a bad argument prints what is wrong and exits 2.
    pub fn from_env_or_exit(name: &str) -> Config {
        match Config::from_env() {
            Ok(Command::Run(config)) => config,
            Ok(Command::Help) => {
                print!("{}", usage(name));
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::exit(2);
            }
        }
    }
}

/// Prints `name: error: message` to stderr and exits 1: the startup errors a person reads
/// (which port could not be bound, which `REDIS_URL` could not be reached).
pub fn exit_with(name: &str, message: impl std::fmt::Display) -> ! {
    tracing::error!("{message}");
    eprintln!("{name}: error: {message}");
    std::process::exit(1);
}

/// The message for a port that could not be bound.
pub fn bind_error(port: u16, e: &std::io::Error) -> String {
    let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
        " (another server is using it; pick another with --port N)"
    } else {
        ""
    };
    format!("cannot listen on 127.0.0.1:{port}: {e}{hint}")
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((auth, host)) if auth.contains(':') => {
                let user = auth.split_once(':').map_or("", |(u, _)| u);
                format!("{scheme}://{user}:***@{host}")
            }
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Logs to stderr, one line per event; `RUST_LOG` filters (default `info`). Colours only
/// when stderr is a terminal. `log` records (actix-web's `Logger`) are forwarded.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// The fields of the access-log line both demos write for each request, after the method
/// and the path: `status=200 ms=501.2 cache=MISS ratelimit=-`.
pub fn access_fields(
    status: u16,
    elapsed: Duration,
    cache: Option<&str>,
    ratelimit: &str,
) -> String {
    format!(
        "status={status} ms={:.1} cache={} ratelimit={ratelimit}",
        elapsed.as_secs_f64() * 1000.0,
        cache.unwrap_or("-"),
    )
}

/// The rate-limit verdict of a response for the access log: `denied` for a `429`,
/// `allowed` when the response carries a `RateLimit` header, `-` when no limiter ran.
pub fn ratelimit_verdict(status: u16, has_ratelimit_header: bool) -> &'static str {
    match (status, has_ratelimit_header) {
        (429, _) => "denied",
        (_, true) => "allowed",
        _ => "-",
    }
}

/// Installs the Prometheus recorder and returns the handle `GET /metrics` renders. Call it
/// first: the store and the middlewares register their metrics when they are built.
/// A background thread drains the recorder's histograms every 5 s, as the exporter
/// requires when it serves no HTTP listener of its own.
pub fn install_metrics() -> Result<metrics_exporter_prometheus::PrometheusHandle, String> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        })
        .map_err(|e| format!("cannot start the metrics upkeep thread: {e}"))?;
    Ok(handle)
}

/// The content type of the Prometheus text format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The store: Redis when `REDIS_URL` is set, else the embedded memory store, whose
/// logged-in session records and per-user indexes are an eviction class of their own (a
/// flood of anonymous visits or cache entries cannot push them out). The error names
/// `REDIS_URL` (password redacted).
pub async fn open_store(config: &Config) -> Result<AnyStore, String> {
    let store = match &config.redis_url {
        Some(url) => AnyStore::connect(url)
            .await
            .map_err(|e| format!("cannot connect to REDIS_URL={}: {e}", redact(url)))?,
        None => {
            let mut memory = kv_core::MemoryStore::builder();
            for prefix in SessionManager::protected_prefixes_for("session:") {
                memory = memory.protect_prefix(prefix);
            }
            AnyStore::new(
                memory
                    .build()
                    .map_err(|e| format!("cannot build the memory store: {e}"))?,
            )
        }
    };
    tracing::info!(backend = store.backend_name(), "store ready");
    Ok(store)
}

/// Where the shared session key lives in the store.
pub const SHARED_KEY: &str = "demo:session-key";

/// How often a replica checks that the shared session key is still in the store.
pub const KEY_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The key that signs session cookies, and where it came from.
pub struct SessionKey {
    pub key: Key,
    /// The base64 text shared through the store (`None` for `SESSION_KEY` or a memory
    /// store, which nothing else reads).
    shared: Option<Bytes>,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKey")
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// The key that signs session cookies: `SESSION_KEY` (base64 of at least 64 bytes) when
/// set — what production should do; otherwise one generated once and shared through the
/// store (`set_nx`), so that replicas on one Redis accept each other's cookies with no
/// setup. Call [`keep_session_key_shared`] next: a generated key that lived only in Redis
/// would be lost with Redis's data, and a replica started after that would sign with a
/// key the others do not know.
pub async fn session_key(store: &AnyStore) -> Result<SessionKey, String> {
    if let Ok(text) = std::env::var("SESSION_KEY") {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| "SESSION_KEY must be base64 (openssl rand -base64 64)".to_owned())?;
        let key = Key::try_from(bytes.as_slice())
            .map_err(|_| "SESSION_KEY must hold at least 64 bytes".to_owned())?;
        tracing::info!("session cookies signed with the key from SESSION_KEY");
        return Ok(SessionKey { key, shared: None });
    }
    let mut fresh = [0u8; 64];
    rand::fill(&mut fresh);
    if store.backend_name() == "memory" {
        tracing::info!("SESSION_KEY not set: generated a session key (memory store: one process)");
        let key = Key::try_from(fresh.as_slice()).map_err(|_| "the generated key is short")?;
        return Ok(SessionKey { key, shared: None });
    }
    let offered = Bytes::from(STANDARD.encode(fresh));
    let created = store
        .set_nx(SHARED_KEY, offered, None)
        .await
        .map_err(|e| format!("cannot share the session key through the store: {e}"))?;
    let stored = store
        .get(SHARED_KEY)
        .await
        .map_err(|e| format!("cannot read the shared session key: {e}"))?
        .ok_or("the shared session key vanished")?;
    let bytes = STANDARD
        .decode(&stored)
        .map_err(|_| "the shared session key is not base64".to_owned())?;
    let key = Key::try_from(bytes.as_slice()).map_err(|_| "the shared session key is short")?;
    if created {
        tracing::warn!(
            "SESSION_KEY not set: generated a session key and shared it through the store (set SESSION_KEY in production)"
        );
    } else {
        tracing::info!(
            "SESSION_KEY not set: using the session key another replica shared through the store"
        );
    }
    Ok(SessionKey {
        key,
        shared: Some(stored),
    })
}

/// Keeps a generated session key in the store: every [`KEY_CHECK_INTERVAL`], `SET NX`
/// of this replica's key, so that after Redis lost its data (a restart without
/// persistence, a `FLUSHALL`, a failover to an empty replica) the first replica to look
/// puts the key back and a replica started afterwards adopts it instead of generating
/// one the others would refuse. Runs on the current tokio runtime until the process ends;
/// does nothing for `SESSION_KEY` or a memory store.
///
/// What remains: a replica that starts inside the gap (after the loss, before any
/// replica's next check — at most a second) generates its own key, and the replicas then
/// disagree; it is logged at `error`, and `SESSION_KEY` is the production answer.
pub fn keep_session_key_shared(store: AnyStore, key: &SessionKey) {
    let Some(ours) = key.shared.clone() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            match store.set_nx(SHARED_KEY, ours.clone(), None).await {
                Ok(true) => tracing::warn!(
                    "the shared session key was missing from the store (did Redis lose its data?): shared this replica's again"
                ),
                Ok(false) => match store.get(SHARED_KEY).await {
                    Ok(Some(stored)) if stored != ours => tracing::error!(
                        "another replica shares a different session key: cookies from one are refused by the other; set SESSION_KEY"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("cannot read the shared session key: {e}"),
                },
                Err(e) => tracing::warn!("cannot check the shared session key: {e}"),
            }
        }
    });
}

/// The session settings. `Secure` is off because the demo serves plain HTTP on
/// localhost: a browser would not send a `Secure` cookie back over `http://` (the library
/// default is on, with the `__Host-` name prefix that requires it). Cross-origin
/// protection is the library's default, on: a cross-site `POST` to `/login` or `/logout`
/// is a `403` before the handler; same-origin pages and non-browser clients (no `Origin`,
/// no `Sec-Fetch-Site`) pass.
pub fn sessions(store: AnyStore, key: Key) -> Result<SessionManager, kv_core::ConfigError> {
    SessionManager::builder(store)
        .cookie_name("kv-demo-session")
        .secure(false)
        .signed(key)
        .build()
}

/// `/api/limited`'s quota per user (per address when anonymous): 5 per 10 s.
pub const PER_USER_LIMIT: u32 = 5;
/// `/api/limited`'s ceiling for everyone behind one address: 20 per 10 s — ten accounts
/// logged in from one address share it, instead of getting 5 each.
pub const PER_ADDRESS_LIMIT: u32 = 20;
/// The window of both.
pub const LIMIT_WINDOW: Duration = Duration::from_secs(10);

/// `/api/limited`: 5 requests per 10 s per user (per address when anonymous), and at most
/// 20 per 10 s for all users of one address. The address is the peer's: the demo is
/// reached directly; behind a proxy it would be `KeySource::client_ip(trusted_proxies)`.
pub fn limiter(store: AnyStore) -> Result<RateLimiter<AnyStore>, kv_core::ConfigError> {
    let http_user = http::HeaderName::from_static(USER_HEADER);
    RateLimiter::builder(store)
        .key_prefix("demo:rl:")
        .policy(
            // Named `per-client` as before (the load tests of issue 19 read its `RateLimit` item).
            Policy::fixed_window("per-client", PER_USER_LIMIT, LIMIT_WINDOW)
                .key(KeySource::header(http_user).or(KeySource::peer_ip())),
        )
        .policy(
            Policy::fixed_window("per-address", PER_ADDRESS_LIMIT, LIMIT_WINDOW)
                .key(KeySource::peer_ip()),
        )
        .build()
}

/// `POST /login`: `per_minute` attempts per address per minute (password guessing,
/// session-record floods).
pub fn login_limiter(
    store: AnyStore,
    per_minute: u32,
) -> Result<RateLimiter<AnyStore>, kv_core::ConfigError> {
    RateLimiter::builder(store)
        .key_prefix("demo:login:")
        .policy(
            Policy::fixed_window("login-per-address", per_minute, Duration::from_secs(60))
                .key(KeySource::peer_ip()),
        )
        .build()
}

/// How many times `/slow` has run since the server started.
pub static SLOW_RUNS: AtomicU64 = AtomicU64::new(0);

/// `/slow`'s work: 500 ms, then the JSON answer.
pub async fn slow() -> String {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs = SLOW_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    serde_json::json!({ "generated_at": rfc3339_millis(SystemTime::now()), "runs": runs })
        .to_string()
}

/// `/slow`'s caching header: 10 s in a shared cache (kv's, `s-maxage`), but a browser
/// must ask again every time (`max-age=0`): otherwise the browser's own cache answers the
/// second click and the page shows nothing of kv's (no `X-Cache`, no `Age`).
pub const SLOW_CACHE_CONTROL: &str = "public, max-age=0, s-maxage=10";

/// `/me`'s caching header: a session's answer is nobody else's, and not worth keeping.
pub const ME_CACHE_CONTROL: &str = "private, no-store";

/// The headers of `/`: no framing (clickjacking), no content sniffing.
pub const PAGE_HEADERS: [(&str, &str); 3] = [
    ("x-frame-options", "DENY"),
    ("content-security-policy", "frame-ancestors 'none'"),
    ("x-content-type-options", "nosniff"),
];

/// `/me`'s JSON.
pub fn me_json(user: Option<&str>, visits: u64) -> String {
    serde_json::json!({ "user": user, "visits": visits }).to_string()
}

/// `2026-11-25T18:57:00.123Z` (RFC 3339, UTC, milliseconds), by the `time` crate.
pub fn rfc3339_millis(t: SystemTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from(t)
        .format(FORMAT)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

/// Where a successful login sends the client: a browser's form post (it accepts
/// `text/html`) back to the dashboard, an API client to `/me` (its JSON).
pub fn after_login(accept: Option<&str>) -> &'static str {
    if wants_html(accept) { "/" } else { "/me" }
}

/// Whether the client would rather read HTML (a browser navigating: its `Accept` names
/// `text/html`) than JSON (`fetch`, curl, API clients).
pub fn wants_html(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|item| {
            item.split(';')
                .next()
                .is_some_and(|t| t.trim() == "text/html")
        })
    })
}

/// The statuses whose bodies the demos replace with a friendly one.
pub fn is_friendly_error(status: u16) -> bool {
    matches!(status, 403 | 404 | 405 | 413 | 429 | 431)
}

/// A friendly error answer: the content type and the body, HTML for a browser, JSON
/// otherwise. `retry_after` (seconds, from the `Retry-After` header) is said in a `429`.
pub fn error_answer(status: u16, retry_after: Option<u64>, html: bool) -> (&'static str, String) {
    let (title, text) = match status {
        403 => (
            "Forbidden",
            "This request was refused: a form on another site cannot post here.".to_owned(),
        ),
        404 => ("Not found", "There is nothing at this address.".to_owned()),
        405 => (
            "Method not allowed",
            "This address does not answer that method.".to_owned(),
        ),
        413 => (
            "Payload too large",
            format!("Request bodies are limited to {MAX_BODY_BYTES} bytes."),
        ),
        429 => (
            "Too many requests",
            match retry_after {
                Some(1) => "Slow down: try again in 1 second.".to_owned(),
                Some(s) => format!("Slow down: try again in {s} seconds."),
                None => "Slow down: try again shortly.".to_owned(),
            },
        ),
        431 => (
            "Request headers too large",
            format!(
                "At most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes in all are accepted."
            ),
        ),
        _ => ("Error", "The request failed.".to_owned()),
    };
    if html {
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} {title}</title>\
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}}</style></head>\
<body><h1>{status} {title}</h1><p id=\"message\">{text}</p><p><a id=\"back\" href=\"/\">Back to the dashboard</a></p></body></html>\n"
        );
        ("text/html; charset=utf-8", body)
    } else {
        let mut json = serde_json::json!({ "status": status, "error": title, "message": text });
        if let Some(s) = retry_after {
            json["retry_after"] = s.into();
        }
        ("application/json", json.to_string())
    }
}

/// The most headers a request may carry (both demos; the HTTP parsers' own ceilings,
/// hyper's 100 and actix's 96, are above it).
pub const MAX_HEADERS: usize = 64;
/// The most bytes of header names and values a request may carry.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The largest request body the demos read (a login form is a few bytes).
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// The status a request's headers earn before any handler runs: `431` past
/// [`MAX_HEADERS`] or [`MAX_HEADER_BYTES`], `413` for a declared body past
/// [`MAX_BODY_BYTES`] (a body without a length is cut at the limit where it is read).
pub fn check_request<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    content_length: Option<&[u8]>,
) -> Option<u16> {
    let (mut count, mut bytes) = (0usize, 0usize);
    for (name, value) in headers {
        count += 1;
        bytes += name.len() + value.len();
    }
    if count > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Some(431);
    }
    let declared = content_length
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > MAX_BODY_BYTES as u64 => Some(413),
        _ => None,
    }
}

/// The `user` field of an `application/x-www-form-urlencoded` login form.
pub fn form_user(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            (name == "user").then(|| percent_decode(value)).flatten()
        })
        .filter(|u| !u.is_empty() && u.len() <= 64)
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn timestamps_are_rfc3339_with_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_097_020_123);
        assert_eq!(rfc3339_millis(t), "2025-11-25T18:57:00.123Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
        let tenth = UNIX_EPOCH + Duration::from_millis(100);
        assert_eq!(rfc3339_millis(tenth), "1970-01-01T00:00:00.100Z");
    }

    #[test]
    fn login_forms_are_decoded_and_bounded() {
        assert_eq!(form_user(b"user=alice").as_deref(), Some("alice"));
        assert_eq!(
            form_user(b"x=1&user=al%20ice+b").as_deref(),
            Some("al ice b")
        );
        assert_eq!(form_user(b"user="), None);
        assert_eq!(form_user(b"user=%zz"), None);
        assert_eq!(form_user(&[b'u', b's', b'e', b'r', b'=', 0xff]), None);
        assert_eq!(
            form_user(format!("user={}", "a".repeat(65)).as_bytes()),
            None
        );
    }

    #[test]
    fn the_command_line_is_parsed_and_checked() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let Ok(Command::Run(c)) = Config::parse(args(&[]), None, Some(String::new())) else {
            panic!("defaults")
        };
        assert_eq!(
            (c.port, c.redis_url, c.client_timeout, c.login_limit),
            (3000, None, Duration::from_secs(10), 10)
        );
        let Ok(Command::Run(c)) = Config::parse(
            args(&[
                "--port",
                "8080",
                "--client-timeout",
                "0.5",
                "--login-limit",
                "3",
            ]),
            Some("1".into()),
            Some("redis://x".into()),
        ) else {
            panic!("flags")
        };
        assert_eq!(c.port, 8080);
        assert_eq!(c.client_timeout, Duration::from_millis(500));
        assert_eq!(c.login_limit, 3);
        assert_eq!(c.redis_url.as_deref(), Some("redis://x"));
        assert!(matches!(
            Config::parse(args(&["--help"]), None, None),
            Ok(Command::Help)
        ));
        for bad in [
            &["--port", "x"][..],
            &["--port"],
            &["--client-timeout", "0"],
            &["--client-timeout", "NaN"],
            &["--login-limit", "0"],
            &["--wat"],
        ] {
            assert!(Config::parse(args(bad), None, None).is_err(), "{bad:?}");
        }
        assert!(Config::parse(args(&[]), Some("http".into()), None).is_err());
        let usage = usage("x");
        for needle in ["--port", "--client-timeout", "REDIS_URL", "SESSION_KEY"] {
            assert!(usage.contains(needle), "{needle}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://:secret@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(redact("redis://u:secret@h"), "redis://u:***@h");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }

    #[test]
    fn browsers_get_html_and_api_clients_json() {
        assert!(wants_html(Some(
            "text/html,application/xhtml+xml,*/*;q=0.8"
        )));
        assert!(!wants_html(Some("*/*")));
        assert!(!wants_html(Some("application/json")));
        assert!(!wants_html(None));
        let (ct, body) = error_answer(429, Some(7), true);
        assert!(ct.starts_with("text/html"));
        assert!(body.contains("try again in 7 seconds") && body.contains("href=\"/\""));
        let (ct, body) = error_answer(429, Some(7), false);
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["retry_after"], 7);
        assert_eq!(after_login(Some("text/html")), "/");
        assert_eq!(after_login(None), "/me");
    }

    #[test]
    fn request_limits() {
        fn verdict(n: usize, len: usize) -> Option<u16> {
            let value = vec![b'a'; len];
            check_request((0..n).map(|_| ("x-a", value.as_slice())), None)
        }
        assert_eq!(verdict(64, 10), None);
        assert_eq!(verdict(65, 10), Some(431));
        assert_eq!(verdict(1, 16 * 1024 - 3), None);
        assert_eq!(verdict(1, 16 * 1024 - 2), Some(431));
        assert_eq!(check_request(std::iter::empty(), Some(b"4096")), None);
        assert_eq!(check_request(std::iter::empty(), Some(b"4097")), Some(413));
    }
}
