//! Running the real Envoy: start it on free loopback ports with an admin listener, wait until it is
//! ready, read its stats, and stop it (and everything it started) when dropped, even when a test
//! panics. On failure, Envoy's log is part of the error (and printed when a test panics).

use crate::lab::client::Client;
use crate::lab::envoy::EnvoyBinary;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long Envoy may take to become ready (it compiles each Wasm module once per worker).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    pub binary: EnvoyBinary,
    /// Worker threads (`--concurrency`); the tests use 2 so that two workers share state.
    pub concurrency: u32,
    /// Envoy's `-l` log level; `info` shows the filters' configure and version lines.
    pub log_level: String,
    /// Pin Envoy to these CPUs (`taskset -c`), for benchmarks.
    pub cpus: Option<String>,
    /// Extra environment for the Envoy process (e.g. a test's `LD_PRELOAD` of libfaketime).
    pub env: Vec<(String, String)>,
}

impl EnvoyOptions {
    pub fn new(binary: EnvoyBinary) -> Self {
        Self { binary, concurrency: 2, log_level: "info".into(), cpus: None, env: Vec::new() }
    }
}

/// A running Envoy. Dropping it kills the process.
pub struct RunningEnvoy {
    child: Option<Child>,
    pub admin: SocketAddr,
    pub listener: SocketAddr,
    dir: PathBuf,
    admin_client: Client,
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

fn scratch_dir() -> anyhow::Result<PathBuf> {
    let n = RUNS.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("meshplug-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn spawn(binary: &Path, args: &[String], log: &Path, opts: &EnvoyOptions) -> anyhow::Result<Child> {
    let cpus = opts.cpus.as_deref();
    use std::os::unix::process::CommandExt;
    let log_file = std::fs::File::create(log)?;
    let mut cmd = match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus]).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    cmd.args(args).stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file);
    cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
    // If this process dies without running destructors (SIGKILL, abort), the kernel kills Envoy too.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    Ok(cmd.spawn()?)
}

/// Runs `envoy --mode validate` on a config; `Err` holds Envoy's output.
pub fn validate_config(binary: &EnvoyBinary, config_path: &Path) -> Result<(), String> {
    let out = Command::new(&binary.path)
        .args(["--mode", "validate", "--disable-hot-restart", "-l", "error", "-c"])
        .arg(config_path)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.path.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

impl RunningEnvoy {
    /// Writes `config` to a scratch directory and starts Envoy on it. Returns once `/ready` answers.
    pub fn start(config: &Value, opts: &EnvoyOptions) -> anyhow::Result<Self> {
        let dir = scratch_dir()?;
        let config_path = dir.join("envoy.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(config)?)?;
        let admin_path = dir.join("admin-address");
        let args: Vec<String> = vec![
            "-c".into(),
            config_path.display().to_string(),
            "--concurrency".into(),
            opts.concurrency.to_string(),
            "-l".into(),
            opts.log_level.clone(),
            "--disable-hot-restart".into(),
            "--admin-address-path".into(),
            admin_path.display().to_string(),
        ];
        let child = spawn(&opts.binary.path, &args, &dir.join("envoy.log"), opts)?;
        let mut envoy = RunningEnvoy {
            child: Some(child),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listener: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
            admin_client: Client::new("http://127.0.0.1:1")?,
        };
        envoy.wait_ready(&admin_path)?;
        Ok(envoy)
    }

    fn wait_ready(&mut self, admin_path: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                anyhow::bail!("Envoy exited ({status}) before it was ready. Its log:\n{}", self.log());
            }
            if Instant::now() > deadline {
                anyhow::bail!("Envoy was not ready after {READY_TIMEOUT:?}. Its log:\n{}", self.log());
            }
            let admin = std::fs::read_to_string(admin_path).ok().and_then(|s| s.trim().parse::<SocketAddr>().ok());
            if let Some(admin) = admin {
                if self.admin != admin {
                    self.admin = admin;
                    self.admin_client = Client::new(&format!("http://{admin}"))?;
                }
                if self.admin_client.get("/ready").map(|r| r.status == 200).unwrap_or(false) {
                    self.listener = self.find_listener()?;
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn find_listener(&self) -> anyhow::Result<SocketAddr> {
        let r = self.admin_client.get("/listeners?format=json")?;
        let v = r.json();
        let addr = &v["listener_statuses"][0]["local_address"]["socket_address"];
        let port = addr["port_value"].as_u64().ok_or_else(|| anyhow::anyhow!("no listener in {}", r.text()))?;
        Ok(SocketAddr::from(([127, 0, 0, 1], u16::try_from(port)?)))
    }

    /// The base URL of the listener, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.listener)
    }

    /// A client for the listener.
    pub fn client(&self) -> anyhow::Result<Client> {
        Client::new(&self.url())
    }

    /// Everything Envoy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// All counters and gauges from admin `/stats` (custom Wasm metrics as `wasmcustom.<name>`).
    pub fn stats(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let r = self.admin_client.get("/stats")?;
        Ok(r.text()
            .lines()
            .filter_map(|l| l.split_once(": "))
            .filter_map(|(k, v)| v.trim().parse::<u64>().ok().map(|v| (k.to_string(), v)))
            .collect())
    }

    /// One stat (0 when absent).
    pub fn stat(&self, name: &str) -> u64 {
        self.stats().ok().and_then(|s| s.get(name).copied()).unwrap_or(0)
    }

    /// Envoy's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Envoy's resident memory in bytes, from /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
    }

    /// Whether Envoy has exited (its status), without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits for the process to exit by itself (for `meshplug up`: Ctrl-C reaches Envoy too).
    pub fn wait(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let child = self.child.as_mut().ok_or_else(|| anyhow::anyhow!("Envoy is not running"))?;
        Ok(child.wait()?)
    }
}

impl Drop for RunningEnvoy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- Envoy log ({}) ----\n{}\n---- end of Envoy log ----", self.dir.display(), self.log());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
