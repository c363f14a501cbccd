//! Resident memory for 1M keys of 16 B with 64 B values: kv's `MemoryStore` beside a real
//! `redis-server` holding the same keys (`INFO memory`), with dashmap and moka for
//! reference. Each contender is measured in its own child process.
//!
//! Run: `cargo run --release -p kv-benches --bin memory_rss`

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use kv_benches::{BenchRedis, ready, rss_bytes};
use kv_core::{MemoryStore, Store};

const N: usize = 1_000_000;

fn key(i: usize) -> String {
    format!("key:{i:012}")
}

fn value() -> Bytes {
    Bytes::from(vec![b'v'; 64])
}

/// Loads the keys in this process; prints `name before_bytes after_bytes`.
fn measure_here(name: &str) {
    let before = rss_bytes();
    match name {
        "kv_memory" | "kv_memory_ttl" => {
            let store = MemoryStore::builder()
                .max_bytes(1 << 30)
                .build()
                .expect("store");
            let ttl = (name == "kv_memory_ttl").then_some(Duration::from_secs(3600));
            for i in 0..N {
                ready(store.set(&key(i), value(), ttl)).expect("set");
            }
            assert_eq!(store.len(), N);
            println!("{name} {before} {}", rss_bytes());
        }
        "dashmap" => {
            let map = dashmap::DashMap::new();
            for i in 0..N {
                map.insert(key(i), value());
            }
            println!("{name} {before} {}", rss_bytes());
        }
        "moka" => {
            let cache = moka::sync::Cache::builder()
                .max_capacity(2 * N as u64)
                .time_to_live(Duration::from_secs(3600))
                .build();
            for i in 0..N {
                cache.insert(key(i), value());
            }
            cache.run_pending_tasks();
            println!("{name} {before} {}", rss_bytes());
        }
        other => panic!("unknown contender {other}"),
    }
}

fn redis_info(url: &str) -> Option<(u64, u64)> {
    let out = Command::new("redis-cli")
        .args(["-u", url, "INFO", "memory"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((field("used_memory:")?, field("used_memory_rss:")?))
}

fn measure_redis(with_ttl: bool) -> Option<(u64, u64, u64)> {
    let server = BenchRedis::start()?;
    let (_, rss_before) = redis_info(&server.url)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let client = redis::Client::open(server.url.as_str()).ok()?;
        let mut conn = client.get_connection_manager().await.ok()?;
        let v = value();
        for chunk in (0..N).collect::<Vec<_>>().chunks(1000) {
            let mut pipe = redis::pipe();
            for &i in chunk {
                let cmd = pipe.cmd("SET").arg(key(i)).arg(v.as_ref());
                if with_ttl {
                    cmd.arg("PX").arg(3_600_000);
                }
                cmd.ignore();
            }
            let () = pipe.query_async(&mut conn).await.ok()?;
        }
        Some(())
    })?;
    let (used, rss) = redis_info(&server.url)?;
    Some((rss_before, rss, used))
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(name) = args.get(1) {
        measure_here(name);
        return;
    }
    let exe = std::env::current_exe().expect("exe");
    println!("1M keys of 16 B, values of 64 B; RSS in MiB (before -> after = growth)");
    println!("| contender | RSS before | RSS after | growth |");
    println!("|---|---|---|---|");
    let mut results = Vec::new();
    for name in ["kv_memory", "kv_memory_ttl", "dashmap", "moka"] {
        let out = Command::new(&exe).arg(name).output().expect("child");
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        let nums: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|n| n.parse().ok())
            .collect();
        if let [before, after] = nums[..] {
            println!(
                "| {name} | {:.1} | {:.1} | {:.1} |",
                mib(before),
                mib(after),
                mib(after - before)
            );
            results.push((name.to_owned(), after));
        }
    }
    for (name, ttl) in [("redis-server", false), ("redis-server (PX)", true)] {
        match measure_redis(ttl) {
            Some((before, rss, used)) => {
                println!(
                    "| {name} | {:.1} | {:.1} | {:.1} (used_memory {:.1}) |",
                    mib(before),
                    mib(rss),
                    mib(rss.saturating_sub(before)),
                    mib(used)
                );
                results.push((name.to_owned(), rss));
            }
            None => println!("| {name} | skipped: no redis-server | | |"),
        }
    }
}
