//! Test harness: real `redis-server` processes on free loopback ports.
//!
//! Tests that need Redis call [`server`] (or [`Cluster::start`]); on a machine without
//! `redis-server` they get `None` and report themselves skipped, unless
//! `KV_REQUIRE_REDIS=1`, which turns a missing server into a failure. `KV_TEST_REDIS_URL`
//! points the tests that only need *a* server at an existing one instead.
//!
//! An unpublished workspace crate: the tests that need a Redis take it as a
//! dev-dependency (`kv-test-support.workspace = true`).
#![deny(missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn required() -> bool {
    std::env::var("KV_REQUIRE_REDIS").is_ok_and(|v| v == "1")
}

fn has_binary(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `None` (and a "skipped" line) when Redis tests cannot run here; panics instead when
/// `KV_REQUIRE_REDIS=1`.
fn available(test: &str) -> bool {
    if has_binary("redis-server") && has_binary("redis-cli") {
        return true;
    }
    assert!(
        !required(),
        "KV_REQUIRE_REDIS=1 but redis-server/redis-cli are not installed"
    );
    eprintln!(
        "SKIPPED {test}: redis-server not installed (set KV_REQUIRE_REDIS=1 to fail instead)"
    );
    false
}

/// Whether Redis tests can run here (`redis-server` and `redis-cli` installed); prints a
/// "skipped" line for `test` when not, and panics instead when `KV_REQUIRE_REDIS=1`.
pub fn available_for(test: &str) -> bool {
    available(test)
}

/// A loopback port that is free now (and whose cluster bus port, +10000, is too).
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Where a test's Redis should be: an external one, or one we own.
#[derive(Debug)]
pub enum Target {
    /// A server the test does not own, from `KV_TEST_REDIS_URL`.
    External(String),
    /// A server started for this test.
    Owned(RedisServer),
}

impl Target {
    /// The server's `redis://` URL.
    pub fn url(&self) -> String {
        match self {
            Target::External(url) => url.clone(),
            Target::Owned(s) => s.url(),
        }
    }
}

/// A Redis for tests that need any server: `KV_TEST_REDIS_URL`, or one started here.
pub fn server(test: &str) -> Option<Target> {
    if let Ok(url) = std::env::var("KV_TEST_REDIS_URL") {
        return Some(Target::External(url));
    }
    owned_server(test).map(Target::Owned)
}

/// A Redis this test owns (it may kill and restart it).
pub fn owned_server(test: &str) -> Option<RedisServer> {
    available(test).then(|| RedisServer::start(free_port(), &[]))
}

/// One `redis-server` process, persistence off; killed (by pid) when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    /// The loopback port it listens on.
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    /// Listens for TLS only: ready when the port accepts a connection.
    tls_only: bool,
}

