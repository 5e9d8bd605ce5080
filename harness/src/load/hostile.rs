//! Hostile HTTP/1.1 requests as raw bytes (what no HTTP client library would send), for the end-to-end
//! tests and `meshplug soak`: a deterministic generator, a raw sender, and what in Envoy's log means a
//! Wasm VM failed.

use std::time::Duration;

/// Sends `request` as raw bytes on a new connection to `listener` and returns the response's
/// status (`None`: the connection closed or timed out without a status line). Bounded: 5 s per read,
/// at most 256 KiB read. For requests no HTTP client library would send (bytes outside UTF-8 and
/// control bytes in names and values, 60 KiB values, 100 repeated headers, chunked bodies with trailers).
pub fn raw_status(listener: std::net::SocketAddr, request: &[u8]) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(listener).ok()?;
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
