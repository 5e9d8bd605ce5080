//! Helpers shared by the end-to-end tests: each test starts its own Envoy (two workers) with the
//! filters under test in front of echo upstreams, and drops it (stopping Envoy) at the end, even when
//! the test fails.

pub use meshplug_harness::client::{Client, Req, Resp};
pub use meshplug_harness::local::{Lab, LabBuilder};
use std::time::Duration;

/// Whether this test binary runs the filters inside the bundle (`meshplug.wasm`) instead of their own
/// modules. `tests/bundle.rs` includes the filters' end-to-end test files as modules, so the same cases
/// run both ways; the test binary's name (`bundle-<hash>`, chosen by cargo from the file name) says
/// which way this process runs them.
pub fn bundled() -> bool {
    static BUNDLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *BUNDLED.get_or_init(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().starts_with("bundle-")))
            .unwrap_or(false)
    })
}

/// A lab builder for this binary's packaging (see [`bundled`]).
pub fn builder() -> LabBuilder {
    Lab::builder().bundled(bundled())
}

/// Two echo upstreams, `stable` and `canary`, behind routes on the routing header canary writes
/// (`x-meshplug-variant: canary` → canary, else stable); the echo reply names the upstream that served.
pub fn with_variant_upstreams(builder: LabBuilder) -> LabBuilder {
    use meshplug_harness::composition::Upstream;
    builder
        .upstreams(vec![
            Upstream { name: "stable".into(), http2: false },
            Upstream { name: "canary".into(), http2: false },
        ])
        .route("/", &[("x-meshplug-variant", "canary")], "canary")
        .route("/", &[], "stable")
}

/// Starts a lab with one filter.
pub fn lab_with(filter: &str, plugin_config: serde_json::Value) -> Lab {
    match builder().filter(filter, plugin_config).start() {
        Ok(lab) => lab,
        Err(e) => panic!("could not start Envoy: {e:#}"),
    }
}

/// The log line a refused config of a lab's first filter produces (`[fault] invalid config at /rules/0`),
/// for this binary's packaging: inside the bundle the pointer starts at `/chain/0/config`.
pub fn refusal(line: &str) -> String {
    const AT: &str = " invalid config at ";
    match line.split_once(AT) {
        Some((prefix, rest)) if bundled() => format!("{prefix}{AT}/chain/0/config{rest}"),
        _ => line.to_string(),
    }
}

/// The start of the version line the module logs when its VM starts (`[fault] meshplug fault 0.1.0`).
pub fn version_line(filter: &str) -> String {
    if bundled() {
        format!("[meshplug] meshplug bundle {}", env!("CARGO_PKG_VERSION"))
    } else {
        format!("[{filter}] meshplug {filter} {}", env!("CARGO_PKG_VERSION"))
    }
}

/// The value of `meshplug.<filter>.<name>` in Envoy's admin stats.
pub fn metric(lab: &Lab, filter: &str, name: &str) -> u64 {
    lab.envoy.stat(&format!("wasmcustom.{}", meshplug_common_name(filter, name)))
}

fn meshplug_common_name(filter: &str, name: &str) -> String {
    format!("meshplug.{}.{}", filter.replace('-', "_"), name)
}

/// Polls `check` every 20 ms until it holds or `patience` runs out. The filters hand their counters
/// to Envoy once a second per worker, so a metric lags its response by up to a second.
pub fn eventually(patience: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + patience;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The median of some durations.
pub fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}

/// Starts Envoy with one filter whose config must be refused, and returns the error (with Envoy's log).
pub fn start_error(filter: &str, plugin_config: serde_json::Value) -> String {
    match builder().filter(filter, plugin_config).start() {
        Ok(_) => panic!("Envoy started with an invalid {filter} config"),
        Err(e) => format!("{e:#}"),
    }
}

/// Starts Envoy with each config of `filter`, which must be refused with the given log line (see
/// [`refusal`]) and without a VM panic.
pub fn assert_refused<'a>(filter: &str, cases: impl IntoIterator<Item = (serde_json::Value, &'a str)>) {
    for (config, expected) in cases {
        let log = start_error(filter, config);
        let expected = refusal(expected);
        assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");
        assert!(!log.contains("panic"), "{log}");
    }
}

/// Connections each of the two workers accepted (from the listener's per-worker stats).
pub fn per_worker_connections(lab: &Lab) -> Vec<u64> {
    let stats = lab.envoy.stats().unwrap_or_default();
    ["worker_0", "worker_1"]
        .iter()
        .map(|w| {
            let suffix = format!("{w}.downstream_cx_total");
            stats
                .iter()
                .filter(|(k, _)| k.starts_with("listener.127.0.0.1_") && k.ends_with(&suffix))
                .map(|(_, v)| *v)
                .sum()
        })
        .collect()
}

