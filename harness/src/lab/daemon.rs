//! A helper program from a Debian package (`redis-server`, `docker-registry`, installed by
//! `scripts/setup`) run on 127.0.0.1 on a free port with a scratch directory: started, waited for until
//! it accepts connections, and stopped and removed on drop, also when a test fails.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a daemon may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Daemon {
    child: Child,
    pub port: u16,
    /// The scratch directory (removed on drop); the daemon's stderr is in `stderr.log` there.
    pub dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What to run: `name` for messages and the scratch directory, the binary's possible paths and its
/// Debian package, and its arguments for a scratch directory and port (written files go in the
/// directory).
pub struct Spec<'a> {
    pub name: &'a str,
    pub paths: &'a [&'a str],
    pub package: &'a str,
    pub args: &'a dyn Fn(&Path, u16) -> anyhow::Result<Vec<OsString>>,
}

impl Daemon {
    /// Starts the daemon on a free port; returns once it accepts connections (at most 20 s), or the
    /// reason it did not, with what it wrote on stderr when it exited.
    pub fn start(spec: &Spec) -> anyhow::Result<Self> {
        let bin = spec.paths.iter().find(|p| Path::new(p).exists()).ok_or_else(|| {
            anyhow::anyhow!("{} is not installed: scripts/setup installs Debian's {} package", spec.name, spec.package)
        })?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("meshplug-{}-{}-{port}", spec.name, std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let args = (spec.args)(&dir, port)?;
        let stderr = std::fs::File::create(dir.join("stderr.log"))?;
        let child = Command::new(bin).args(args).stdout(Stdio::null()).stderr(stderr).spawn()?;
        let mut daemon = Daemon { child, port, dir };
        let deadline = Instant::now() + START_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                let said = std::fs::read_to_string(daemon.dir.join("stderr.log")).unwrap_or_default();
                anyhow::bail!("{} exited ({status}) before accepting connections on port {port}: {said}", spec.name);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} did not accept connections on port {port} within {} s",
                spec.name,
                START_TIMEOUT.as_secs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }
}
