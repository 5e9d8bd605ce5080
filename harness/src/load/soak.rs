//! `meshplug soak`: all four filters chained (examples/soak/composition.yaml) under steady load for
//! minutes, with hostile requests mixed in, then a report: requests per class with their answers, the
//! answers nobody intended, VM restarts, and Envoy's memory at the start and the end.
//!
//! Every ordinary request belongs to a class with the answer the composition gives it (a valid token →
//! 200, no token → 403, a damaged token → 401, ...); any other answer is *unintended*. Hostile requests
//! (`crate::load::hostile`: bytes outside UTF-8, control bytes, 60 KiB values, 100 repeated headers, chunked
//! bodies with trailers) may be refused by Envoy or a filter with any 4xx, or answered 200; a 5xx or a
//! dropped connection is unintended. A VM restart is a new `wasm.envoy.wasm.runtime.v8.created`, a
//! `wasm.<plugin>.vm_reload`, or a VM failure in Envoy's log.
//!
//! This is a benchmark-like command, not a test: it prints what it saw and says whether the targets
//! (0 unintended answers, 0 restarts, RSS growth < 5 %) were met.

use crate::deploy::composition::Composition;
use crate::deploy::filters::workspace_root;
use crate::lab::client::Req;
use crate::lab::local::{Lab, LabBuilder};
use crate::load::hostile::{hostile_request, raw_status, vm_failures, Rng};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub composition: PathBuf,
    pub envoy: Option<PathBuf>,
    pub duration: Duration,
    /// Concurrent ordinary requests (over as many connections).
    pub connections: usize,
    /// Hostile requests per 100 ordinary ones.
    pub hostile_percent: u64,
    /// Run the chain as one bundle module.
    pub bundle: bool,
    /// Memory is compared from the end of the warm-up (the first tenth of the run, at most a minute):
    /// Wasm linear memory and Envoy's allocators grow to a working size first and never shrink.
    pub warmup: Duration,
    pub seed: u64,
}

impl SoakOptions {
    pub fn new(duration: Duration) -> Self {
        Self {
            composition: workspace_root().join("examples/soak/composition.yaml"),
            envoy: None,
            duration,
            connections: 16,
            hostile_percent: 5,
            bundle: false,
            warmup: (duration / 10).min(Duration::from_secs(60)),
            seed: 1,
        }
    }
}

/// One class of ordinary request and the answers the soak composition gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// A signed-in user's GET: 200, routed to a variant.
    Ok,
    /// A signed-in user's POST with a 4 KiB body: 200.
    Post,
    /// `/slow`: 200 after the fault filter's 20 ms delay.
    Slow,
    /// `x-test-fault: abort`: 503 from the fault filter.
    Abort,
    /// No token: 403 (the ALLOW policy needs a principal).
    NoToken,
    /// A token whose signature was altered: 401.
    BadToken,
    /// A token with `role: banned`: 403 (DENY policy).
    Banned,
    /// `/flood`: 200 once per user, then 429.
    Flood,
}

impl Class {
    const ALL: [(Class, u64); 8] = [
        (Class::Ok, 70),
        (Class::Post, 5),
        (Class::Slow, 5),
        (Class::Abort, 4),
        (Class::NoToken, 4),
        (Class::BadToken, 4),
        (Class::Banned, 3),
        (Class::Flood, 5),
    ];

    fn intended(self, status: u16) -> bool {
        match self {
            Class::Ok | Class::Post | Class::Slow => status == 200,
            Class::Abort => status == 503,
            Class::NoToken | Class::Banned => status == 403,
            Class::BadToken => status == 401,
            Class::Flood => status == 200 || status == 429,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::Ok => "signed-in GET → 200",
            Class::Post => "signed-in POST 4 KiB → 200",
            Class::Slow => "/slow (20 ms delay) → 200",
            Class::Abort => "x-test-fault: abort → 503",
            Class::NoToken => "no token → 403",
            Class::BadToken => "altered signature → 401",
            Class::Banned => "role banned → 403",
            Class::Flood => "/flood → 200 then 429",
        }
    }
}

