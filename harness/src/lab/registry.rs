//! A local OCI registry (Debian's `docker-registry`, installed by `scripts/setup`) on 127.0.0.1 with
//! its storage in a scratch directory: for the package/push tests and the Istio path's tests, which
//! push the built modules and let the emulated istio-agent pull them. Stopped and removed on drop.

use crate::lab::daemon::{Daemon, Spec};

pub struct Registry {
    daemon: Daemon,
    pub port: u16,
}

impl Registry {
    /// Starts a registry on a free port; returns once it accepts connections (at most 20 s).
    pub fn start() -> anyhow::Result<Self> {
        let daemon = Daemon::start(&Spec {
            name: "docker-registry",
            paths: &["/usr/bin/docker-registry", "/usr/sbin/docker-registry"],
            package: "docker-registry",
            args: &|dir, port| {
                std::fs::create_dir_all(dir.join("data"))?;
                let config = format!(
                    "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                    dir.join("data").display()
                );
                std::fs::write(dir.join("config.yml"), config)?;
                Ok(vec!["serve".into(), dir.join("config.yml").into_os_string()])
            },
        })?;
        Ok(Registry { port: daemon.port, daemon })
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.daemon.port)
    }
}