/// Sends `request` as raw bytes on a new connection to the lab's listener and returns the response's
/// status (`None`: the connection closed or timed out without a status line). Bounded: 5 s per read,
/// at most 256 KiB read. For requests no HTTP client library would send (bytes outside UTF-8 and
/// control bytes in names and values, 60 KiB values, 100 repeated headers, chunked bodies with trailers).
pub fn raw_status(lab: &Lab, request: &[u8]) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(lab.envoy.listener).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while buf.len() < 256 * 1024 && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
        }
    }
    let line = buf.split(|b| *b == b'\r').next()?;
    std::str::from_utf8(line).ok()?.split(' ').nth(1)?.parse().ok()
}

/// A small deterministic generator (xorshift64*), so a hostile run is the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// Up to `max` (exclusive) arbitrary bytes, as [`Rng::bytes`].
    pub fn bytes_upto(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
    /// `len` arbitrary bytes, never CR, LF or NUL (those end a header line in HTTP/1 framing; Envoy
    /// refuses the request before any filter sees it).
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| (self.next_u64() >> 24) as u8)
            .map(|b| if matches!(b, b'\r' | b'\n' | 0) { 0xff } else { b })
            .collect()
    }
}

/// Header names the filters read (tokens, cookies, keys, routing and fault control), plus arbitrary ones.
const HOSTILE_NAMES: [&str; 12] = [
    "authorization",
    "cookie",
    "user-agent",
    "x-user",
    "x-api-key",
    "x-meshplug-variant",
    "x-canary",
    "x-envoy-fault-delay-request",
    "x-envoy-fault-abort-request",
    "x-envoy-fault-abort-grpc-request",
    "x-forwarded-for",
    "x-test-fault",
];

/// One hostile HTTP/1.1 request, as raw bytes: odd paths and queries (dot segments, escapes, bytes
/// outside UTF-8), header names and values with bytes outside UTF-8 and control bytes, 60 KiB values,
/// 100 repeated headers, and chunked bodies with trailers.
pub fn hostile_request(rng: &mut Rng) -> Vec<u8> {
    let paths: [&[u8]; 10] = [
        b"/",
        b"/public/../admin",
        b"//admin",
        b"/%61dmin?access_token=a.b.c&access_token=x",
        b"/a/%2e%2e/%2F%5c/b",
        b"/\xe4\xb8/\xff?q=\xfe",
        b"/api/%zz%?%",
        b"/x?access_token=\xe4\xb8.x.y",
        b"/a\\b\\..\\c",
        b"/;/%00/%c0%ae%c0%ae/",
    ];
    let mut req = Vec::new();
    let methods: [&[u8]; 4] = [b"GET ", b"POST ", b"PUT ", b"OPTIONS "];
    let method = methods[rng.below(methods.len())];
    req.extend_from_slice(method);
    let path = paths[rng.below(paths.len())];
    req.extend_from_slice(path);
    if rng.below(3) == 0 {
        req.extend_from_slice(
            &rng.bytes_upto(40).iter().map(|b| if *b == b' ' { b'_' } else { *b }).collect::<Vec<_>>(),
        );
    }
    req.extend_from_slice(b" HTTP/1.1\r\nhost: hostile.test\r\n");
    for _ in 0..rng.below(8) {
        let name: Vec<u8> = match rng.below(5) {
            0 => std::iter::once(b'x')
                .chain(rng.bytes_upto(12))
                .map(|b| if b == b':' || b == b' ' { b'x' } else { b })
                .collect(),
            _ => HOSTILE_NAMES.get(rng.below(HOSTILE_NAMES.len())).map(|n| n.as_bytes().to_vec()).unwrap_or_default(),
        };
        let value = match rng.below(8) {
            0 => rng.bytes(60 * 1024),
            1 => b"Bearer \xe4\xb8.e30.sig".to_vec(),
            2 => b"session=\xff\xfe; session=x; canary=\xe4".to_vec(),
            3 => b"\xe4\xb8".to_vec(),
            _ => rng.bytes_upto(64),
        };
        let repeat = if rng.below(10) == 0 { 100 } else { 1 };
        for _ in 0..repeat {
            req.extend_from_slice(&name);
            req.extend_from_slice(b": ");
            req.extend_from_slice(&value);
            req.extend_from_slice(b"\r\n");
        }
    }
    if rng.below(3) == 0 {
        req.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
        let body = rng.bytes_upto(300);
        req.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        req.extend_from_slice(&body);
        req.extend_from_slice(b"\r\n0\r\nx-trailer: ");
        req.extend_from_slice(&rng.bytes_upto(40));
        req.extend_from_slice(b"\r\n\r\n");
    } else {
        req.extend_from_slice(b"connection: close\r\n\r\n");
    }
    req
}

/// Lines in Envoy's log that mean a Wasm VM failed (a trap, a panic, a failed callback).
pub fn vm_failures(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("panic")
                || l.contains("runtimeerror")
                || l.contains("wasm vm") && l.contains("fail")
                || l.contains("failed: uncaught")
                || l.contains("unreachable")
        })
        .map(str::to_string)
        .collect()
}
