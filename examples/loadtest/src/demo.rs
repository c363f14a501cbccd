//! The demos under load (`axum-demo`, `actix-demo`: same routes, same settings) and under
//! faults.
//!
//! - [`CachedBodies`]: `GET /slow?load=K` over a few keys. Every handler run produces a
//!   unique `runs` number, so a reply is *complete* when its body is the whole JSON
//!   object with `Content-Length` bytes, and *not mixed up* when a `runs` number is only
//!   ever seen under one key and always with byte-identical bodies. Without faults, each
//!   key is filled exactly once (single flight, 10 s freshness).
//! - [`Limited`]: `GET /api/limited` as one logged-in user (one rate-limit key). Every
//!   admitted reply is placed in its fixed window from its send/receive times and the
//!   `t` (seconds to reset) of its `RateLimit` field; each window must admit exactly the
//!   quota, with the remaining counts `r` each seen once.
//! - [`Sessions`]: `GET /me`, one session per connection: the visit counter goes up by
//!   exactly one per request (no lost or doubled write).
//! - [`Timeline`]: every reply of a faulted run with its monotonic send time, for the
//!   assertions of [`check_outage`] and [`check_freeze`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Request, header};
use http_body_util::Full;
use serde_json::Value;

use crate::process::Server;
use crate::{Reply, Scenario, empty, get};

/// The demos' `/api/limited` quota: 5 per 10 s per user (fixed windows aligned to the
/// Unix epoch, as kv's fixed window is).
pub const QUOTA: u64 = 5;
/// The demos' `/api/limited` window.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Which route a timeline entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/slow` (the cache).
    Slow,
    /// `/me` (the session).
    Me,
    /// `/api/limited` (the rate limiter).
    Limited,
}

/// One reply of a faulted run.
#[derive(Debug, Clone)]
pub struct Event {
    /// The route.
    pub route: Route,
    /// When the request was sent.
    pub sent: Instant,
    /// How long it took.
    pub latency: Duration,
    /// The status.
    pub status: u16,
    /// Whether the reply carried a `RateLimit` field.
    pub rate_limit_headers: bool,
}

/// Every reply of a run, when recording.
#[derive(Debug, Default)]
pub struct Timeline(parking_lot::Mutex<Vec<Event>>);

impl Timeline {
    fn push(&self, route: Route, reply: &Reply) {
        self.0.lock().push(Event {
            route,
            sent: reply.started,
            latency: reply.latency,
            status: reply.status.as_u16(),
            rate_limit_headers: reply.headers.contains_key("ratelimit"),
        });
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().clone()
    }
}

/// `/slow` over `keys` keys (query `?load=TAG-K`), checking every body.
#[derive(Debug)]
pub struct CachedBodies {
    tag: String,
    keys: u64,
    /// Whether 5xx replies are expected (a faulted run): then they are not failures.
    tolerate_errors: bool,
    timeline: Option<Arc<Timeline>>,
    /// `runs` → (key, body): one handler run belongs to one key and one body.
    seen: parking_lot::Mutex<HashMap<u64, (u64, Bytes)>>,
}