/// Answers of one class (or of the hostile requests): status → count (0 = no answer).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub statuses: BTreeMap<u16, u64>,
    pub unintended: u64,
}

impl Tally {
    fn add(&mut self, status: u16, intended: bool) {
        *self.statuses.entry(status).or_default() += 1;
        if !intended {
            self.unintended += 1;
        }
    }

    pub fn sent(&self) -> u64 {
        self.statuses.values().sum()
    }
}

/// What a soak saw.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    pub elapsed: Duration,
    pub classes: BTreeMap<Class, Tally>,
    pub hostile: Tally,
    /// `wasm.envoy.wasm.runtime.v8.created` grew by this much after start-up.
    pub vms_created: u64,
    /// Sum of every `wasm.<plugin>.vm_reload` stat.
    pub vm_reloads: u64,
    /// Lines in Envoy's log that mean a VM failed.
    pub vm_failure_lines: Vec<String>,
    pub rss_start: u64,
    pub rss_warm: u64,
    pub rss_end: u64,
    pub modules: String,
}

impl SoakReport {
    pub fn requests(&self) -> u64 {
        self.classes.values().map(Tally::sent).sum::<u64>() + self.hostile.sent()
    }

    pub fn unintended(&self) -> u64 {
        self.classes.values().map(|t| t.unintended).sum::<u64>() + self.hostile.unintended
    }

    pub fn restarts(&self) -> u64 {
        self.vms_created + self.vm_reloads + self.vm_failure_lines.len() as u64
    }

    /// RSS growth from the end of the warm-up to the end, in percent.
    pub fn rss_growth_percent(&self) -> f64 {
        if self.rss_warm == 0 {
            return 0.0;
        }
        (self.rss_end as f64 - self.rss_warm as f64) * 100.0 / self.rss_warm as f64
    }

    pub fn met_targets(&self) -> bool {
        self.unintended() == 0 && self.restarts() == 0 && self.rss_growth_percent() < 5.0
    }

    /// What `meshplug soak` prints: how it ran, [`SoakReport::table`], and whether the targets were met.
    pub fn summary(&self, opts: &SoakOptions) -> String {
        format!(
            "\nmeshplug soak --minutes {}{}: Envoy with 2 workers, {} connections, {} hostile per 100\n\n{}\n\
             \ntargets (0 unintended, 0 VM restarts, RSS growth < 5 %): {}",
            opts.duration.as_secs_f64() / 60.0,
            if opts.bundle { " --bundle" } else { "" },
            opts.connections,
            opts.hostile_percent,
            self.table(),
            if self.met_targets() { "met" } else { "MISSED" }
        )
    }

    /// The report as Markdown (what BENCHMARKS.md quotes).
    pub fn table(&self) -> String {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let statuses = |t: &Tally| {
            t.statuses
                .iter()
                .map(|(s, n)| format!("{}: {n}", if *s == 0 { "none".into() } else { s.to_string() }))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = String::from("| Class | requests | answers | unintended |\n| --- | ---: | --- | ---: |\n");
        for (class, t) in &self.classes {
            out.push_str(&format!("| {} | {} | {} | {} |\n", class.name(), t.sent(), statuses(t), t.unintended));
        }
        out.push_str(&format!(
            "| hostile (any 4xx or 200; not 5xx, not dropped) | {} | {} | {} |\n",
            self.hostile.sent(),
            statuses(&self.hostile),
            self.hostile.unintended
        ));
        out.push_str(&format!(
            "\n| Modules | elapsed | requests | req/s | unintended | VM restarts | RSS start | RSS after warm-up | RSS end | growth |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n\
             | {} | {:.0} s | {} | {:.0} | {} | {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:+.2} % |\n",
            self.modules,
            self.elapsed.as_secs_f64(),
            self.requests(),
            self.requests() as f64 / self.elapsed.as_secs_f64().max(0.001),
            self.unintended(),
            self.restarts(),
            mib(self.rss_start),
            mib(self.rss_warm),
            mib(self.rss_end),
            self.rss_growth_percent(),
        ));
        for line in self.vm_failure_lines.iter().take(5) {
            out.push_str(&format!("\nVM failure in Envoy's log: {line}"));
        }
        out
    }
}

/// Tokens for the classes that carry one (signed with the examples' demo key, valid for two hours).
struct Tokens {
    users: Vec<String>,
    banned: String,
    altered: String,
}

impl Tokens {
    fn mint(users: usize) -> anyhow::Result<Self> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        let mint = |sub: &str, extra: &[(&str, serde_json::Value)]| {
            let mut c = jwt_authz::testkit::claims(now, sub);
            c.insert("exp".into(), (now + 7200).into());
            for (k, v) in extra {
                c.insert((*k).into(), v.clone());
            }
            jwt_authz::testkit::mint("RS256", "rsa", Some("rsa-1"), c)
        };
        let users: Vec<String> = (0..users).map(|i| mint(&format!("user-{i}"), &[])).collect();
        let banned = mint("mallory", &[("role", "banned".into())]);
        // Flip one character in the middle of the signature: still base64url, no longer valid.
        let mut altered = mint("eve", &[]).into_bytes();
        let at = altered.len().saturating_sub(20);
        if let Some(b) = altered.get_mut(at) {
            *b = if *b == b'A' { b'B' } else { b'A' };
        }
        Ok(Self { users, banned, altered: String::from_utf8(altered)? })
    }
}

