//! `meshplug-rls --config FILE [--config FILE ...] --redis redis://127.0.0.1:6379 [--listen 127.0.0.1:8081]`

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "meshplug-rls",
    about = "A rate limit service speaking Envoy's RateLimitService protocol, counting in Redis"
)]
struct Cli {
    /// envoyproxy/ratelimit config files (YAML, one domain per document).
    #[arg(long, required = true)]
    config: Vec<PathBuf>,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: std::net::SocketAddr,
    /// Prefix of the Redis keys.
    #[arg(long, default_value = "meshplug-rls:")]
    prefix: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let run = || -> anyhow::Result<()> {
        let mut domains = Vec::new();
        for f in &cli.config {
            let text = std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
            domains.extend(meshplug_rls::parse_config(&text).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?);
        }
        let running = meshplug_rls::start(domains, &cli.redis, cli.listen, &cli.prefix)?;
        println!("meshplug-rls listening on {} (Redis {})", running.addr, cli.redis);
        loop {
            std::thread::park();
        }
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshplug-rls: {e:#}");
            ExitCode::FAILURE
        }
    }
}