impl CachedBodies {
    /// `keys` keys, tagged `tag` so that runs do not share entries.
    pub fn new(tag: &str, keys: u64) -> CachedBodies {
        CachedBodies {
            tag: tag.to_owned(),
            keys: keys.max(1),
            tolerate_errors: false,
            timeline: None,
            seen: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Records into `timeline` and does not count 5xx as failures.
    pub fn faulted(mut self, timeline: Arc<Timeline>) -> CachedBodies {
        self.tolerate_errors = true;
        self.timeline = Some(timeline);
        self
    }

    /// How many handler runs served each key (1 each in a clean run shorter than the
    /// freshness lifetime).
    pub fn fills_per_key(&self) -> BTreeMap<u64, usize> {
        let mut fills = BTreeMap::new();
        for (key, _) in self.seen.lock().values() {
            *fills.entry(*key).or_default() += 1;
        }
        fills
    }
}

impl Scenario for CachedBodies {
    /// The key of the request in flight.
    type Conn = u64;

    fn open(&self, index: usize) -> u64 {
        index as u64
    }

    fn request(&self, key: &mut u64, seq: u64) -> Option<Request<Full<Bytes>>> {
        *key = (*key + seq.wrapping_mul(7919)) % self.keys;
        get(&format!("/slow?load={}-{}", self.tag, *key))
            .header(header::ACCEPT, "application/json")
            .body(empty())
            .ok()
    }

    fn check(&self, key: &mut u64, reply: &Reply) -> Result<(), String> {
        if let Some(t) = &self.timeline {
            t.push(Route::Slow, reply);
        }
        if self.tolerate_errors && reply.status.is_server_error() {
            return Ok(());
        }
        if reply.status != 200 {
            return Err(format!("/slow answered {}", reply.status));
        }
        let length = reply
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if length.is_some_and(|l| l != reply.body.len()) {
            return Err(format!(
                "Content-Length {length:?} but {} body bytes",
                reply.body.len()
            ));
        }
        let body: Value = serde_json::from_slice(&reply.body)
            .map_err(|e| format!("incomplete or corrupt body {:?}: {e}", reply.body))?;
        let runs = body["runs"]
            .as_u64()
            .ok_or_else(|| format!("no runs in {body}"))?;
        let stamp_ok = body["generated_at"]
            .as_str()
            .is_some_and(|s| s.len() == 24 && s.ends_with('Z'));
        if !stamp_ok || body.as_object().map(|o| o.len()) != Some(2) {
            return Err(format!("unexpected body {body}"));
        }
        let mut seen = self.seen.lock();
        match seen.get(&runs) {
            None => {
                seen.insert(runs, (*key, reply.body.clone()));
                Ok(())
            }
            Some((k, _)) if *k != *key => Err(format!(
                "mixed up: handler run {runs} was filled for key {k} and served for key {key}"
            )),
            Some((_, b)) if *b != reply.body => Err(format!(
                "handler run {runs} served two different bodies: {b:?} and {:?}",
                reply.body
            )),
            Some(_) => Ok(()),
        }
    }
}

/// Logs in as `user` (`POST /login`) and returns the session cookie (`name=value`).
pub async fn login(server: &Server, user: &str) -> Result<String, String> {
    let request = Request::post("/login")
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!("user={user}"))))
        .map_err(|e| e.to_string())?;
    let response = server.send(request).await?;
    if !response.status.is_redirection() && !response.status.is_success() {
        return Err(format!("POST /login answered {}", response.status));
    }
    cookie_of(response.headers.get(header::SET_COOKIE))
        .ok_or_else(|| "POST /login set no cookie".to_owned())
}

fn cookie_of(set_cookie: Option<&HeaderValue>) -> Option<String> {
    let text = set_cookie?.to_str().ok()?;
    let pair = text.split(';').next()?.trim();
    pair.contains('=').then(|| pair.to_owned())
}

/// `/api/limited` as the user of `cookie`, placing every admitted reply in its window.
#[derive(Debug)]
pub struct Limited {
    cookie: Option<String>,
    policy: String,
    tolerate_errors: bool,
    timeline: Option<Arc<Timeline>>,
    /// Window index → the `r` values of the replies it admitted.
    admitted: parking_lot::Mutex<BTreeMap<u64, Vec<u64>>>,
    refused: std::sync::atomic::AtomicU64,
}

