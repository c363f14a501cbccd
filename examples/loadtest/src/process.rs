//! A server process under test: started on a free loopback port, waited for, watched
//! (alive? resident memory?) and killed on drop.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server binary running on `addr`, killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `binary --port P args…` with `env` (and without `REDIS_URL`/`SESSION_KEY`
    /// unless `env` sets them), then waits up to 30 s for `GET /healthz` to answer 200.
    pub async fn start(
        binary: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server, String> {
        let port = kv_test_support::free_port();
        let mut command = Command::new(binary);
        command
            .arg("--port")
            .arg(port.to_string())
            .args(args)
            .env_remove("REDIS_URL")
            .env_remove("SESSION_KEY")
            .env("RUST_LOG", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {binary}: {e}"))?;
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let started = Instant::now();
        loop {
            if let Ok(200) = server.status_of("/healthz").await {
                return Ok(server);
            }
            if !server.alive() {
                return Err(format!("{binary} exited before it answered /healthz"));
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("{binary} did not answer /healthz within 30 s"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the process is still running (a panic that ends it shows here).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and its high-water mark, in KiB (`/proc/PID/status`).
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// `GET path` on a fresh connection: the status.
    pub async fn status_of(&self, path: &str) -> Result<u16, String> {
        self.get(path).await.map(|(status, _)| status)
    }

    /// `GET path` on a fresh connection: status and body.
    pub async fn get(&self, path: &str) -> Result<(u16, bytes::Bytes), String> {
        let request = crate::get(path)
            .body(crate::empty())
            .map_err(|e| e.to_string())?;
        let reply = self.send(request).await?;
        Ok((reply.status.as_u16(), reply.body))
    }

    /// `request` on a fresh connection.
    pub async fn send(
        &self,
        request: http::Request<http_body_util::Full<bytes::Bytes>>,
    ) -> Result<crate::Reply, String> {
        crate::Conn::open(self.addr).await?.send(request).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` (`"STOP"`, `"CONT"`, …) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) -> Result<(), String> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .map_err(|e| format!("kill -{signal} {pid}: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("kill -{signal} {pid} failed"))
}
