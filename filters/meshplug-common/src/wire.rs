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

/// Decodes a host map into owned pairs; `None` when the bytes are not a well-formed map. An empty
/// input is an empty map.
pub fn decode_map(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let map = HeaderMap::decode(bytes.to_vec())?;
    Some(map.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect())
}

/// A header map kept as the bytes the host handed over, with where each name and value lies in them:
/// two allocations however many headers there are, and names and values are read in place. A header
/// set later is appended to the bytes; a removed one leaves its bytes unused (a request changes a few
/// headers at most).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    bytes: Vec<u8>,
    pairs: Vec<(Span, Span)>,
}

/// Where a name or a value lies in [`HeaderMap`]'s bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    len: usize,
}

impl Span {
    /// The bytes it names (none if it lies outside `bytes`, which `decode` rules out).
    fn of(self, bytes: &[u8]) -> &[u8] {
        self.start.checked_add(self.len).and_then(|end| bytes.get(self.start..end)).unwrap_or(&[])
    }
}

impl HeaderMap {
    /// The map the host serialized into `bytes`; `None` when the bytes are not a well-formed map. An
    /// empty input is an empty map.
    pub fn decode(bytes: Vec<u8>) -> Option<Self> {
        if bytes.is_empty() {
            return Some(Self::default());
        }
        let count = read_u32(&bytes, 0)?;
        // Each pair takes at least 8 bytes of sizes and 2 NULs: a count beyond that is a lie.
        if count > bytes.len() / 10 {
            return None;
        }
        let mut pairs = Vec::with_capacity(count);
        let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
        let mut span = |len: usize| -> Option<Span> {
            let end = data.checked_add(len)?;
            (end <= bytes.len()).then_some(())?;
            let s = Span { start: data, len };
            // Past the NUL that ends each name and value.
            data = end.checked_add(1)?;
            Some(s)
        };
        for n in 0..count {
            let sizes = 4 + n * 8;
            let k = span(read_u32(&bytes, sizes)?)?;
            let v = span(read_u32(&bytes, sizes + 4)?)?;
            pairs.push((k, v));
        }
        Some(Self { bytes, pairs })
    }

    fn at(&self, s: Span) -> &[u8] {
        s.of(&self.bytes)
    }

    /// Every pair, in the host's order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.pairs.iter().map(|&(k, v)| (self.at(k), self.at(v)))
    }

    /// Every value of header `name` (ASCII case-insensitive), in order.
    pub fn values<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// Whether header `name` (ASCII case-insensitive) is present.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.values(name).next().is_some()
    }

    /// Removes every value of header `name` (ASCII case-insensitive).
    pub fn remove(&mut self, name: &[u8]) {
        let Self { bytes, pairs } = self;
        pairs.retain(|&(k, _)| !k.of(bytes).eq_ignore_ascii_case(name));
    }

    /// Adds a pair after the others.
    pub fn append(&mut self, name: &[u8], value: &[u8]) {
        let k = Span { start: self.bytes.len(), len: name.len() };
        self.bytes.extend_from_slice(name);
        let v = Span { start: self.bytes.len(), len: value.len() };
        self.bytes.extend_from_slice(value);
        self.pairs.push((k, v));
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
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