impl Limited {
    /// As the user of `cookie` (or anonymous: keyed by the client's address), reading
    /// the `RateLimit` item of `policy` (or the first).
    pub fn new(cookie: Option<String>, policy: &str) -> Limited {
        Limited {
            cookie,
            policy: policy.to_owned(),
            tolerate_errors: false,
            timeline: None,
            admitted: parking_lot::Mutex::new(BTreeMap::new()),
            refused: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Records into `timeline`, accepts admitted replies without `RateLimit` fields (the
    /// limiter's fail-open mode) and does not count 5xx as failures.
    pub fn faulted(mut self, timeline: Arc<Timeline>) -> Limited {
        self.tolerate_errors = true;
        self.timeline = Some(timeline);
        self
    }

    /// Admitted requests per window (window index = Unix ms / window ms).
    pub fn admitted_per_window(&self) -> BTreeMap<u64, Vec<u64>> {
        self.admitted.lock().clone()
    }

    /// Requests refused with 429.
    pub fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Checks the clean-run property: every window admitted exactly [`QUOTA`], with the
    /// remaining counts `QUOTA-1 … 0` each once.
    pub fn check_exact(&self) -> Result<(), String> {
        let windows = self.admitted_per_window();
        if windows.is_empty() {
            return Err("no request was admitted".into());
        }
        let expected: Vec<u64> = (0..QUOTA).rev().collect();
        for (window, remaining) in &windows {
            let mut sorted = remaining.clone();
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            if sorted != expected {
                return Err(format!(
                    "window {window} admitted {} requests with remaining {sorted:?} (quota {QUOTA})",
                    remaining.len()
                ));
            }
        }
        Ok(())
    }

    /// The `r` and `t` of this limiter's item in a `RateLimit` field.
    fn fields(&self, value: &str) -> Option<(u64, u64)> {
        let items: Vec<&str> = value.split(',').map(str::trim).collect();
        let quoted = format!("\"{}\"", self.policy);
        let item = items
            .iter()
            .find(|i| i.starts_with(&quoted))
            .or(items.first())?;
        let param = |name: &str| -> Option<u64> {
            item.split(';')
                .find_map(|p| p.trim().strip_prefix(name))?
                .parse()
                .ok()
        };
        Some((param("r=")?, param("t=")?))
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(0)
}

/// The one window whose end lies in `(sent + (t-1) s, received + t s]`, if one does (the
/// server decided between `sent` and `received`, and `t` is the time to the window's end
/// rounded up to seconds).
pub fn window_of(sent: SystemTime, received: SystemTime, t: u64, window: Duration) -> Option<u64> {
    let w = u64::try_from(window.as_millis()).ok()?.max(1);
    let low = unix_ms(sent) + t.saturating_sub(1) * 1000; // exclusive
    let high = unix_ms(received) + t * 1000; // inclusive
    let first_end = (low / w + 1) * w;
    (first_end <= high && first_end + w > high).then(|| first_end / w - 1)
}

impl Scenario for Limited {
    type Conn = ();

    fn open(&self, _index: usize) {}

    fn request(&self, (): &mut (), _seq: u64) -> Option<Request<Full<Bytes>>> {
        let mut request = get("/api/limited").header(header::ACCEPT, "application/json");
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.body(empty()).ok()
    }

    fn check(&self, (): &mut (), reply: &Reply) -> Result<(), String> {
        if let Some(t) = &self.timeline {
            t.push(Route::Limited, reply);
        }
        match reply.status.as_u16() {
            429 => {
                self.refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if reply.headers.contains_key(header::RETRY_AFTER) {
                    Ok(())
                } else {
                    Err("a 429 without Retry-After".into())
                }
            }
            200 => {
                let field = reply.headers.get("ratelimit").and_then(|v| v.to_str().ok());
                let Some(field) = field else {
                    return if self.tolerate_errors {
                        Ok(()) // fail-open while the store is down
                    } else {
                        Err("an admitted reply without RateLimit".into())
                    };
                };
                let (r, t) = self
                    .fields(field)
                    .ok_or_else(|| format!("unreadable RateLimit {field:?}"))?;
                let window = window_of(reply.sent, reply.received, t, WINDOW).ok_or_else(|| {
                    format!("cannot place a reply (t={t}, latency {:?})", reply.latency)
                })?;
                self.admitted.lock().entry(window).or_default().push(r);
                Ok(())
            }
            s if self.tolerate_errors && s >= 500 => Ok(()),
            s => Err(format!("/api/limited answered {s}")),
        }
    }
}

/// `GET /me`, one session per connection, the visit count checked on every reply.
#[derive(Debug, Default)]
pub struct Sessions {
    tolerate_errors: bool,
    timeline: Option<Arc<Timeline>>,
}

/// A connection's session: its cookie and the visits it has seen.
#[derive(Debug, Default)]
pub struct SessionConn {
    cookie: Option<String>,
    visits: u64,
    /// A request failed since the last success: its write may or may not have landed.
    uncertain: bool,
}

impl Sessions {
    /// Records into `timeline`; 5xx are expected, and after one the next visit count may
    /// be one more or restart at 1 (the write of the failed request may have landed,
    /// or Redis lost the data).
    pub fn faulted(timeline: Arc<Timeline>) -> Sessions {
        Sessions {
            tolerate_errors: true,
            timeline: Some(timeline),
        }
    }
}

impl Scenario for Sessions {
    type Conn = SessionConn;

    fn open(&self, _index: usize) -> SessionConn {
        SessionConn::default()
    }

    fn request(&self, conn: &mut SessionConn, _seq: u64) -> Option<Request<Full<Bytes>>> {
        let mut request = get("/me").header(header::ACCEPT, "application/json");
        if let Some(cookie) = &conn.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.body(empty()).ok()
    }

    fn check(&self, conn: &mut SessionConn, reply: &Reply) -> Result<(), String> {
        if let Some(t) = &self.timeline {
            t.push(Route::Me, reply);
        }
        if self.tolerate_errors && reply.status.is_server_error() {
            conn.uncertain = true;
            return Ok(());
        }
        if reply.status != 200 {
            return Err(format!("/me answered {}", reply.status));
        }
        if let Some(cookie) = cookie_of(reply.headers.get(header::SET_COOKIE)) {
            conn.cookie = Some(cookie);
        }
        let body: Value = serde_json::from_slice(&reply.body)
            .map_err(|e| format!("/me body {:?}: {e}", reply.body))?;
        let visits = body["visits"]
            .as_u64()
            .ok_or_else(|| format!("no visits in {body}"))?;
        let expected = conn.visits + 1;
        let fine = visits == expected
            || (conn.uncertain && (visits == expected + 1 || visits == 1))
            || (self.tolerate_errors && visits == 1);
        conn.uncertain = false;
        conn.visits = visits;
        if conn.cookie.is_none() {
            return Err("no session cookie after a visit".into());
        }
        if fine {
            Ok(())
        } else {
            Err(format!("visit count {visits}, expected {expected}"))
        }
    }
}

/// What [`check_outage`] and [`check_freeze`] measured.
#[derive(Debug, Clone)]
pub struct FaultFigures {
    /// `/me` replies during the fault, and how many of them were 500.
    pub sessions_during: (usize, usize),
    /// `/api/limited` replies during the fault, and how many were admitted without
    /// `RateLimit` fields (fail-open).
    pub limited_during: (usize, usize),
    /// From the store's return to the first `/me` answered 200.
    pub sessions_recovered_after: Option<Duration>,
    /// The slowest reply to a request sent during the fault.
    pub slowest_during: Duration,
}

/// A store outage from `down` until `resume` (when the server is let back; `up` when it
/// answers again): while down (from `grace` after `down`), `/me` answers 500 and
/// `/api/limited` admits without `RateLimit` fields (the demos' limiter fails open);
/// `/me` answers 200 again within `recover` of `up`, and every `/me` sent later than
/// that is 200.
pub fn check_outage(
    events: &[Event],
    (down, resume, up): (Instant, Instant, Instant),
    grace: Duration,
    recover: Duration,
) -> Result<FaultFigures, String> {
    // Answered before the server was let back (`resume`, taken just before the restart
    // or `SIGCONT`): a reply between `resume` and `up` may already be the store's.
    let during = |e: &Event| e.sent >= down + grace && e.sent + e.latency <= resume;
    let me: Vec<&Event> = events.iter().filter(|e| e.route == Route::Me).collect();
    let me_during: Vec<&Event> = me.iter().copied().filter(|e| during(e)).collect();
    let me_500 = me_during.iter().filter(|e| e.status == 500).count();
    if me_during.is_empty() {
        return Err("no /me request during the outage".into());
    }
    if me_500 != me_during.len() {
        return Err(format!(
            "{} of {} /me requests during the outage were not 500",
            me_during.len() - me_500,
            me_during.len()
        ));
    }
    let limited: Vec<&Event> = events
        .iter()
        .filter(|e| e.route == Route::Limited && during(e))
        .collect();
    let open = limited
        .iter()
        .filter(|e| e.status == 200 && !e.rate_limit_headers)
        .count();
    if limited.is_empty() || open != limited.len() {
        let odd: Vec<(u16, bool, Duration, Duration)> = limited
            .iter()
            .filter(|e| e.status != 200 || e.rate_limit_headers)
            .map(|e| (e.status, e.rate_limit_headers, e.sent - down, e.latency))
            .take(5)
            .collect();
        return Err(format!(
            "the limiter did not fail open: {open} of {} admitted without RateLimit; \
             others (status, headers, sent after the fault began, latency): {odd:?}",
            limited.len()
        ));
    }
    let recovered = me
        .iter()
        .filter(|e| e.sent >= up && e.status == 200)
        .map(|e| e.sent + e.latency - up)
        .min();
    match recovered {
        Some(r) if r <= recover => {}
        other => {
            return Err(format!(
                "sessions did not recover within {recover:?}: {other:?}"
            ));
        }
    }
    let late_failures = me
        .iter()
        .filter(|e| e.sent >= up + recover && e.status != 200)
        .count();
    if late_failures > 0 {
        return Err(format!(
            "{late_failures} /me requests failed after the recovery bound"
        ));
    }
    let slowest = events
        .iter()
        .filter(|e| e.sent >= down && e.sent < up)
        .map(|e| e.latency)
        .max()
        .unwrap_or_default();
    Ok(FaultFigures {
        sessions_during: (me_during.len(), me_500),
        limited_during: (limited.len(), open),
        sessions_recovered_after: recovered,
        slowest_during: slowest,
    })
}

/// A frozen store (`SIGSTOP` at `frozen`, `SIGCONT` at `thawed`): the outage properties of
/// [`check_outage`] (with `grace` for the per-call timeout to fire), and every request
/// sent while frozen answered within its route's bound (the per-call timeout holds:
/// without it they would wait for the thaw). `/me` and `/api/limited` make one store
/// call before they answer, so `one_call` bounds them; `/slow` makes up to three in a
/// row (the lookup, the lookup a single-flight follower repeats after the leader, the
/// write) around its 500 ms handler, so `slow` bounds it.
pub fn check_freeze(
    events: &[Event],
    (frozen, thawed): (Instant, Instant),
    grace: Duration,
    (one_call, slow): (Duration, Duration),
    recover: Duration,
) -> Result<FaultFigures, String> {
    let figures = check_outage(events, (frozen, thawed, thawed), grace, recover)?;
    let late: Vec<&Event> = events
        .iter()
        .filter(|e| e.sent >= frozen && e.sent < thawed)
        .filter(|e| {
            e.latency
                > if e.route == Route::Slow {
                    slow
                } else {
                    one_call
                }
        })
        .collect();
    if let Some(e) = late.first() {
        return Err(format!(
            "{} requests sent while Redis was frozen took longer than their bound \
             ({one_call:?}; /slow {slow:?}), e.g. {:?} {:?}",
            late.len(),
            e.route,
            e.latency
        ));
    }
    Ok(figures)
}

/// Waits until `now mod window` leaves `margin` on both sides of a run of `duration`
/// starting now: the run then neither begins nor ends at a window boundary (where a
/// request's window could be either).
pub async fn clear_of_boundaries(window: Duration, duration: Duration, margin: Duration) {
    let w = window.as_millis().max(1);
    let (d, m) = (duration.as_millis() % w, margin.as_millis());
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let (start, end) = (now % w, (now + d) % w);
        if start >= m && w - start >= m && end >= m && w - end >= m {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
