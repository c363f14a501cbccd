//! The whole runs, shared by the binary (which prints their figures) and the tests (which
//! assert on them): a clean run of a demo, a demo with Redis killed or frozen during the
//! load, and the floods.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kv_test_support::RedisServer;

use crate::demo::{
    CachedBodies, FaultFigures, Limited, Sessions, Timeline, WINDOW, check_freeze, check_outage,
    clear_of_boundaries, login,
};
use crate::flood::{self, Figures, Target};
use crate::process::{Server, signal};
use crate::{Limits, Report, run};

/// The policy name of the demos' per-user `/api/limited` quota in the `RateLimit` field.
pub const DEMO_POLICY: &str = "per-client";

/// What a clean run of a demo measured.
#[derive(Debug)]
pub struct CleanFigures {
    /// `/slow` over 16 keys.
    pub cache: Report,
    /// Handler runs per key (1 each on a quiet machine: single flight, nothing expired).
    pub fills_per_key: BTreeMap<u64, usize>,
    /// `/api/limited` as one user.
    pub limited: Report,
    /// Admitted per window.
    pub admitted_per_window: BTreeMap<u64, usize>,
    /// `/me`, one session per connection.
    pub sessions: Report,
}

impl CleanFigures {
    /// Every property of a clean run: no transport error, no 5xx, no failed check (complete,
    /// unmixed bodies; exact visit counts; exactly the quota admitted in each window),
    /// every cache key served.
    pub fn check(&self) -> Result<(), String> {
        for report in [&self.cache, &self.limited, &self.sessions] {
            if report.transport_errors > 0 || report.server_errors() > 0 || report.failed_checks > 0
            {
                return Err(report.to_string());
            }
        }
        // Every key served. How often each was filled is reported, not asserted: once
        // each on a quiet machine (single flight), but a store call that times out on a
        // loaded one is a miss (fail-open), and the handler then runs again.
        if self.fills_per_key.len() != 16 {
            return Err(format!(
                "all 16 keys should have been served: {:?}",
                self.fills_per_key
            ));
        }
        Ok(())
    }
}

fn unique(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{tag}{}x{nanos}", std::process::id())
}

/// Starts `binary` (on Redis at `redis_url` when given) and drives each route with
/// `connections` connections for `duration` (under 10 s: the cache's freshness and the
/// rate-limit window).
pub async fn clean(
    binary: &str,
    redis_url: Option<&str>,
    connections: usize,
    duration: Duration,
) -> Result<CleanFigures, String> {
    let env: Vec<(&str, &str)> = redis_url.map(|u| ("REDIS_URL", u)).into_iter().collect();
    let server = Server::start(binary, &[], &env).await?;
    let limits = Limits::timed(connections, duration);

    let cache = Arc::new(CachedBodies::new(&unique("c"), 16));
    let cache_report = run("/slow", server.addr, Arc::clone(&cache), limits).await;

    let cookie = login(&server, &unique("load")).await?;
    let limited = Arc::new(Limited::new(Some(cookie), DEMO_POLICY));
    clear_of_boundaries(WINDOW, duration, Duration::from_millis(300)).await;
    let mut limited_report = run("/api/limited", server.addr, Arc::clone(&limited), limits).await;
    if let Err(e) = limited.check_exact() {
        limited_report.failed_checks += 1;
        limited_report.failures.push(e);
    }

    let sessions_report = run("/me", server.addr, Arc::new(Sessions::default()), limits).await;
    Ok(CleanFigures {
        cache: cache_report,
        fills_per_key: cache.fills_per_key(),
        limited: limited_report,
        admitted_per_window: limited
            .admitted_per_window()
            .into_iter()
            .map(|(w, r)| (w, r.len()))
            .collect(),
        sessions: sessions_report,
    })
}

/// A fault injected into the demo's Redis during load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `SIGKILL`, then a new `redis-server` on the same port (its data gone).
    Kill,
    /// `SIGSTOP`, then `SIGCONT`: a frozen server that holds its connections.
    Freeze,
}