fn pick(rng: &mut Rng) -> Class {
    let total: u64 = Class::ALL.iter().map(|(_, w)| w).sum();
    let mut r = rng.next_u64() % total;
    for (class, w) in Class::ALL {
        if r < w {
            return class;
        }
        r -= w;
    }
    Class::Ok
}

fn request(class: Class, rng: &mut Rng, tokens: &Tokens, flood_user: &mut u64) -> Req {
    let user = rng.below(tokens.users.len());
    let bearer = |t: &str| format!("Bearer {t}");
    let token = tokens.users.get(user).map(String::as_str).unwrap_or_default();
    match class {
        Class::Ok => Req::get(&format!("/api/items/{}", rng.below(1000))).header("authorization", &bearer(token)),
        Class::Post => Req::post("/api/orders", &vec![b'x'; 4096]).header("authorization", &bearer(token)),
        Class::Slow => Req::get("/slow").header("authorization", &bearer(token)),
        Class::Abort => {
            Req::get("/api/items/1").header("authorization", &bearer(token)).header("x-test-fault", "abort")
        }
        Class::NoToken => Req::get("/api/items/1"),
        Class::BadToken => Req::get("/api/items/1").header("authorization", &bearer(&tokens.altered)),
        Class::Banned => Req::get("/api/items/1").header("authorization", &bearer(&tokens.banned)),
        Class::Flood => {
            // A few users flood: each gets its one request an hour, then 429s (the flood rule's key is
            // the verified `x-user`, and the per-sub rule never limits).
            *flood_user += 1;
            let flooder = (*flood_user / 50) as usize % tokens.users.len();
            Req::get("/flood")
                .header("authorization", &bearer(tokens.users.get(flooder).map(String::as_str).unwrap_or_default()))
        }
    }
}

fn wasm_stats(lab: &Lab) -> (u64, u64) {
    let stats = lab.envoy.stats().unwrap_or_default();
    let created = stats.get("wasm.envoy.wasm.runtime.v8.created").copied().unwrap_or(0);
    let reloads =
        stats.iter().filter(|(k, _)| k.starts_with("wasm.") && k.ends_with(".vm_reload")).map(|(_, v)| v).sum();
    (created, reloads)
}

/// Threads sending hostile requests (each waits for its answer on a new connection).
const HOSTILE_THREADS: u64 = 4;

