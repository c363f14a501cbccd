//! Shared helpers of the kv benches: the data set, a poll-once executor for stores whose
//! futures never wait, and a two-thread timing harness.
#![allow(missing_docs)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// The README's examples (tower/axum and actix-web alike), compiled and run as doc-tests
/// here, in the one crate that depends on every kv crate, so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}

/// The examples of the `docs/` pages, tested the same way.
#[cfg(doctest)]
mod docs {
    #[doc = include_str!("../../docs/stores.md")]
    mod stores {}
    #[doc = include_str!("../../docs/rate-limiting.md")]
    mod rate_limiting {}
    #[doc = include_str!("../../docs/sessions.md")]
    mod sessions {}
    #[doc = include_str!("../../docs/caching.md")]
    mod caching {}
    #[doc = include_str!("../../docs/actix.md")]
    mod actix {}
}

/// Keys in the data set.
pub const KEYS: usize = 100_000;

/// `KEYS` distinct keys of exactly 16 bytes.
pub fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("key:{i:012}")).collect()
}

/// A 64-byte value.
pub fn value() -> Bytes {
    Bytes::from(vec![b'v'; 64])
}

/// Runs a future that is ready on its first poll (the memory store's always are).
#[inline]
pub fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("bench future was not ready on first poll"),
    }
}

/// A cheap walk over the key indices that visits them in a scattered order.
#[derive(Debug, Clone, Copy)]
pub struct Walk(usize);

impl Walk {
    pub fn new(start: usize) -> Self {
        Walk(start % KEYS)
    }
    #[inline]
    pub fn next_index(&mut self) -> usize {
        self.0 = (self.0 + 7_919) % KEYS;
        self.0
    }
}

/// Times `iters` calls of `op` on each of `threads` threads started together; returns the
/// wall time of the slowest thread, so that `elapsed / iters` is the per-op time seen by
/// one thread.
pub fn timed_on_threads<F>(threads: usize, iters: u64, op: F) -> Duration
where
    F: Fn(usize, u64) + Sync,
{
    let barrier = std::sync::Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (op, barrier) = (&op, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    op(t, iters);
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .max()
            .unwrap_or_default()
    })
}

/// A `redis-server` for a bench: `KV_BENCH_REDIS_URL`, or one started on a free loopback
/// port (persistence off) and killed on drop. `None` when neither is available.
#[derive(Debug)]
pub struct BenchRedis {
    child: Option<std::process::Child>,
    pub url: String,
    pub port: u16,
}

impl BenchRedis {
    pub fn start() -> Option<BenchRedis> {
        if let Ok(url) = std::env::var("KV_BENCH_REDIS_URL") {
            return Some(BenchRedis {
                child: None,
                url,
                port: 0,
            });
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(BenchRedis {
            child: Some(child),
            url: format!("redis://127.0.0.1:{port}"),
            port,
        })
    }
}

impl Drop for BenchRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// This process's resident set size in bytes (Linux), 0 elsewhere.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
