//! Load over real TCP: `connections` keep-alive HTTP/1.1 connections (hyper's client, one
//! request in flight on each), driven for a bounded time or number of requests, every
//! reply checked by the scenario, and a report of req/s, p50/p99, statuses, transport
//! errors and failed checks.
//!
//! - [`run`] drives one [`Scenario`] and returns its [`Report`].
//! - [`demo`]: the scenarios for the demos (`axum-demo`, `actix-demo`): complete cached
//!   bodies, exact rate-limit counts per window, sessions that lose no write; and the
//!   faults (Redis killed and restarted, Redis frozen) during load.
//! - [`flood`]: floods of distinct keys against each middleware of the `flood-server`
//!   binary, with its resident memory and store figures.
//!
//! The binary (`cargo run --release -p loadtest -- --help`) runs them and prints the
//! figures `docs/reliability.md` reports; the tests (`examples/*/tests/load.rs`,
//! `examples/loadtest/tests/`) run shorter versions and assert.

pub mod demo;
pub mod flood;
pub mod process;
pub mod runs;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One reply, as the scenario sees it.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body (hyper read it to its end, as framed by `Content-Length` or chunks).
    pub body: Bytes,
    /// When the request was sent (wall clock, for matching against server-side windows).
    pub sent: SystemTime,
    /// When the reply's body was complete.
    pub received: SystemTime,
    /// When the request was sent, on the monotonic clock (for fault timelines).
    pub started: Instant,
    /// `received - sent`, on the monotonic clock.
    pub latency: Duration,
}

/// What one connection sends and how it checks the replies.
pub trait Scenario: Send + Sync + 'static {
    /// Per-connection state (a session cookie, a counter).
    type Conn: Send + 'static;

    /// The state of connection `index`.
    fn open(&self, index: usize) -> Self::Conn;

    /// The `seq`-th request of this connection (`seq` counts from 0 per connection), or
    /// `None` when the connection is done.
    fn request(&self, conn: &mut Self::Conn, seq: u64) -> Option<Request<Full<Bytes>>>;

    /// Checks one reply: `Err` with a message counts as a failed check.
    fn check(&self, conn: &mut Self::Conn, reply: &Reply) -> Result<(), String>;
}

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections, each with one request in flight.
    pub connections: usize,
    /// Stop sending after this long.
    pub duration: Duration,
    /// Stop sending after this many requests in all (`u64::MAX`: no limit).
    pub requests: u64,
}

impl Limits {
    /// `connections` for `duration`, no request limit.
    pub fn timed(connections: usize, duration: Duration) -> Limits {
        Limits {
            connections,
            duration,
            requests: u64::MAX,
        }
    }

    /// `connections` until `requests` were sent (or an hour passed).
    pub fn counted(connections: usize, requests: u64) -> Limits {
        Limits {
            connections,
            duration: Duration::from_secs(3600),
            requests,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The scenario's name.
    pub name: String,
    /// Replies received (any status).
    pub replies: u64,
    /// Connections refused, reset or closed mid-reply, and bodies cut short.
    pub transport_errors: u64,
    /// Replies per status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Replies whose check failed, and the first few messages.
    pub failed_checks: u64,
    /// The first 10 failed checks' messages.
    pub failures: Vec<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latency percentiles (p50, p99) and the maximum.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Slowest reply.
    pub max: Duration,
}

impl Report {
    /// Replies per second.
    pub fn rate(&self) -> f64 {
        self.replies as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Replies with a 5xx status.
    pub fn server_errors(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| (500..600).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }

    /// Replies with `status`.
    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// Panics with the report when a transport error, a 5xx or a failed check was seen.
    pub fn assert_clean(&self) {
        assert!(
            self.transport_errors == 0 && self.server_errors() == 0 && self.failed_checks == 0,
            "{self}"
        );
        assert!(self.replies > 0, "no reply at all: {self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} replies in {:.2} s = {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
             statuses {:?}; transport errors {}; failed checks {}",
            self.name,
            self.replies,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3,
            self.statuses,
            self.transport_errors,
            self.failed_checks,
        )?;
        for failure in &self.failures {
            write!(f, "\n  failed: {failure}")?;
        }
        Ok(())
    }
}

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn { sender })
    }

