//! Global rules: the messages of Envoy's rate limit service protocol (`envoy.service.ratelimit.v3`,
//! `RateLimitService.ShouldRateLimit`), written and read with `meshplug_common::proto`. Only the fields
//! the filter uses are read; the reader refuses anything malformed (a garbage answer is a service
//! error, never a panic or a silent pass).

use meshplug_common::proto::{Field, Malformed, Reader, Writer};

pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
pub const METHOD: &str = "ShouldRateLimit";

/// `RateLimitResponse.Code`.
pub const CODE_OK: u64 = 1;
pub const CODE_OVER_LIMIT: u64 = 2;

/// One descriptor to send: its entries and its hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub entries: Vec<(String, String)>,
    pub hits_addend: Option<u32>,
}

/// `RateLimitRequest { domain = 1; repeated RateLimitDescriptor descriptors = 2; uint32 hits_addend = 3 }`
/// with `RateLimitDescriptor { repeated Entry entries = 1 {key = 1; value = 2}; UInt64Value hits_addend = 3 }`.
/// When every descriptor has the same `hits_addend`, it is also the request's: services that read only
/// the request's (Limitador: limitador-server/src/envoy_rls/server.rs) count it too.
pub fn encode_request(domain: &str, descriptors: &[Descriptor]) -> Vec<u8> {
    let mut req = Writer::default();
    req.bytes(1, domain.as_bytes());
    let shared = descriptors
        .first()
        .and_then(|d| d.hits_addend)
        .filter(|h| descriptors.iter().all(|d| d.hits_addend == Some(*h)));
    for d in descriptors {
        let mut desc = Writer::default();
        for (k, v) in &d.entries {
            let mut entry = Writer::default();
            entry.bytes(1, k.as_bytes()).bytes(2, v.as_bytes());
            desc.message(1, &entry.bytes);
        }
        if let Some(h) = d.hits_addend {
            let mut value = Writer::default();
            value.uint(1, u64::from(h));
            desc.message(3, &value.bytes);
        }
        req.message(2, &desc.bytes);
    }
    if let Some(h) = shared {
        req.uint(3, u64::from(h));
    }
    req.bytes
}

/// What the filter reads of one `DescriptorStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub code: u64,
    /// `current_limit.requests_per_unit`, when the service says.
    pub limit: Option<u32>,
    pub remaining: u32,
    /// `duration_until_reset`, in whole seconds rounded up.
    pub reset_secs: Option<u64>,
}

/// What the filter reads of a `RateLimitResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub overall_code: u64,
    pub statuses: Vec<Status>,
    pub response_headers: Vec<(String, String)>,
    pub request_headers: Vec<(String, String)>,
    pub raw_body: Vec<u8>,
}

fn u32_of(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn text(b: &[u8]) -> Result<String, Malformed> {
    String::from_utf8(b.to_vec()).map_err(|_| Malformed)
}

fn header(bytes: &[u8]) -> Result<(String, String), Malformed> {
    let (mut key, mut value) = (String::new(), String::new());
    for f in Reader::new(bytes) {
        match f? {
            Field::Bytes(1, b) => key = text(b)?,
            Field::Bytes(2, b) => value = text(b)?,
            Field::Bytes(3, b) if value.is_empty() => value = text(b)?,
            _ => {}
        }
    }
    Ok((key, value))
}

fn status(bytes: &[u8]) -> Result<Status, Malformed> {
    let mut s = Status::default();
    for f in Reader::new(bytes) {
        match f? {
            Field::Varint(1, code) => s.code = code,
            Field::Bytes(2, limit) => {
                let mut rpu = 0;
                for f in Reader::new(limit) {
                    if let Field::Varint(1, v) = f? {
                        rpu = v;
                    }
                }
                s.limit = Some(u32_of(rpu));
            }
            Field::Varint(3, v) => s.remaining = u32_of(v),
            Field::Bytes(4, d) => {
                let (mut secs, mut nanos) = (0u64, 0u64);
                for f in Reader::new(d) {
                    match f? {
                        Field::Varint(1, v) => secs = v,
                        Field::Varint(2, v) => nanos = v,
                        _ => {}
                    }
                }
                // Negative values arrive as huge varints: a reset that far away is nonsense, so cap it.
                let secs = secs.min(u64::from(u32::MAX));
                s.reset_secs = Some(secs + u64::from(nanos > 0 && nanos < 1_000_000_000));
            }
            _ => {}
        }
    }
    Ok(s)
}

/// Reads a `RateLimitResponse`. `Err` for anything malformed, including text fields that are not UTF-8.
pub fn decode_response(bytes: &[u8]) -> Result<Response, Malformed> {
    let mut r = Response::default();
    for f in Reader::new(bytes) {
        match f? {
            Field::Varint(1, code) => r.overall_code = code,
            Field::Bytes(2, b) => r.statuses.push(status(b)?),
            Field::Bytes(3, b) => r.response_headers.push(header(b)?),
            Field::Bytes(4, b) => r.request_headers.push(header(b)?),
            Field::Bytes(5, b) => r.raw_body = b.to_vec(),
            _ => {}
        }
    }
    Ok(r)
}

/// Headers a service may not set: they frame the message or steer the hop (RFC 9110 §7.6.1's
/// connection-specific fields, `content-length`, `host`). A service asking for one is misbehaving or
/// hostile; honouring it could desynchronise the connection (`content-length`, `transfer-encoding`)
/// or re-route the request (`host`). Pseudo-headers (`:authority`, `:path`, …) never pass
/// [`safe_header`]'s name check.
pub const REFUSED_HEADERS: [&str; 10] = [
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A header the service asked for is used only if its name is a lower-case token (so no pseudo-header),
/// not one of [`REFUSED_HEADERS`], and its value has no control characters (no response splitting
/// through a misbehaving service).
pub fn safe_header((name, value): &(String, String)) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && !REFUSED_HEADERS.contains(&name.as_str())
        && value.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// The headers of `asked` that are [`safe_header`]s, and how many were dropped.
pub fn usable_headers(asked: Vec<(String, String)>) -> (Vec<(String, String)>, usize) {
    let total = asked.len();
    let usable: Vec<(String, String)> = asked.into_iter().filter(safe_header).collect();
    let dropped = total - usable.len();
    (usable, dropped)
}

/// A request value as a descriptor value: protobuf strings must be UTF-8, so bytes that are not are
/// written `%XX` (and `%` itself `%25`): two different values stay two different counters.
pub fn descriptor_value(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.contains('%') => s.to_string(),
        _ => {
            let mut out = String::with_capacity(bytes.len());
            for chunk in bytes.utf8_chunks() {
                for c in chunk.valid().chars() {
                    if c == '%' {
                        out.push_str("%25");
                    } else {
                        out.push(c);
                    }
                }
                for b in chunk.invalid() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            out
        }
    }
}

#[cfg(test)]
#[path = "tests/global.rs"]
mod tests;