/// What a faulted run measured.
#[derive(Debug)]
pub struct FaultRun {
    /// The fault.
    pub fault: Fault,
    /// The outage's figures, or what broke.
    pub figures: Result<FaultFigures, String>,
    /// The three loads (`/me`, `/slow`, `/api/limited`).
    pub reports: Vec<Report>,
    /// Whether the demo process was still running at the end.
    pub alive: bool,
    /// How long the fault lasted.
    pub outage: Duration,
}

impl FaultRun {
    /// No panic (the process runs, no connection dropped), no failed check (complete,
    /// unmixed cache bodies; session counts), and the outage properties.
    pub fn check(&self) -> Result<&FaultFigures, String> {
        if !self.alive {
            return Err("the demo process exited".into());
        }
        for r in &self.reports {
            if r.transport_errors > 0 || r.failed_checks > 0 {
                return Err(r.to_string());
            }
        }
        self.figures.as_ref().map_err(Clone::clone)
    }
}

/// Runs `binary` on a `redis-server` of its own, under a mixed load on `connections`
/// connections (¾ on `/me` and `/slow`, ¼ on `/api/limited`), and injects `fault` after
/// 1.5 s for `outage`; the load goes on 2.5 s after the server is back.
pub async fn faulted(
    binary: &str,
    fault: Fault,
    connections: usize,
    outage: Duration,
) -> Result<FaultRun, String> {
    let mut redis = RedisServer::start(kv_test_support::free_port(), &[]);
    let mut server = Server::start(binary, &[], &[("REDIS_URL", &redis.url())]).await?;
    let timeline = Arc::new(Timeline::default());
    let before = Duration::from_millis(1500);
    let after = Duration::from_millis(2500);
    let total = before + outage + after + Duration::from_millis(500);
    let quarter = (connections / 4).max(1);
    let addr = server.addr;
    let me = tokio::spawn(run(
        "/me",
        addr,
        Arc::new(Sessions::faulted(Arc::clone(&timeline))),
        Limits::timed(quarter * 2, total),
    ));
    let slow = tokio::spawn(run(
        "/slow",
        addr,
        Arc::new(CachedBodies::new(&unique("f"), 8).faulted(Arc::clone(&timeline))),
        Limits::timed(quarter, total),
    ));
    let limited = tokio::spawn(run(
        "/api/limited",
        addr,
        // Anonymous (keyed by address): a logged-in request whose session cannot be
        // loaded ends in the session layer's 500, whatever the limiter decided.
        Arc::new(Limited::new(None, DEMO_POLICY).faulted(Arc::clone(&timeline))),
        Limits::timed(connections.saturating_sub(quarter * 3).max(1), total),
    ));
    tokio::time::sleep(before).await;
    let down = Instant::now();
    let resume = match fault {
        Fault::Kill => {
            redis.kill();
            tokio::time::sleep(outage).await;
            let resume = Instant::now();
            redis.restart(); // returns once the new server answers PING
            resume
        }
        Fault::Freeze => {
            let pid = redis.pid().ok_or("redis-server is not running")?;
            signal(pid, "STOP")?;
            tokio::time::sleep(outage).await;
            let resume = Instant::now();
            signal(pid, "CONT")?;
            resume
        }
    };
    let up = Instant::now();
    let mut reports = Vec::new();
    for task in [me, slow, limited] {
        reports.push(task.await.map_err(|e| e.to_string())?);
    }
    let alive = server.alive() && server.status_of("/healthz").await == Ok(200);
    let events = timeline.events();
    let grace = Duration::from_millis(600);
    let recover = Duration::from_secs(1);
    let figures = match fault {
        Fault::Kill => check_outage(&events, (down, resume, up), grace, recover),
        Fault::Freeze => {
            let bounds = (Duration::from_millis(1000), Duration::from_millis(2500));
            check_freeze(&events, (down, resume), grace, bounds, recover)
        }
    };
    Ok(FaultRun {
        fault,
        figures,
        reports,
        alive,
        outage: resume - down,
    })
}