    pub(crate) async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Reply, String> {
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection not ready: {e}"))?;
        let sent = SystemTime::now();
        let started = Instant::now();
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
            sent,
            received: SystemTime::now(),
            started,
            latency: started.elapsed(),
        })
    }
}

/// A request builder for scenarios: `GET path` with `Host` set.
pub fn get(path: &str) -> http::request::Builder {
    Request::get(path).header(http::header::HOST, "127.0.0.1")
}

/// An empty body.
pub fn empty() -> Full<Bytes> {
    Full::new(Bytes::new())
}

struct Tally {
    replies: u64,
    transport_errors: u64,
    statuses: BTreeMap<u16, u64>,
    failed_checks: u64,
    failures: Vec<String>,
    latencies: Vec<u32>,
}

/// Drives `scenario` at `addr` within `limits`; returns when every connection is done.
pub async fn run<S: Scenario>(
    name: &str,
    addr: SocketAddr,
    scenario: Arc<S>,
    limits: Limits,
) -> Report {
    let started = Instant::now();
    let deadline = started + limits.duration;
    let budget = Arc::new(AtomicU64::new(limits.requests));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(limits.connections);
    for index in 0..limits.connections {
        let scenario = Arc::clone(&scenario);
        let budget = Arc::clone(&budget);
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally {
                replies: 0,
                transport_errors: 0,
                statuses: BTreeMap::new(),
                failed_checks: 0,
                failures: Vec::new(),
                latencies: Vec::new(),
            };
            let mut state = scenario.open(index);
            let mut conn: Option<Conn> = None;
            let mut seq = 0u64;
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                if budget
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| b.checked_sub(1))
                    .is_err()
                {
                    break;
                }
                let Some(request) = scenario.request(&mut state, seq) else {
                    break;
                };
                seq += 1;
                if conn.is_none() {
                    match Conn::open(addr).await {
                        Ok(c) => conn = Some(c),
                        Err(e) => {
                            tally.transport_errors += 1;
                            note(&mut tally.failures, e);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                match c.send(request).await {
                    Ok(reply) => {
                        tally.replies += 1;
                        *tally.statuses.entry(reply.status.as_u16()).or_default() += 1;
                        tally
                            .latencies
                            .push(u32::try_from(reply.latency.as_micros()).unwrap_or(u32::MAX));
                        if let Err(e) = scenario.check(&mut state, &reply) {
                            tally.failed_checks += 1;
                            note(&mut tally.failures, e);
                        }
                        let closes = reply
                            .headers
                            .get(http::header::CONNECTION)
                            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                        if closes {
                            conn = None;
                        }
                    }
                    Err(e) => {
                        tally.transport_errors += 1;
                        note(&mut tally.failures, e);
                        conn = None;
                    }
                }
            }
            tally
        }));
    }
    let mut report = Report {
        name: name.to_owned(),
        ..Report::default()
    };
    let mut latencies = Vec::new();
    for task in tasks {
        match task.await {
            Ok(t) => {
                report.replies += t.replies;
                report.transport_errors += t.transport_errors;
                for (s, n) in t.statuses {
                    *report.statuses.entry(s).or_default() += n;
                }
                report.failed_checks += t.failed_checks;
                for f in t.failures {
                    note(&mut report.failures, f);
                }
                latencies.extend(t.latencies);
            }
            Err(e) => {
                report.failed_checks += 1;
                note(
                    &mut report.failures,
                    format!("a connection task failed: {e}"),
                );
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    report.elapsed = started.elapsed();
    latencies.sort_unstable();
    let at = |q: f64| -> Duration {
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        Duration::from_micros(u64::from(latencies[i.min(latencies.len() - 1)]))
    };
    report.p50 = at(0.50);
    report.p99 = at(0.99);
    report.max = at(1.0);
    report
}

fn note(list: &mut Vec<String>, message: String) {
    if list.len() < 10 {
        list.push(message);
    }
}

/// Holds other runs of this test binary off while the guard lives: the runs' timing
/// bounds (recovery within 1 s, the per-call timeout) assume the machine to themselves.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE.lock().await
}
