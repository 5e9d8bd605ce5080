//! A Redis server (Debian's `redis-server`, installed by `scripts/setup`) on 127.0.0.1 with no
//! persistence, in a scratch directory: the rate limit service's counters in tests and in `meshplug up`
//! for compositions with global rules. Stopped and removed on drop.

use crate::lab::daemon::{Daemon, Spec};

pub struct RedisServer {
    daemon: Daemon,
    pub port: u16,
}

impl RedisServer {
    /// Starts Redis on a free port; returns once it accepts connections (at most 20 s).
    pub fn start() -> anyhow::Result<Self> {
        let daemon = Daemon::start(&Spec {
            name: "redis-server",
            paths: &["/usr/bin/redis-server", "/usr/sbin/redis-server"],
            package: "redis-server",
            args: &|dir, port| {
                let mut args: Vec<std::ffi::OsString> =
                    ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"].into_iter().map(Into::into).collect();
                args.extend(["--port".into(), port.to_string().into(), "--dir".into(), dir.as_os_str().to_owned()]);
                Ok(args)
            },
        })?;
        Ok(RedisServer { port: daemon.port, daemon })
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.daemon.port)
    }
}
