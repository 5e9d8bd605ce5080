//! The proxy-wasm ABI's serialized forms (header maps, property paths), encoded and decoded without
//! assuming UTF-8 and without any way to panic: the host hands over bytes, and a map that does not
//! parse is treated as empty (`None`), never trusted. Pure, so it is property-tested natively.
//!
//! A map is `count: u32`, then per pair `name_len: u32, value_len: u32`, then per pair
//! `name NUL value NUL` (all integers little-endian).

/// Encodes header pairs for the host.
pub fn encode_map(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let size = 4 + pairs.iter().map(|(k, v)| k.len() + v.len() + 10).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&len32(pairs.len()).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&len32(k.len()).to_le_bytes());
        out.extend_from_slice(&len32(v.len()).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    let word = <[u8; 4]>::try_from(b).ok()?;
    usize::try_from(u32::from_le_bytes(word)).ok()
}

/// Decodes a host map; `None` when the bytes are not a well-formed map. An empty input is an empty map.
pub fn decode_map(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = read_u32(bytes, 0)?;
    // Each pair takes at least 8 bytes of sizes and 2 NULs: a count beyond that is a lie.
    if count > bytes.len() / 10 {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
    for n in 0..count {
        let sizes = 4 + n * 8;
        let klen = read_u32(bytes, sizes)?;
        let vlen = read_u32(bytes, sizes + 4)?;
        let k = bytes.get(data..data.checked_add(klen)?)?.to_vec();
        data = data.checked_add(klen)?.checked_add(1)?;
        let v = bytes.get(data..data.checked_add(vlen)?)?.to_vec();
        data = data.checked_add(vlen)?.checked_add(1)?;
        pairs.push((k, v));
    }
    Some(pairs)
}

/// Encodes a property path (`["source", "address"]` → `source\0address`).
pub fn encode_path(path: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.iter().map(|p| p.len() + 1).sum());
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(part.as_bytes());
    }
    out
}

#[cfg(test)]
#[path = "tests/wire.rs"]
mod tests;
