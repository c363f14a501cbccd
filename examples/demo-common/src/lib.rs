//! What the two demo servers (`axum-demo`, `actix-demo`) share, so that they behave the
//! same: configuration, the store, the settings of the three middlewares, the HTML page,
//! the JSON answers, and (feature `e2e`) the end-to-end checks both binaries pass.
#![allow(missing_docs)]

#[cfg(feature = "e2e")]
pub mod e2e;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use kv_core::rate_limit::{KeySource, Policy, RateLimiter};
use kv_core::session::{Key, SessionManager};
use kv_core::{AnyStore, Store};

/// The internal header the demos put the logged-in user in, for the rate limiter's key.
/// Any value a client sends is removed first.
pub const USER_HEADER: &str = "x-kv-demo-user";

/// Where the demo listens and what it stores in.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    /// `REDIS_URL`, when set: every replica shares sessions, counters and the cache.
    pub redis_url: Option<String>,
}

impl Config {
    /// `--port N` or `PORT` (default 3000), and `REDIS_URL`.
    pub fn from_env() -> Result<Config, String> {
        let mut port = match std::env::var("PORT") {
            Ok(p) => p.parse().map_err(|_| format!("PORT={p:?} is not a port"))?,
            Err(_) => 3000,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--port" => {
                    let value = args.next().ok_or("--port needs a value")?;
                    port = value
                        .parse()
                        .map_err(|_| format!("--port {value:?} is not a port"))?;
                }
                other => return Err(format!("unknown argument {other:?} (try --port N)")),
            }
        }
        let redis_url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
        Ok(Config { port, redis_url })
    }
}

/// Logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
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
/// flood of anonymous visits or cache entries cannot push them out).
pub async fn open_store(config: &Config) -> Result<AnyStore, kv_core::KvError> {
    let store = match &config.redis_url {
        Some(url) => AnyStore::connect(url).await?,
        None => {
            let mut memory = kv_core::MemoryStore::builder();
            for prefix in SessionManager::protected_prefixes_for("session:") {
                memory = memory.protect_prefix(prefix);
            }
            AnyStore::new(
                memory
                    .build()
                    .map_err(|e| kv_core::KvError::invalid_input(e.to_string()))?,
            )
        }
    };
    tracing::info!(backend = store.backend_name(), "store ready");
    Ok(store)
}

/// The key that signs session cookies: `SESSION_KEY` (base64 of at least 64 bytes) when
/// set; otherwise one generated once and shared through the store (`set_nx`), so that
/// replicas on one Redis accept each other's cookies with no setup.
pub async fn session_key(store: &AnyStore) -> Result<Key, String> {
    if let Ok(text) = std::env::var("SESSION_KEY") {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| "SESSION_KEY must be base64".to_owned())?;
        let key = Key::try_from(bytes.as_slice())
            .map_err(|_| "SESSION_KEY must hold at least 64 bytes".to_owned())?;
        tracing::info!("session cookies signed with the key from SESSION_KEY");
        return Ok(key);
    }
    const SHARED: &str = "demo:session-key";
    let mut fresh = [0u8; 64];
    rand::fill(&mut fresh);
    let offered = Bytes::from(STANDARD.encode(fresh));
    let created = store
        .set_nx(SHARED, offered, None)
        .await
        .map_err(|e| format!("cannot share the session key: {e}"))?;
    let stored = store
        .get(SHARED)
        .await
        .map_err(|e| format!("cannot read the shared session key: {e}"))?
        .ok_or("the shared session key vanished")?;
    let bytes = STANDARD
        .decode(&stored)
        .map_err(|_| "the shared session key is not base64".to_owned())?;
    let key = Key::try_from(bytes.as_slice()).map_err(|_| "the shared session key is short")?;
    if created {
        tracing::info!(
            "SESSION_KEY not set: generated a session key and shared it through the store"
        );
    } else {
        tracing::info!(
            "SESSION_KEY not set: using the session key another replica shared through the store"
        );
    }
    Ok(key)
}

/// The session settings. `Secure` is off because the demo serves plain HTTP on
/// localhost: a browser would not send a `Secure` cookie back over `http://` (the library
/// default is on, with the `__Host-` name prefix that requires it).
pub fn sessions(store: AnyStore, key: Key) -> Result<SessionManager, kv_core::ConfigError> {
    SessionManager::builder(store)
        .cookie_name("kv-demo-session")
        .secure(false)
        .signed(key)
        .build()
}

/// `/api/limited`: 5 requests per 10 s per client, per user when logged in.
pub fn limiter(store: AnyStore) -> Result<RateLimiter<AnyStore>, kv_core::ConfigError> {
    let http_user = http::HeaderName::from_static(USER_HEADER);
    RateLimiter::builder(store)
        .key_prefix("demo:rl:")
        .policy(
            Policy::fixed_window("per-client", 5, Duration::from_secs(10))
                .key(KeySource::header(http_user).or(KeySource::peer_ip())),
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

/// `/slow`'s caching header: 10 s in any shared cache.
pub const SLOW_CACHE_CONTROL: &str = "public, max-age=10";

/// `/me`'s JSON.
pub fn me_json(user: Option<&str>, visits: u64) -> String {
    serde_json::json!({ "user": user, "visits": visits }).to_string()
}

/// `2026-11-25T18:57:00.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// The page at `/`.
pub const INDEX_HTML: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>kv demo</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem}code{background:#f3f3f3;padding:0 .2em}</style>
</head>
<body>
<h1>kv demo</h1>
<p>Caching, sessions and rate limiting from one key-value store: the embedded memory
store by default, Redis when <code>REDIS_URL</code> is set (then several replicas share
everything).</p>
<ul>
<li><a href="/slow">GET /slow</a> — takes 500 ms, cached 10 s: call it twice and look at
<code>X-Cache</code> and <code>Age</code>; every query string (<a href="/slow?a=1">/slow?a=1</a>)
is its own entry; concurrent first calls run the handler once.</li>
<li><a href="/me">GET /me</a> — your session: user and visits (anonymous visits count too).</li>
<li><a href="/api/limited">GET /api/limited</a> — 5 requests per 10 s per client (per user
when logged in); the 6th gets <code>429</code> with the <code>RateLimit</code> headers.</li>
<li><a href="/healthz">GET /healthz</a></li>
</ul>
<form method="post" action="/login"><label>User <input name="user" required></label>
<button>Log in</button></form>
<form method="post" action="/logout"><button>Log out</button></form>
</body>
</html>
"#;

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

    #[test]
    fn timestamps_are_rfc3339_with_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_097_020_123);
        assert_eq!(rfc3339_millis(t), "2025-11-25T18:57:00.123Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
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
}
