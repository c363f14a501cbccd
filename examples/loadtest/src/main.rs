//! `loadtest`: drives kv's demos and the flood server over real TCP and prints the figures
//! `docs/reliability.md` reports. Build the servers first (release):
//!
//! ```sh
//! cargo build --release -p axum-demo -p actix-demo -p loadtest
//! target/release/loadtest demo target/release/axum-demo               # memory store
//! target/release/loadtest demo target/release/axum-demo --redis       # a redis-server of its own
//! target/release/loadtest faults target/release/actix-demo
//! target/release/loadtest flood target/release/flood-server --framework axum --keys 1000000
//! ```

use std::time::Duration;

use kv_test_support::RedisServer;
use loadtest::flood::Target;
use loadtest::runs::{self, Fault};

const HELP: &str = "\
loadtest demo   DEMO_BINARY [--redis] [--connections 64] [--seconds 6]
loadtest faults DEMO_BINARY [--connections 64] [--outage-ms 2500]
loadtest flood  FLOOD_SERVER_BINARY [--framework axum|actix] [--keys 1000000]
                [--max-bytes 67108864] [--connections 64] [--target cache|session|gcra|fixed]";

struct Options {
    command: String,
    binary: String,
    redis: bool,
    connections: usize,
    seconds: f64,
    outage_ms: u64,
    framework: String,
    keys: u64,
    max_bytes: u64,
    target: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let command = args.next().ok_or(HELP)?;
    if command == "--help" || command == "-h" {
        return Err(HELP.to_owned());
    }
    let binary = args.next().ok_or(HELP)?;
    let mut o = Options {
        command,
        binary,
        redis: false,
        connections: 64,
        seconds: 6.0,
        outage_ms: 2500,
        framework: "axum".into(),
        keys: 1_000_000,
        max_bytes: 64 << 20,
        target: None,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let bad = |e: std::num::ParseIntError| e.to_string();
        match arg.as_str() {
            "--redis" => o.redis = true,
            "--connections" => o.connections = value()?.parse().map_err(bad)?,
            "--seconds" => {
                o.seconds = value()?
                    .parse()
                    .map_err(|e: std::num::ParseFloatError| e.to_string())?;
            }
            "--outage-ms" => o.outage_ms = value()?.parse().map_err(bad)?,
            "--framework" => o.framework = value()?,
            "--keys" => o.keys = value()?.parse().map_err(bad)?,
            "--max-bytes" => o.max_bytes = value()?.parse().map_err(bad)?,
            "--target" => o.target = Some(value()?),
            other => return Err(format!("unknown argument {other:?}\n{HELP}")),
        }
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let o = options()?;
    match o.command.as_str() {
        "demo" => {
            let redis = o
                .redis
                .then(|| RedisServer::start(kv_test_support::free_port(), &[]));
            let url = redis.as_ref().map(RedisServer::url);
            let duration = Duration::from_secs_f64(o.seconds.min(9.0));
            let f = runs::clean(&o.binary, url.as_deref(), o.connections, duration).await?;
            println!("{}\n  fills per key: {:?}", f.cache, f.fills_per_key);
            println!(
                "{}\n  admitted per window: {:?}",
                f.limited, f.admitted_per_window
            );
            println!("{}", f.sessions);
            f.check()
        }
        "faults" => {
            let mut failed = Vec::new();
            for fault in [Fault::Kill, Fault::Freeze] {
                let outage = Duration::from_millis(o.outage_ms);
                let r = runs::faulted(&o.binary, fault, o.connections, outage).await?;
                println!("{fault:?} for {:?}: alive {}", r.outage, r.alive);
                for report in &r.reports {
                    println!("  {report}");
                }
                match r.check() {
                    Ok(figures) => println!("  {figures:?}"),
                    Err(e) => {
                        println!("  FAILED: {e}");
                        failed.push(fault);
                    }
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(format!("failed: {failed:?}"))
            }
        }
        "flood" => {
            let targets: Vec<Target> = match o.target.as_deref() {
                None => Target::ALL.to_vec(),
                Some(name) => Target::ALL
                    .into_iter()
                    .filter(|t| t.name() == name)
                    .collect(),
            };
            for target in targets {
                let f = runs::flood(
                    &o.binary,
                    &o.framework,
                    target,
                    o.keys,
                    o.max_bytes,
                    o.connections,
                )
                .await?;
                println!("{} on {}", f.report, o.framework);
                println!(
                    "  RSS {} KiB before, peak {} KiB; store at most {} bytes (bound {}), \
                     {} keys after, {} evictions, {} expirations; GCRA states at most {}, {} after 2.5 s",
                    f.rss_before_kib,
                    f.rss_peak_kib,
                    f.max_store_bytes,
                    o.max_bytes,
                    f.after.keys,
                    f.after.evictions,
                    f.after.expirations,
                    f.max_gcra_keys,
                    f.gcra_keys_settled
                );
            }
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{HELP}")),
    }
}