/// Runs the soak and returns what it saw. Progress goes to stderr once a minute.
pub fn run(opts: &SoakOptions) -> anyhow::Result<SoakReport> {
    let composition = Composition::load(&opts.composition)?;
    let mut builder = LabBuilder::from_composition(&composition, None)?.bundled(opts.bundle);
    builder.envoy = opts.envoy.clone();
    builder.port = 0;
    builder.admin_port = 0;
    let lab = builder.start()?;
    let tokens = Tokens::mint(200)?;
    let client = lab.envoy.client()?.with_timeout(Duration::from_secs(10));

    let (created_start, reloads_start) = wasm_stats(&lab);
    let mut report = SoakReport {
        rss_start: lab.envoy.rss_bytes().unwrap_or(0),
        modules: if opts.bundle { "bundle (meshplug.wasm)".into() } else { "four modules".into() },
        ..SoakReport::default()
    };

    // Hostile requests on their own thread, each on a new connection, paced to `hostile_percent` of
    // the ordinary ones.
    let ordinary = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let hostile = Arc::new(Mutex::new(Tally::default()));
    let listener = lab.envoy.listener;
    let pacers = spawn_hostile(opts, listener, &ordinary, &stop, &hostile);

    let mut rng = Rng::new(opts.seed);
    let mut flood_user = 0u64;
    let start = Instant::now();
    let mut next_progress = Duration::from_secs(60);
    let mut warm_measured = false;
    while start.elapsed() < opts.duration {
        let batch: Vec<(Class, Req)> = (0..opts.connections * 16)
            .map(|_| {
                let class = pick(&mut rng);
                (class, request(class, &mut rng, &tokens, &mut flood_user))
            })
            .collect();
        let (classes, reqs): (Vec<Class>, Vec<Req>) = batch.into_iter().unzip();
        for (class, result) in classes.into_iter().zip(client.send_all(reqs, opts.connections)) {
            let status = result.map(|r| r.status).unwrap_or(0);
            report.classes.entry(class).or_default().add(status, class.intended(status));
            ordinary.fetch_add(1, Ordering::Relaxed);
        }
        if !warm_measured && start.elapsed() >= opts.warmup {
            report.rss_warm = lab.envoy.rss_bytes().unwrap_or(0);
            warm_measured = true;
        }
        if start.elapsed() >= next_progress {
            eprintln!(
                "soak: {:.0} s, {} ordinary requests, {} unintended, RSS {:.1} MiB",
                start.elapsed().as_secs_f64(),
                ordinary.load(Ordering::Relaxed),
                report.classes.values().map(|t| t.unintended).sum::<u64>(),
                lab.envoy.rss_bytes().unwrap_or(0) as f64 / 1048576.0
            );
            next_progress += Duration::from_secs(60);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for p in pacers {
        let _ = p.join();
    }
    report.elapsed = start.elapsed();
    report.rss_end = lab.envoy.rss_bytes().unwrap_or(0);
    if !warm_measured {
        report.rss_warm = report.rss_end;
    }
    report.hostile = hostile.lock().map(|t| t.clone()).unwrap_or_default();
    let (created_end, reloads_end) = wasm_stats(&lab);
    report.vms_created = created_end.saturating_sub(created_start);
    report.vm_reloads = reloads_end.saturating_sub(reloads_start);
    report.vm_failure_lines = vm_failures(&lab.envoy.log());
    Ok(report)
}

/// The hostile senders: [`HOSTILE_THREADS`] threads, each request on a new connection, paced to
/// `opts.hostile_percent` of the `ordinary` requests sent so far, tallied in `hostile`, until `stop`.
fn spawn_hostile(
    opts: &SoakOptions,
    listener: std::net::SocketAddr,
    ordinary: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
    hostile: &Arc<Mutex<Tally>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..HOSTILE_THREADS)
        .map(|thread| {
            let (ordinary, stop, hostile) = (ordinary.clone(), stop.clone(), hostile.clone());
            let (percent, seed) = (opts.hostile_percent, opts.seed ^ (0x5eed + thread));
            std::thread::spawn(move || {
                let mut rng = Rng::new(seed);
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if sent * 100 * HOSTILE_THREADS >= ordinary.load(Ordering::Relaxed) * percent {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    let status = raw_status(listener, &hostile_request(&mut rng)).unwrap_or(0);
                    let intended = status == 200 || (400..500).contains(&status);
                    if let Ok(mut t) = hostile.lock() {
                        t.add(status, intended);
                    }
                    sent += 1;
                }
            })
        })
        .collect()
}
