//! Which bucket a request belongs to: the key a rule's `key` names, read from the request.
//!
//! Keys are bytes: a header value that is not UTF-8 is a key like any other (two different values are
//! two buckets). The `path` key is the normalized path (`meshplug_common::path`), so `/a/../b`, `//b`
//! and `/%62` share `/b`'s bucket. IPv6 clients are keyed by a prefix (default /64).

use crate::config::KeySpec;
use meshplug_common::host::{parse_ip, source_ip, Request};
use meshplug_common::path::normalized_path;
use std::net::{IpAddr, Ipv6Addr};

/// Longest key kept: longer values (e.g. a hostile header) are hashed only up to here — they still
/// land in a bucket, and two values that share their first 1 KiB share a bucket.
pub const MAX_KEY_BYTES: usize = 1024;

/// The request's key for `spec`, or `None` when the request has no value for it (an absent or empty
/// header, no published claim, an unparsable address).
pub fn key_of(spec: &KeySpec, req: &dyn Request) -> Option<Vec<u8>> {
    let mut key = match spec {
        KeySpec::Global => return Some(Vec::new()),
        KeySpec::Header(name) => req.header(name).filter(|v| !v.is_empty())?,
        KeySpec::Path => normalized_path(&req.header(":path")?),
        KeySpec::Claim(name) => req.claim(name).filter(|v| !v.is_empty())?.into_bytes(),
        KeySpec::ClientIp { trusted_hops, ipv6_prefix } => {
            mask(client_ip(req, *trusted_hops)?, *ipv6_prefix).to_string().into_bytes()
        }
    };
    key.truncate(MAX_KEY_BYTES);
    Some(key)
}

/// `ip` with an IPv6 address cut to its first `prefix` bits (IPv4 addresses, and IPv4-mapped IPv6
/// ones, are kept whole).
pub fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let bits = u32::from(prefix.min(128));
            let keep = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & keep))
        }
    }
}

/// The client address: with `trusted_hops` = N > 0, the N-th address from the right of
/// `x-forwarded-for` (the one the outermost trusted proxy saw); with fewer entries than N, or N = 0,
/// the connection's source address. An entry that is not an IP address means no key.
pub fn client_ip(req: &dyn Request, trusted_hops: u32) -> Option<IpAddr> {
    if trusted_hops > 0 {
        if let Some(xff) = req.header("x-forwarded-for") {
            let xff = String::from_utf8_lossy(&xff);
            let entries: Vec<&str> = xff.split(',').map(str::trim).collect();
            let n = trusted_hops as usize;
            if entries.len() >= n {
                return entries.get(entries.len() - n).and_then(|e| parse_ip(e));
            }
        }
    }
    source_ip(req)
}

#[cfg(test)]
#[path = "tests/keys.rs"]
mod tests;
