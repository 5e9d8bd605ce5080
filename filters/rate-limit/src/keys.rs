//! Which bucket a request belongs to: the key a rule's `key` names, read from the request.

use crate::config::KeySpec;
use meshplug_common::claims::{claim_value, CLAIMS_PROPERTY};
use meshplug_common::host::{parse_ip, source_ip, Request};
use meshplug_common::matching::split_path;
use std::net::IpAddr;

/// Longest key kept: longer values (e.g. a hostile header) are hashed only up to here — they still
/// land in a bucket, and two values that share their first 1 KiB share a bucket.
pub const MAX_KEY_BYTES: usize = 1024;

/// The request's key for `spec`, or `None` when the request has no value for it (an absent or empty
/// header, no published claim, an unparsable address).
pub fn key_of(spec: &KeySpec, req: &dyn Request) -> Option<Vec<u8>> {
    let mut key = match spec {
        KeySpec::Global => return Some(Vec::new()),
        KeySpec::Header(name) => req.header(name).filter(|v| !v.is_empty())?.into_bytes(),
        KeySpec::Path => {
            let full = req.header(":path")?;
            split_path(&full).0.as_bytes().to_vec()
        }
        KeySpec::Claim(name) => {
            let published = req.property(&[CLAIMS_PROPERTY])?;
            claim_value(&published, name).filter(|v| !v.is_empty())?.into_bytes()
        }
        KeySpec::ClientIp { trusted_hops } => client_ip(req, *trusted_hops)?.to_string().into_bytes(),
    };
    key.truncate(MAX_KEY_BYTES);
    Some(key)
}

/// The client address: with `trusted_hops` = N > 0, the N-th address from the right of
/// `x-forwarded-for` (the one the outermost trusted proxy saw); with fewer entries than N, or N = 0,
/// the connection's source address. An entry that is not an IP address means no key.
pub fn client_ip(req: &dyn Request, trusted_hops: u32) -> Option<IpAddr> {
    if trusted_hops > 0 {
        if let Some(xff) = req.header("x-forwarded-for") {
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