/// Starts `flood-server` (`binary`) for `framework` with a `max_bytes` store and floods
/// `target` with `keys` distinct keys.
pub async fn flood(
    binary: &str,
    framework: &str,
    target: Target,
    keys: u64,
    max_bytes: u64,
    connections: usize,
) -> Result<Figures, String> {
    let max = max_bytes.to_string();
    let server = Server::start(
        binary,
        &["--framework", framework, "--max-bytes", &max],
        &[],
    )
    .await?;
    flood::flood(
        &server,
        target,
        keys,
        connections,
        Duration::from_millis(2500),
    )
    .await
}

/// The properties of a flood: every request answered 200 with no transport error; the
/// store's accounted bytes never above `max_bytes`; resident memory's high-water mark at
/// most `rss_bound_kib`; the GCRA state pruned during the flood (fewer states than keys,
/// when the flood lasted 3 s or more) and gone after it.
pub fn check_flood(
    f: &Figures,
    keys: u64,
    max_bytes: u64,
    rss_bound_kib: u64,
) -> Result<(), String> {
    let r = &f.report;
    if r.transport_errors > 0 || r.failed_checks > 0 || r.count(200) != keys {
        return Err(r.to_string());
    }
    if f.max_store_bytes > max_bytes {
        return Err(format!(
            "the store held {} accounted bytes, over its bound of {max_bytes}",
            f.max_store_bytes
        ));
    }
    if f.rss_peak_kib > rss_bound_kib {
        return Err(format!(
            "resident memory peaked at {} KiB, over {rss_bound_kib} KiB (before: {} KiB)",
            f.rss_peak_kib, f.rss_before_kib
        ));
    }
    // Pruned during the flood: with states that live 100 ms and a prune every second, a
    // flood of several seconds never holds all its keys at once.
    let long = r.elapsed >= Duration::from_secs(3);
    if (long && f.max_gcra_keys >= keys) || f.gcra_keys_settled > 0 {
        return Err(format!(
            "GCRA state not pruned: at most {} during the flood, {} after",
            f.max_gcra_keys, f.gcra_keys_settled
        ));
    }
    Ok(())
}

/// The demos' load test (`examples/*/tests/load.rs`): [`clean`] runs of 3 s per scenario on
/// 64 connections, on the memory store and then on a `redis-server` of the test's own
/// (skipped without one, unless `KV_REQUIRE_REDIS=1`); panics with the report on any
/// failed property. `test` names the test in the skip message.
pub async fn assert_clean_under_load(binary: &str, test: &str) {
    let _one_at_a_time = crate::serial().await;
    let memory = clean(binary, None, 64, Duration::from_secs(3))
        .await
        .expect("the run on memory");
    eprintln!(
        "memory: {}\n{}\n{}",
        memory.cache, memory.limited, memory.sessions
    );
    memory.check().expect("clean on memory");
    let Some(redis) = kv_test_support::owned_server(test) else {
        return;
    };
    let on_redis = clean(binary, Some(&redis.url()), 64, Duration::from_secs(3))
        .await
        .expect("the run on Redis");
    eprintln!(
        "redis: {}\n{}\n{}",
        on_redis.cache, on_redis.limited, on_redis.sessions
    );
    on_redis.check().expect("clean on Redis");
}

/// The demos' fault test: [`faulted`] with Redis killed for 2 s, then frozen for 3 s
/// (longer than `/slow`'s 2.5 s bound, so that a request waiting for the thaw shows), on
/// 64 connections; panics with the reports on any failed property.
pub async fn assert_rides_out_faults(binary: &str, test: &str) {
    if !kv_test_support::available_for(test) {
        return;
    }
    let _one_at_a_time = crate::serial().await;
    for (fault, outage) in [
        (Fault::Kill, Duration::from_secs(2)),
        (Fault::Freeze, Duration::from_secs(3)),
    ] {
        let run = faulted(binary, fault, 64, outage).await.expect("the run");
        for report in &run.reports {
            eprintln!("{fault:?}: {report}");
        }
        let figures = run.check().unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        eprintln!("{fault:?}: {figures:?}");
    }
}