impl RedisServer {
    /// Starts `redis-server` on `127.0.0.1:port` with `extra` arguments and waits until
    /// it answers `PING`.
    pub fn start(port: u16, extra: &[&str]) -> RedisServer {
        let dir = std::env::temp_dir().join(format!("kv-test-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            tls_only: false,
        };
        server.spawn();
        server
    }

    /// Starts a TLS-only `redis-server` on `127.0.0.1:port` (no plain-text port) with the
    /// certificates in `tls`; with `verify_clients` it refuses clients without a
    /// certificate its CA signed.
    pub fn start_tls(
        port: u16,
        tls: &TlsFiles,
        verify_clients: bool,
        extra: &[&str],
    ) -> RedisServer {
        let dir = std::env::temp_dir().join(format!("kv-test-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        let mut args = vec![
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            path(&tls.server_cert),
            "--tls-key-file".to_owned(),
            path(&tls.server_key),
            "--tls-ca-cert-file".to_owned(),
            path(&tls.ca),
            "--tls-auth-clients".to_owned(),
            if verify_clients { "yes" } else { "no" }.to_owned(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            extra: args,
            tls_only: true,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        if self.tls_only {
            wait_listening(self.port);
        } else {
            wait_ready(self.port);
        }
    }

    /// The server's `redis://` URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id, while it runs (for `SIGSTOP`/`SIGCONT`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs `redis-cli` against this server; returns its trimmed stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-cli -p PORT args...`, trimmed stdout.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `redis-cli -u URL args...` for a `Target`.
pub fn cli_url(url: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-u", url])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn wait_ready(port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 16];
            if s.write_all(b"PING\r\n").is_ok()
                && s.read(&mut buf).is_ok_and(|n| {
                    // A password-protected server is up too when it refuses the PING.
                    buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH")
                })
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("redis-server on port {port} did not become ready");
}

fn wait_listening(port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("redis-server on port {port} did not start listening");
}

/// A private certificate authority and what it signed, generated with `openssl` for one
/// test: a server certificate for `127.0.0.1` / `localhost` and a client certificate,
/// plus an unrelated CA (`other_ca`) that signed neither.
#[derive(Debug)]
pub struct TlsFiles {
    dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// Another CA's certificate, which signed nothing here (PEM).
    pub other_ca: PathBuf,
    /// The server's certificate (PEM), for `127.0.0.1` and `localhost`.
    pub server_cert: PathBuf,
    /// The server's private key (PEM).
    pub server_key: PathBuf,
    /// A client certificate the CA signed (PEM).
    pub client_cert: PathBuf,
    /// Its private key (PEM).
    pub client_key: PathBuf,
}

impl TlsFiles {
    /// Generates the files in a new temporary directory; `None` (and a "skipped" line)
    /// when `openssl` is missing, a failure instead when `KV_REQUIRE_REDIS=1`.
    pub fn generate(test: &str) -> Option<TlsFiles> {
        if !has_binary_args("openssl", &["version"]) {
            assert!(
                !required(),
                "KV_REQUIRE_REDIS=1 but openssl is not installed"
            );
            eprintln!("SKIPPED {test}: openssl not installed");
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "kv-test-tls-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let at = |name: &str| dir.join(name);
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for ca in ["ca", "other-ca"] {
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=kv test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
            ]);
        }
        std::fs::write(
            at("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write ext");
        std::fs::write(at("client.ext"), "extendedKeyUsage=clientAuth\n").expect("write ext");
        for (name, cn) in [("server", "127.0.0.1"), ("client", "kv test client")] {
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ]);
            run(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.crt"),
            ]);
        }
        Some(TlsFiles {
            ca: at("ca.crt"),
            other_ca: at("other-ca.crt"),
            server_cert: at("server.crt"),
            server_key: at("server.key"),
            client_cert: at("client.crt"),
            client_key: at("client.key"),
            dir,
        })
    }

    /// Reads one of the files.
    pub fn read(path: &PathBuf) -> Vec<u8> {
        std::fs::read(path).expect("read a generated TLS file")
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn has_binary_args(name: &str, args: &[&str]) -> bool {
    Command::new(name)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// The node id.
    pub id: String,
    /// Its port on loopback.
    pub port: u16,
    /// A master that is not failed.
    pub master: bool,
    /// A replica's master id.
    pub replica_of: Option<String>,
    /// The slot ranges it serves (`"0-5460"`, `"5461"`, …).
    pub slots: Vec<String>,
}

impl ClusterNode {
    /// Whether it serves `slot`.
    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|range| {
            let mut ends = range.split('-').map(|n| n.parse::<u16>());
            match (ends.next(), ends.next()) {
                (Some(Ok(a)), Some(Ok(b))) => (a..=b).contains(&slot),
                (Some(Ok(a)), None) => a == slot,
                _ => false,
            }
        })
    }
}

/// A real 3-master Redis Cluster on loopback ports.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes: at creation the first three are the masters, the rest their replicas.
    pub nodes: Vec<RedisServer>,
}

impl Cluster {
    /// Starts three cluster-enabled servers and joins them into one cluster; `None` (and
    /// a "skipped" line) when Redis tests cannot run here, as for [`server`].
    pub fn start(test: &str) -> Option<Cluster> {
        Cluster::start_with(test, 0)
    }

