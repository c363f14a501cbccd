//! Per-request overhead of the kv-actix middlewares over a bare actix-web handler called in
//! process (`actix_web::test`), beside `actix-governor` (rate limiting) and
//! `actix-session` with its `CookieSessionStore` (private) and `RedisSessionStore`
//! (sessions), and a cache hit beside the bare handler, same run. Run: `cargo bench -p kv-benches --bench actix`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, test, web};
use criterion::{Criterion, criterion_group, criterion_main};
use kv_actix::{CacheMiddleware, RateLimitMiddleware, SessionMiddleware};
use kv_benches::BenchRedis;
use kv_core::cache::Cache;
use kv_core::rate_limit::{HeaderOptions, Policy, RateLimiter};
use kv_core::session::SessionManager;
use kv_core::{MemoryStore, RedisStore, Store};

const HUGE: u32 = 1_000_000_000;
const PEER: &str = "198.51.100.7:40000";

fn request(cookie: Option<&str>) -> actix_http::Request {
    let mut r = test::TestRequest::get()
        .uri("/")
        .peer_addr(PEER.parse::<SocketAddr>().expect("addr"));
    if let Some(cookie) = cookie {
        r = r.insert_header(("cookie", cookie));
    }
    r.to_request()
}

fn time<S, B>(rt: &actix_rt::Runtime, app: &S, cookie: Option<&str>, iters: u64) -> Duration
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let response = test::call_service(app, request(cookie)).await;
            assert!(response.status().is_success());
            std::hint::black_box(response);
        }
        start.elapsed()
    })
}

fn cookie_of<S, B>(rt: &actix_rt::Runtime, app: &S) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    rt.block_on(async {
        let response = test::call_service(app, request(None)).await;
        let set = response
            .headers()
            .get("set-cookie")
            .expect("a session cookie")
            .to_str()
            .expect("ascii");
        set.split(';').next().expect("pair").to_owned()
    })
}

macro_rules! bench_app {
    ($g:expr, $rt:expr, $name:expr, $app:expr, $cookie:expr) => {{
        let app = $rt.block_on(test::init_service($app));
        $g.bench_function($name, |b| {
            b.iter_custom(|iters| time($rt, &app, $cookie, iters))
        });
    }};
}

fn kv_limiter<St: Store>(store: St, policy: Policy, ietf: bool) -> RateLimitMiddleware<St> {
    RateLimitMiddleware::new(
        RateLimiter::builder(store)
            .policy(policy)
            .header_options(HeaderOptions {
                ietf,
                ..HeaderOptions::default()
            })
            .build()
            .expect("limiter"),
    )
}

fn rate_limit(c: &mut Criterion, rt: &actix_rt::Runtime) {
    let mut g = c.benchmark_group("actix_rate_limit");
    let ok = || async { "ok" };
    bench_app!(
        g,
        rt,
        "bare_actix",
        App::new().route("/", web::get().to(ok)),
        None
    );
    let config = actix_governor::GovernorConfigBuilder::default()
        .nanoseconds_per_request(1)
        .burst_size(HUGE)
        .finish()
        .expect("config");
    bench_app!(
        g,
        rt,
        "actix_governor",
        App::new()
            .wrap(actix_governor::Governor::new(&config))
            .route("/", web::get().to(ok)),
        None
    );
    let gcra = || Policy::gcra("g", HUGE, Duration::from_secs(1));
    let window = || Policy::fixed_window("f", HUGE, Duration::from_secs(3600));
    bench_app!(
        g,
        rt,
        "kv_gcra",
        App::new()
            .wrap(kv_limiter(MemoryStore::new(), gcra(), true))
            .route("/", web::get().to(ok)),
        None
    );
    bench_app!(
        g,
        rt,
        "kv_gcra_no_headers",
        App::new()
            .wrap(kv_limiter(MemoryStore::new(), gcra(), false))
            .route("/", web::get().to(ok)),
        None
    );
    bench_app!(
        g,
        rt,
        "kv_fixed_window_memory",
        App::new()
            .wrap(kv_limiter(MemoryStore::new(), window(), true))
            .route("/", web::get().to(ok)),
        None
    );
    g.finish();
}

async fn kv_read(s: kv_actix::session::Session) -> String {
    s.get::<String>("k").expect("get").unwrap_or_default()
}

async fn kv_write(s: kv_actix::session::Session) -> &'static str {
    s.insert("k", "value").expect("insert");
    "ok"
}

async fn as_read(s: actix_session::Session) -> String {
    s.get::<String>("k").expect("get").unwrap_or_default()
}

async fn as_write(s: actix_session::Session) -> &'static str {
    s.insert("k", "value").expect("insert");
    "ok"
}

