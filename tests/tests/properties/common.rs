//! meshplug-common: path normalization, query strings and cookies, the host's map encoding, matchers,
//! published claims.

use crate::{bytes, config, header_pairs, path};
use meshplug_common::claims::claim_value;
use meshplug_common::config::parse_value;
use meshplug_common::matching::{MatchList, StringMatch};
use meshplug_common::path::{cookies, normalize, normalized_path, query_params, split_path};
use meshplug_common::testing::TestRequest;
use meshplug_common::wire::{decode_map, encode_map, HeaderMap};
use proptest::prelude::*;
use serde_json::json;

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Whether `outer` contains `inner` as a sub-slice of the same memory (a parser returned part of its input).
fn within(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

proptest! {
    #![proptest_config(config())]

    /// Normalizing is a fixpoint, and its output has no merged slashes, no dot segments, no backslash
    /// and no escape of an unreserved character left: what every rule compares.
    #[test]
    fn normalized_paths_are_canonical(p in path()) {
        let n = normalize(&p);
        prop_assert_eq!(normalize(&n), n.clone(), "not a fixpoint for {:?}", String::from_utf8_lossy(&p));
        prop_assert!(!n.windows(2).any(|w| w == b"//"));
        prop_assert!(!n.contains(&b'\\'));
        prop_assert!(n.split(|b| *b == b'/').all(|s| s != b"." && s != b".."));
        for w in n.windows(3) {
            if let (b'%', Some(h), Some(l)) = (w[0], hex(w[1]), hex(w[2])) {
                prop_assert!(!unreserved(h * 16 + l), "escape of an unreserved character left");
                prop_assert!(!w[1].is_ascii_lowercase() && !w[2].is_ascii_lowercase());
            }
        }
        if p.first() == Some(&b'/') || p.first() == Some(&b'\\') {
            prop_assert_eq!(n.first(), Some(&b'/'));
        }
    }

    /// Escaped and literal forms of unreserved characters are one path.
    #[test]
    fn escaping_an_unreserved_character_does_not_change_the_path(p in path(), at in any::<prop::sample::Index>()) {
        let Some(i) = (!p.is_empty()).then(|| at.index(p.len())) else { return Ok(()) };
        if !unreserved(p[i]) {
            return Ok(());
        }
        let mut escaped = p[..i].to_vec();
        escaped.extend_from_slice(format!("%{:02x}", p[i]).as_bytes());
        escaped.extend_from_slice(&p[i + 1..]);
        // A `%` just before the new escape may combine with it once decoded: both forms still decode
        // to the same fixpoint.
        prop_assert_eq!(normalize(&escaped), normalize(&p));
    }

    /// The path and the query are parts of `:path`; the query never leaks into the normalized path.
    #[test]
    fn split_path_returns_parts_of_its_input(p in path()) {
        let (path, query) = split_path(&p);
        prop_assert!(within(&p, path) && within(&p, query));
        prop_assert!(!path.contains(&b'?') && !path.contains(&b'#') && !query.contains(&b'#'));
        prop_assert_eq!(normalized_path(&p), normalize(path));
    }

    /// Query parameters and cookies are pieces of their input, split where they must be.
    #[test]
    fn query_params_and_cookies_are_pieces_of_their_input(input in bytes(), name in "[a-z_]{0,3}") {
        for v in query_params(&input, &name) {
            prop_assert!(within(&input, v) && !v.contains(&b'&'));
        }
        for v in cookies(&input, &name) {
            prop_assert!(within(&input, v) && !v.contains(&b';'));
        }
    }

    /// The host's map encoding: what we encode decodes to the same pairs; any bytes decode or are
    /// refused, never panic, and what decodes re-encodes to a prefix-compatible map. `HeaderMap` reads
    /// the same pairs in place, and changed keeps what Envoy's map would hold.
    #[test]
    fn header_maps_round_trip(pairs in prop::collection::vec((bytes(), bytes()), 0..8), junk in bytes(),
                              name in bytes(), value in bytes(), pick in 0usize..8) {
        let refs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
        prop_assert_eq!(decode_map(&encode_map(&refs)), Some(pairs.clone()));
        // Set (remove every value, then add one) a header that is there, or a new one.
        let name = pairs.get(pick).map(|(k, _)| k.to_ascii_uppercase()).unwrap_or(name);
        let mut map = HeaderMap::decode(encode_map(&refs)).unwrap();
        map.remove(&name);
        map.append(&name, &value);
        let mut model = pairs.clone();
        model.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
        model.push((name.clone(), value.clone()));
        let changed: Vec<(Vec<u8>, Vec<u8>)> = map.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        prop_assert_eq!(changed, model);
        if let Some(decoded) = decode_map(&junk) {
            let refs: Vec<(&[u8], &[u8])> = decoded.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
            let again = encode_map(&refs);
            prop_assert_eq!(decode_map(&again), Some(decoded));
        }
    }

    /// `exact` and `prefix` compare bytes; a regex never panics on bytes that are not UTF-8.
    #[test]
    fn string_matches_compare_bytes(value in bytes(), wanted in "[a-z/%.\u{e4}]{0,6}", re in "[a-z.*+?|()\\[\\]^$]{0,8}") {
        let exact: StringMatch = parse_value(&json!({"exact": wanted})).unwrap();
        let prefix: StringMatch = parse_value(&json!({"prefix": wanted})).unwrap();
        prop_assert_eq!(exact.matches(&value), value == wanted.as_bytes());
        prop_assert_eq!(prefix.matches(&value), value.starts_with(wanted.as_bytes()));
        if let Ok(regex) = parse_value::<StringMatch>(&json!({"regex": re})) {
            let _ = regex.matches(&value);
        }
    }

    /// A whole `HTTPMatchRequest` against a hostile request: never panics, and a `uri` match compares
    /// the normalized path.
    #[test]
    fn match_requests_see_the_normalized_path(
        p in path(),
        headers in header_pairs(&["x-user", "x-debug", "cookie", ":method", ":authority", ":scheme"]),
        wanted in "/[a-z]{0,3}",
    ) {
        let list: MatchList = parse_value(&json!([
            {"uri": {"exact": wanted}},
            {"uri": {"prefix": "/ad"}, "ignoreUriCase": true, "method": {"regex": "G.*"},
             "headers": {"x-user": {"regex": "[a-z]+"}, "x-debug": {"present": true}},
             "withoutHeaders": {"x-internal": {"exact": "1"}}, "queryParams": {"v": {"prefix": "2"}},
             "authority": {"prefix": "exa"}, "scheme": {"exact": "http"}},
        ])).unwrap();
        let mut req = TestRequest::default();
        req.0.push((":path".into(), p.clone()));
        req.0.extend(headers);
        let _ = list.matches(&req);
        let uri_only: MatchList = parse_value(&json!([{"uri": {"exact": wanted}}])).unwrap();
        prop_assert_eq!(uri_only.matches(&req), normalized_path(&p) == wanted.as_bytes());
    }

    /// However often a header is repeated and whatever its values, a header match judges what Envoy's
    /// route matching and RBAC judge (`getAllOfHeaderAsString`): the values joined with `,`. So the
    /// same request with the header sent once, already joined, matches the same way, and a suffix DENY
    /// (`*-legacy`) catches the value wherever it stands.
    #[test]
    fn repeated_headers_match_as_their_joined_values(
        values in prop::collection::vec(bytes(), 1..5),
        others in header_pairs(&["x-user", ":method"]),
        suffix in "-[a-z]{0,4}",
    ) {
        let list: MatchList = parse_value(&json!([
            {"headers": {"x-client": {"regex": format!(".*{suffix}")}}},
            {"headers": {"x-client": {"prefix": "web"}}, "withoutHeaders": {"x-client": {"exact": "web"}}},
        ])).unwrap();
        let mut repeated = TestRequest::new("GET", "/");
        repeated.0.extend(others.iter().filter(|(k, _)| k != "x-client").cloned());
        let mut once = TestRequest(repeated.0.clone(), Vec::new());
        for v in &values {
            repeated.0.push(("x-client".into(), v.clone()));
        }
        let joined = values.join(&b',');
        once.0.push(("x-client".into(), joined.clone()));
        prop_assert_eq!(list.matches(&repeated), list.matches(&once));
        let last_has_suffix = values.last().is_some_and(|v| v.ends_with(suffix.as_bytes()));
        if last_has_suffix && !joined.contains(&b'\n') {
            let deny: MatchList = parse_value(&json!([{"headers": {"x-client": {"regex": format!(".*{suffix}")}}}])).unwrap();
            prop_assert!(deny.matches(&repeated), "the suffix of the last value is the suffix of the joined header");
        }
    }

    /// A claim read from published claims (bytes from filter state) never panics.
    #[test]
    fn claims_are_read_from_any_bytes(published in bytes(), name in "[a-z.]{0,6}") {
        let _ = claim_value(&published, &name);
    }
}
