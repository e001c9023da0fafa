//! Child processes of a run, and what /proc says about them.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

/// A spawned service process (killed on drop).
pub struct Proc {
    pub name: String,
    pub child: Child,
}

impl Proc {
    pub fn spawn(
        name: &str,
        bin: &Path,
        args: &[&str],
        env: &[(&str, String)],
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log_dir.join(format!("{name}.log")))?;
        let mut cmd = Command::new(bin);
        cmd.args(args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        cmd.env("RUST_LOG", std::env::var("WAGATE_BENCH_LOG").unwrap_or_else(|_| "warn".into()));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("spawning {}", bin.display()))?;
        Ok(Self { name: name.to_owned(), child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process already exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status}); see its log under the results folder", self.name);
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until `addr` accepts TCP connections while `proc` stays alive.
pub async fn wait_listening(proc: &mut Proc, addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        proc.check_alive()?;
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("{} did not listen on {addr} within {timeout:?}", proc.name);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Memory of a process, in KiB, from /proc/<pid>/status.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Mem {
    pub vm_hwm_kib: u64,
    pub vm_rss_kib: u64,
}

pub fn mem(pid: u32) -> Mem {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Mem { vm_hwm_kib: field("VmHWM:"), vm_rss_kib: field("VmRSS:") }
}

/// utime + stime of a process (or "self"), in clock ticks.
pub fn cpu_ticks(pid: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state (3rd).
    let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else { return 0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime is field 14, stime 15 (1-based) → index 11, 12 after ')'.
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// utime + stime summed over every process whose command name is `comm`
/// (e.g. all `postgres` backends, `redis-server`), in clock ticks.
pub fn cpu_ticks_by_comm(comm: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == comm))
        .map(|e| cpu_ticks(&e.file_name().to_string_lossy()))
        .sum()
}

/// Clock ticks per second (USER_HZ), 100 on Linux.
pub const TICKS_PER_SEC: f64 = 100.0;

/// Where the service binaries are: next to this executable.
pub fn bin_dir(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match explicit {
        Some(d) => d,
        None => std::env::current_exe()?.parent().context("executable folder")?.to_path_buf(),
    };
    for bin in ["control-plane", "edge-gateway", "wagate-worker"] {
        if !dir.join(bin).is_file() {
            bail!(
                "{} not found in {}: build the services first (`cargo build --release --workspace`)",
                bin,
                dir.display()
            );
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    #[test]
    fn proc_self_is_readable() {
        let m = super::mem(std::process::id());
        assert!(m.vm_rss_kib > 0 && m.vm_hwm_kib >= m.vm_rss_kib);
        let _ = super::cpu_ticks("self");
    }
}
