//! Floods of distinct keys against one middleware of the `flood-server` binary: every
//! request a new cache entry, a new session, or a new rate-limit key. While it runs, the
//! server's figures (`/stats`) and resident memory are sampled; afterwards, the in-process
//! GCRA state must be pruned away.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::Full;
use serde_json::Value;

use crate::process::Server;
use crate::{Limits, Reply, Report, Scenario, empty, get};

/// Which middleware a flood hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `/cache/N`: a new cache entry per request.
    Cache,
    /// `/session` without a cookie: a new session record per request.
    Session,
    /// `/gcra` with `x-key: N`: a new in-process GCRA state per request.
    Gcra,
    /// `/fixed` with `x-key: N`: a new fixed-window counter in the store per request.
    Fixed,
}

impl Target {
    /// All four.
    pub const ALL: [Target; 4] = [Target::Cache, Target::Session, Target::Gcra, Target::Fixed];

    /// Its name (`cache`, `session`, `gcra`, `fixed`).
    pub fn name(self) -> &'static str {
        match self {
            Target::Cache => "cache",
            Target::Session => "session",
            Target::Gcra => "gcra",
            Target::Fixed => "fixed",
        }
    }
}

/// A flood: request `n` (counted over all connections) uses key `n`.
#[derive(Debug)]
pub struct Flood {
    target: Target,
    next: AtomicU64,
}

impl Flood {
    /// A flood of `target`.
    pub fn new(target: Target) -> Flood {
        Flood {
            target,
            next: AtomicU64::new(0),
        }
    }
}

impl Scenario for Flood {
    type Conn = ();

    fn open(&self, _index: usize) {}

    fn request(&self, (): &mut (), _seq: u64) -> Option<Request<Full<Bytes>>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed).to_string();
        let request = match self.target {
            Target::Cache => get(&format!("/cache/{n}")),
            Target::Session => get("/session"),
            Target::Gcra => get("/gcra").header("x-key", n),
            Target::Fixed => get("/fixed").header("x-key", n),
        };
        request.body(empty()).ok()
    }

    fn check(&self, (): &mut (), reply: &Reply) -> Result<(), String> {
        if reply.status != 200 {
            return Err(format!("{} answered {}", self.target.name(), reply.status));
        }
        match self.target {
            Target::Cache if reply.body.len() != 1024 => {
                Err(format!("a cached body of {} bytes", reply.body.len()))
            }
            Target::Session if !reply.headers.contains_key(header::SET_COOKIE) => {
                Err("a new session without a cookie".into())
            }
            _ => Ok(()),
        }
    }
}

/// The server's `/stats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Entries in the store.
    pub keys: u64,
    /// Accounted bytes in the store.
    pub bytes: u64,
    /// The configured bound.
    pub max_bytes: u64,
    /// Entries evicted to stay within it.
    pub evictions: u64,
    /// Expired entries reclaimed.
    pub expirations: u64,
    /// In-process GCRA states.
    pub gcra_tracked_keys: u64,
}

/// Reads the server's `/stats`.
pub async fn stats(server: &Server) -> Result<Stats, String> {
    let (status, body) = server.get("/stats").await?;
    if status != 200 {
        return Err(format!("/stats answered {status}"));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    Ok(Stats {
        keys: n("keys"),
        bytes: n("bytes"),
        max_bytes: n("max_bytes"),
        evictions: n("evictions"),
        expirations: n("expirations"),
        gcra_tracked_keys: n("gcra_tracked_keys"),
    })
}

/// What one flood measured.
#[derive(Debug, Clone)]
pub struct Figures {
    /// The load itself.
    pub report: Report,
    /// Resident memory before the flood, KiB.
    pub rss_before_kib: u64,
    /// The high-water mark of resident memory at the end, KiB.
    pub rss_peak_kib: u64,
    /// The most accounted store bytes sampled during the flood.
    pub max_store_bytes: u64,
    /// The most in-process GCRA states sampled during the flood.
    pub max_gcra_keys: u64,
    /// The store's figures right after the flood.
    pub after: Stats,
    /// In-process GCRA states `settle` after the flood.
    pub gcra_keys_settled: u64,
}

/// Floods `target` on `server` with `keys` requests over `connections` connections,
/// sampling every 200 ms, then waits `settle` and reads the GCRA state once more.
pub async fn flood(
    server: &Server,
    target: Target,
    keys: u64,
    connections: usize,
    settle: Duration,
) -> Result<Figures, String> {
    let rss_before_kib = server.memory_kib().map(|m| m.0).unwrap_or(0);
    let scenario = Arc::new(Flood::new(target));
    let (addr, name) = (server.addr, format!("flood {}", target.name()));
    let limits = Limits::counted(connections, keys);
    let load = tokio::spawn(async move { crate::run(&name, addr, scenario, limits).await });
    let (mut max_store_bytes, mut max_gcra_keys) = (0, 0);
    while !load.is_finished() {
        if let Ok(s) = stats(server).await {
            max_store_bytes = max_store_bytes.max(s.bytes);
            max_gcra_keys = max_gcra_keys.max(s.gcra_tracked_keys);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let report = load.await.map_err(|e| e.to_string())?;
    let after = stats(server).await?;
    max_store_bytes = max_store_bytes.max(after.bytes);
    max_gcra_keys = max_gcra_keys.max(after.gcra_tracked_keys);
    let rss_peak_kib = server.memory_kib().map(|m| m.1).unwrap_or(0);
    tokio::time::sleep(settle).await;
    let gcra_keys_settled = stats(server).await?.gcra_tracked_keys;
    Ok(Figures {
        report,
        rss_before_kib,
        rss_peak_kib,
        max_store_bytes,
        max_gcra_keys,
        after,
        gcra_keys_settled,
    })
}