    /// Three masters with `replicas` replicas each (`nodes` holds all of them, masters
    /// first as `redis-cli --cluster create` assigns them), a node timeout of 1 s so that a
    /// killed master's replica takes over quickly.
    pub fn start_with(test: &str, replicas: usize) -> Option<Cluster> {
        if !available(test) {
            return None;
        }
        let mut nodes = Vec::new();
        for _ in 0..3 * (1 + replicas) {
            let port = free_port();
            let conf = format!("nodes-{port}.conf");
            nodes.push(RedisServer::start(
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf,
                    "--cluster-node-timeout",
                    "1000",
                ],
            ));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Cluster { nodes };
        cluster.wait_ok(Duration::from_secs(30));
        if replicas > 0 {
            // Every master has its replicas attached before the test fails one over.
            let start = Instant::now();
            while cluster
                .nodes
                .iter()
                .filter(|n| n.cli(&["ROLE"]).starts_with("slave"))
                .any(|n| {
                    !n.cli(&["INFO", "replication"])
                        .contains("master_link_status:up")
                })
            {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "replicas did not sync"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(cluster)
    }

    /// Waits until every live node reports `cluster_state:ok`.
    pub fn wait_ok(&self, limit: Duration) {
        let start = Instant::now();
        while !self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(start.elapsed() < limit, "cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `(node id, port, is master, master id, slot ranges)` of every node, as `node` sees
    /// them (`CLUSTER NODES`).
    pub fn topology(&self, node: usize) -> Vec<ClusterNode> {
        self.nodes[node]
            .cli(&["CLUSTER", "NODES"])
            .lines()
            .filter_map(|line| {
                let mut f = line.split_whitespace();
                let id = f.next()?.to_owned();
                let port = f.next()?.split(['@', ':']).nth(1)?.parse().ok()?;
                let flags = f.next()?;
                let master = f.next()?.to_owned();
                let slots = f.skip(4).map(str::to_owned).collect();
                Some(ClusterNode {
                    id,
                    port,
                    master: flags.contains("master") && !flags.contains("fail"),
                    replica_of: (master != "-").then_some(master),
                    slots,
                })
            })
            .collect()
    }

    /// The node (by index in `nodes`) listening on `port`.
    pub fn index_of(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .expect("a node of the cluster")
    }

    /// The nodes' `redis://` URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

/// A Sentinel-monitored master on loopback: a primary, one replica and three
/// sentinels (quorum 2, a primary is down after `down_after_ms` of silence).
#[derive(Debug)]
pub struct SentinelGroup {
    /// The servers, the first started as primary and the second as its replica; which one
    /// is primary now is [`SentinelGroup::primary_port`]'s answer.
    pub servers: Vec<RedisServer>,
    sentinels: Vec<SentinelProcess>,
    /// The name the sentinels monitor the master under.
    pub master: String,
}

#[derive(Debug)]
struct SentinelProcess {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl SentinelGroup {
    /// Starts the group and waits until every sentinel sees the primary and its replica;
    /// `None` (and a "skipped" line) when Redis tests cannot run here.
    pub fn start(test: &str, down_after_ms: u32) -> Option<SentinelGroup> {
        if !available(test) {
            return None;
        }
        let primary = RedisServer::start(free_port(), &[]);
        let replica_of = format!("127.0.0.1 {}", primary.port);
        let replica = RedisServer::start(free_port(), &["--replicaof", &replica_of]);
        let master = "kvmaster".to_owned();
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let dir = std::env::temp_dir()
                .join(format!("kv-test-sentinel-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let conf = dir.join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {master} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {master} {down_after_ms}\n\
                     sentinel failover-timeout {master} 10000\n\
                     sentinel parallel-syncs {master} 1\n",
                    dir = dir.display(),
                    primary = primary.port,
                ),
            )
            .expect("write sentinel.conf");
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server --sentinel");
            wait_ready(port);
            sentinels.push(SentinelProcess { child, port, dir });
        }
        let group = SentinelGroup {
            servers: vec![primary, replica],
            sentinels,
            master,
        };
        let start = Instant::now();
        while !group.sentinels.iter().all(|s| {
            let replicas = cli(s.port, &["SENTINEL", "REPLICAS", &group.master]);
            let others = cli(s.port, &["SENTINEL", "SENTINELS", &group.master]);
            replicas.contains("slave") && others.matches("127.0.0.1").count() >= 2
        }) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the sentinels did not discover the replica and each other"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(group)
    }

    /// The sentinels' `host:port` addresses.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect()
    }

    /// The port of the server the first sentinel names as primary now.
    pub fn primary_port(&self) -> Option<u16> {
        let out = cli(
            self.sentinels[0].port,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &self.master],
        );
        out.lines().nth(1)?.trim().parse().ok()
    }

    /// Runs `redis-cli` against the first sentinel.
    pub fn sentinel_cli(&self, args: &[&str]) -> String {
        cli(self.sentinels[0].port, args)
    }

    /// The server listening on `port`.
    pub fn server(&mut self, port: u16) -> &mut RedisServer {
        self.servers
            .iter_mut()
            .find(|s| s.port == port)
            .expect("a server of the group")
    }

    /// Waits until the replica has everything the primary wrote.
    pub fn wait_replicated(&self, primary: u16) {
        let start = Instant::now();
        loop {
            let offset = |port: u16, field: &str| -> Option<i64> {
                cli(port, &["INFO", "replication"])
                    .lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| v.trim().parse().ok())
            };
            let master = offset(primary, "master_repl_offset:");
            let replica = self
                .servers
                .iter()
                .filter(|s| s.port != primary)
                .find_map(|s| offset(s.port, "slave_repl_offset:"));
            if master.is_some() && master == replica {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "replication lag");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The process-wide `metrics` debugging recorder the tests read counters from: installed
/// on first use (before the stores and middlewares under test are built, which register
/// their handles when built). Every test of one binary shares it, so tests compare the
/// values before and after what they do, or each binary holds one metrics test.
pub mod metrics_capture {
    use std::sync::OnceLock;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

    fn snapshotter() -> &'static Snapshotter {
        static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
        SNAPSHOTTER.get_or_init(|| {
            let recorder = DebuggingRecorder::new();
            let snapshotter = recorder.snapshotter();
            recorder
                .install()
                .expect("no other metrics recorder in this test binary");
            snapshotter
        })
    }

    /// Installs the recorder (call before building what is measured).
    pub fn install() {
        let _ = snapshotter();
    }

    /// One metric of the current values.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Metric {
        /// The metric's name.
        pub name: String,
        /// Its labels, sorted by name.
        pub labels: Vec<(String, String)>,
        /// A counter's value, a gauge's value, or a histogram's number of samples.
        pub value: f64,
    }

    /// Every metric recorded so far (a histogram as its sample count since the last
    /// snapshot).
    pub fn snapshot() -> Vec<Metric> {
        snapshotter()
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let (_, key) = key.into_parts();
                let mut labels: Vec<(String, String)> = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                labels.sort();
                let value = match value {
                    DebugValue::Counter(n) => n as f64,
                    DebugValue::Gauge(g) => g.into_inner(),
                    DebugValue::Histogram(samples) => samples.len() as f64,
                };
                Metric {
                    name: key.name().to_owned(),
                    labels,
                    value,
                }
            })
            .collect()
    }

    /// The value of the counter `name` with exactly these labels in `snapshot` (0 when absent).
    pub fn value(snapshot: &[Metric], name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        want.sort();
        snapshot
            .iter()
            .filter(|m| m.name == name && m.labels == want)
            .map(|m| m.value)
            .sum()
    }
}

/// A `tracing` writer that keeps everything written to it, for tests that check what a
/// component logs (`tracing_subscriber::fmt().with_writer(captured.clone())`).
#[derive(Clone, Default, Debug)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut all) = self.0.lock() {
            all.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
