//! The request path as rules see it, and the query string and cookies, all on bytes.
//!
//! Every rule that looks at a path (`uri` matches, jwt-authz policy `paths`, rate-limit `path` keys)
//! compares the **normalized** path, so `/public/../admin`, `//admin`, `/%61dmin` and `/admin` are one
//! path to every filter, as they are to the upstream behind a sidecar. The normalization is Istio's
//! `MERGE_SLASHES` (Istio's `BASE` — Envoy's `normalize_path` — plus merged slashes), as documented at
//! <https://istio.io/latest/docs/reference/config/security/normalization/>:
//!
//! 1. A percent-escape of an unreserved character (`A-Z a-z 0-9 - . _ ~`) is decoded (`%61` → `a`,
//!    `%2e` → `.`); every other escape is kept, its hex digits upper-cased. `%25` (an escaped `%`) is
//!    never decoded, so `%2561` stays as it is (no double decoding), but an escape that decoding
//!    forms (`%%361` → `%61`) is decoded in turn: the result is a fixpoint, what an upstream that
//!    decodes the forwarded path once more would also see.
//!    `%2F` and `%5C` (escaped `/` and `\`) therefore stay escaped, as with Istio's default: they are
//!    decoded only by the sidecar option `DECODE_AND_MERGE_SLASHES`. A `%` not followed by two hex
//!    digits is kept as it is.
//! 2. A backslash is a slash (`\admin` → `/admin`), as Envoy's `normalize_path` does.
//! 3. Runs of slashes become one.
//! 4. Dot segments are removed (RFC 3986 §5.2.4): `/a/./b` → `/a/b`, `/a/../b` → `/b`, `/..` → `/`.
//!
//! The query string is not normalized (Istio does not), nor is any byte outside ASCII decoded: a path
//! with such bytes is compared as the bytes it has.

/// Splits `:path` into the path and the query string (without `?`); a fragment is dropped.
pub fn split_path(full: &[u8]) -> (&[u8], &[u8]) {
    let full = match full.iter().position(|b| *b == b'#') {
        Some(i) => full.get(..i).unwrap_or(full),
        None => full,
    };
    match full.iter().position(|b| *b == b'?') {
        Some(i) => (full.get(..i).unwrap_or(full), full.get(i + 1..).unwrap_or(&[])),
        None => (full, &[]),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes an escape of an unreserved character that `out` ends with (and any that this forms in
/// turn), or upper-cases the hex digits of another escape it ends with.
fn reduce_escape(out: &mut Vec<u8>) {
    loop {
        let n = out.len();
        let tail = match out.get(n.saturating_sub(3)..) {
            Some(&[b'%', hi, lo]) if n >= 3 => (hex_value(hi), hex_value(lo)),
            _ => return,
        };
        let (Some(hi), Some(lo)) = tail else { return };
        let c = hi * 16 + lo;
        out.truncate(n - 3);
        if unreserved(c) {
            out.push(c);
        } else {
            out.push(b'%');
            out.extend_from_slice(&[hex_digit(hi), hex_digit(lo)]);
            return;
        }
    }
}

fn hex_digit(v: u8) -> u8 {
    if v < 10 {
        b'0' + v
    } else {
        b'A' + v - 10
    }
}

/// The normalized form of a path (without its query string); see the module documentation.
pub fn normalize(path: &[u8]) -> Vec<u8> {
    // Steps 1 and 2: one pass over the bytes. The output is kept reduced as it grows: when the bytes
    // just written end in an escape of an unreserved character, it is decoded there and then, so an
    // escape that only forms after decoding (`%%361` → `%61` → `a`) is decoded too and the result is a
    // fixpoint (normalizing twice gives the same path), in time linear in the input.
    let mut decoded: Vec<u8> = Vec::with_capacity(path.len());
    for &b in path {
        decoded.push(if b == b'\\' { b'/' } else { b });
        reduce_escape(&mut decoded);
    }
    // Steps 3 and 4: split into segments (empty ones are merged slashes) and resolve dot segments.
    let absolute = decoded.first() == Some(&b'/');
    let trailing = decoded.last() == Some(&b'/')
        || decoded.ends_with(b"/.")
        || decoded.ends_with(b"/..")
        || decoded.as_slice() == b"."
        || decoded.as_slice() == b"..";
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in decoded.split(|b| *b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = Vec::with_capacity(decoded.len() + 1);
    if absolute {
        out.push(b'/');
    }
    for (n, s) in segments.iter().enumerate() {
        if n > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(s);
    }
    if trailing && !segments.is_empty() {
        out.push(b'/');
    }
    if out.is_empty() && (absolute || trailing) {
        out.push(b'/');
    }
    out
}

/// The normalized path of a full `:path` (query string and fragment left out).
pub fn normalized_path(full: &[u8]) -> Vec<u8> {
    normalize(split_path(full).0)
}

/// Every value of query parameter `name` in `query`, as sent (`?a` gives an empty value).
pub fn query_params<'q>(query: &'q [u8], name: &str) -> impl Iterator<Item = &'q [u8]> + 'q {
    let name = name.as_bytes().to_vec();
    query.split(|b| *b == b'&').filter_map(move |pair| {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (pair.get(..i).unwrap_or(pair), pair.get(i + 1..).unwrap_or(&[])),
            None => (pair, &[][..]),
        };
        (k == name.as_slice()).then_some(v)
    })
}

/// The first value of query parameter `name` in `query`, as sent.
pub fn query_param<'q>(query: &'q [u8], name: &str) -> Option<&'q [u8]> {
    query_params(query, name).next()
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or(&[])
}

/// Every value of cookie `name` in one `cookie` request header (`a=1; b=2`), as sent.
pub fn cookies<'h>(header: &'h [u8], name: &str) -> impl Iterator<Item = &'h [u8]> + 'h {
    let name = name.as_bytes().to_vec();
    header.split(|b| *b == b';').filter_map(move |pair| {
        let pair = trim(pair);
        let i = pair.iter().position(|b| *b == b'=')?;
        (pair.get(..i)? == name.as_slice()).then(|| pair.get(i + 1..).unwrap_or(&[]))
    })
}

/// Every value of cookie `name` across all of a request's `cookie` headers (HTTP/2 clients may send
/// cookies as several headers), as sent.
pub fn cookie_values<'h>(headers: &'h [Vec<u8>], name: &'h str) -> impl Iterator<Item = &'h [u8]> + 'h {
    headers.iter().flat_map(move |h| cookies(h, name))
}

/// The first value of cookie `name` in one `cookie` request header, as sent.
pub fn cookie<'h>(header: &'h [u8], name: &str) -> Option<&'h [u8]> {
    cookies(header, name).next()
}

#[cfg(test)]
#[path = "tests/path.rs"]
mod tests;