/// kv's four cases on one store: untouched (no cookie / cookie), read, write.
fn kv_sessions<St: Store + Clone>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &actix_rt::Runtime,
    prefix: &str,
    store: St,
) {
    let manager = SessionManager::builder(store).build().expect("sessions");
    let mw = || SessionMiddleware::new(manager.clone());
    let creator = rt.block_on(test::init_service(
        App::new().wrap(mw()).route("/", web::get().to(kv_write)),
    ));
    let cookie = cookie_of(rt, &creator);
    let ok = || async { "ok" };
    bench_app!(
        g,
        rt,
        format!("{prefix}/untouched_no_cookie"),
        App::new().wrap(mw()).route("/", web::get().to(ok)),
        None
    );
    bench_app!(
        g,
        rt,
        format!("{prefix}/untouched_cookie"),
        App::new().wrap(mw()).route("/", web::get().to(ok)),
        Some(&cookie)
    );
    bench_app!(
        g,
        rt,
        format!("{prefix}/read"),
        App::new().wrap(mw()).route("/", web::get().to(kv_read)),
        Some(&cookie)
    );
    bench_app!(
        g,
        rt,
        format!("{prefix}/write"),
        App::new().wrap(mw()).route("/", web::get().to(kv_write)),
        Some(&cookie)
    );
}

/// actix-session's four cases on one store.
fn actix_sessions<St: actix_session::storage::SessionStore + 'static>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &actix_rt::Runtime,
    prefix: &str,
    store: impl Fn() -> St,
) {
    let key = actix_web::cookie::Key::from(&[7u8; 64]);
    let mw = || {
        actix_session::SessionMiddleware::builder(store(), key.clone())
            .cookie_secure(false)
            .build()
    };
    let creator = rt.block_on(test::init_service(
        App::new().wrap(mw()).route("/", web::get().to(as_write)),
    ));
    let cookie = cookie_of(rt, &creator);
    let ok = || async { "ok" };
    bench_app!(
        g,
        rt,
        format!("{prefix}/untouched_no_cookie"),
        App::new().wrap(mw()).route("/", web::get().to(ok)),
        None
    );
    bench_app!(
        g,
        rt,
        format!("{prefix}/untouched_cookie"),
        App::new().wrap(mw()).route("/", web::get().to(ok)),
        Some(&cookie)
    );
    bench_app!(
        g,
        rt,
        format!("{prefix}/read"),
        App::new().wrap(mw()).route("/", web::get().to(as_read)),
        Some(&cookie)
    );
    bench_app!(
        g,
        rt,
        format!("{prefix}/write"),
        App::new().wrap(mw()).route("/", web::get().to(as_write)),
        Some(&cookie)
    );
}

fn sessions(c: &mut Criterion, rt: &actix_rt::Runtime) {
    let mut g = c.benchmark_group("actix_session");
    let ok = || async { "ok" };
    bench_app!(
        g,
        rt,
        "bare_actix",
        App::new().route("/", web::get().to(ok)),
        None
    );
    let baseline = format!("id={}", "A".repeat(100));
    bench_app!(
        g,
        rt,
        "bare_actix_cookie",
        App::new().route("/", web::get().to(ok)),
        Some(&baseline)
    );
    kv_sessions(&mut g, rt, "kv_memory", MemoryStore::new());
    actix_sessions(
        &mut g,
        rt,
        "actix_session_cookie",
        actix_session::storage::CookieSessionStore::default,
    );
    g.finish();

    let Some(redis) = BenchRedis::start() else {
        eprintln!("redis-server not available: skipping the Redis session benches");
        return;
    };
    let mut g = c.benchmark_group("actix_session_redis");
    let store = rt
        .block_on(RedisStore::connect(&redis.url))
        .expect("connect");
    kv_sessions(&mut g, rt, "kv_redis", store);
    let theirs = rt
        .block_on(actix_session::storage::RedisSessionStore::new(
            redis.url.clone(),
        ))
        .expect("actix-session redis store");
    actix_sessions(&mut g, rt, "actix_session_redis", move || theirs.clone());
    g.finish();
    drop(redis);
}

async fn page() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=3600"))
        .body(&b"<html>a static page of a few bytes</html>"[..])
}

fn cache(c: &mut Criterion, rt: &actix_rt::Runtime) {
    let mut g = c.benchmark_group("actix_cache");
    bench_app!(
        g,
        rt,
        "bare_actix",
        App::new().route("/", web::get().to(page)),
        None
    );
    let engine = Cache::builder(MemoryStore::new()).build().expect("cache");
    let app = rt.block_on(test::init_service(
        App::new()
            .wrap(CacheMiddleware::new(engine))
            .route("/", web::get().to(page)),
    ));
    // Warm: the first request stores the entry.
    rt.block_on(async {
        let response = test::call_service(&app, request(None)).await;
        std::hint::black_box(test::read_body(response).await);
    });
    g.bench_function("kv_cache_hit_memory", |b| {
        b.iter_custom(|iters| time(rt, &app, None, iters))
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let rt = actix_rt::Runtime::new().expect("runtime");
    rate_limit(c, &rt);
    cache(c, &rt);
    sessions(c, &rt);
}

criterion_group! {
    name = actix;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(actix);
