//! The four filters' request logic against hostile requests: never a panic, and the promises that
//! matter under attack (no identity without a verified token, a DENY path stays denied whatever its
//! spelling, a key never admits more than its burst, only configured variants are chosen, header-asked
//! faults stay within their bounds).

use crate::{bytes, config, header_pairs, path};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use meshplug_common::claims::CLAIMS_PROPERTY;
use meshplug_common::host::SeededRandom;
use meshplug_common::path::normalized_path;
use meshplug_common::reply::Action;
use meshplug_common::testing::{MemorySharedData, RecordingMetrics, TestRequest};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::LazyLock;
use std::time::Duration;

const NOW: u64 = 1_800_000_000;

fn request(p: Vec<u8>, headers: Vec<(String, Vec<u8>)>) -> TestRequest {
    let mut req = TestRequest::default();
    req.0.push((":method".into(), b"GET".to_vec()));
    req.0.push((":path".into(), p));
    req.0.push((":authority".into(), b"example.com".to_vec()));
    req.0.extend(headers);
    req
}

fn status(action: &Action) -> u16 {
    match action {
        Action::Continue => 200,
        Action::Respond(r) => r.status,
        Action::Pause { then: Some(r), .. } => r.status,
        Action::Pause { then: None, .. } => 200,
        // Only rate-limit's global rules ask a service; the properties here configure none.
        Action::Call(_) => 0,
    }
}

mod jwt_authz_props {
    use super::*;
    use jwt_authz::logic::{Env, JwtAuthz};
    use jwt_authz::testkit::{jwks, token, ISSUER};
    use jwt_authz::verify::NoCrypto;

    /// Valid tokens (minted once: RSA signing is slow), to be mutated.
    static VALID: LazyLock<Vec<String>> =
        LazyLock::new(|| ["RS256", "ES256", "EdDSA", "HS256"].iter().map(|a| token(a, NOW, "alice")).collect());

    thread_local! {
        static FILTER: JwtAuthz = {
        let config = json!({
            "jwtRules": [{
                "issuer": ISSUER, "audiences": ["payment-api"],
                "jwks": jwks(&["rsa", "p256", "ed25519", "hmac"]),
                "fromHeaders": [{"name": "authorization", "prefix": "Bearer "}, {"name": "x-token"}],
                "fromParams": ["access_token"], "fromCookies": ["session"],
                "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}, {"header": "x-groups", "claim": "groups"}],
            }],
            "policies": [
                {"name": "admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*", "/api/{*}/secret", "/x/{**}"]}}]}]},
                {"name": "banned", "action": "DENY", "rules": [{"when": [{"key": "request.headers[x-user]", "values": ["mallory"]}]}]},
            ],
        });
        JwtAuthz::from_json(config.to_string().as_bytes(), "props", &mut SeededRandom::new(1)).unwrap()
        };
    }

    fn run(req: &TestRequest) -> jwt_authz::logic::Outcome {
        let (metrics, shared) = (RecordingMetrics::default(), MemorySharedData::default());
        let env = Env { metrics: &metrics, crypto: &NoCrypto, shared: &shared, now: Duration::from_secs(NOW) };
        FILTER.with(|f| f.on_request(req, &env))
    }

    /// A valid token with one byte replaced, bytes inserted, or a segment swapped for junk.
    fn mutated_token() -> impl Strategy<Value = Vec<u8>> {
        (0..VALID.len(), any::<prop::sample::Index>(), any::<u8>(), 0u8..4, bytes()).prop_map(
            |(t, at, byte, how, junk)| {
                let mut t = VALID[t].clone().into_bytes();
                let i = at.index(t.len());
                match how {
                    0 => t[i] = byte,
                    1 => {
                        t.splice(i..i, junk);
                    }
                    2 => t.truncate(i),
                    _ => {
                        t.splice(i..i, URL_SAFE_NO_PAD.encode(&junk).into_bytes());
                    }
                }
                t
            },
        )
    }

    fn token_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            3 => mutated_token(),
            1 => bytes(),
            1 => (bytes(), bytes(), bytes()).prop_map(|(a, b, c)| {
                [URL_SAFE_NO_PAD.encode(a), URL_SAFE_NO_PAD.encode(b), URL_SAFE_NO_PAD.encode(c)].join(".").into_bytes()
            }),
        ]
    }

    /// Where a token goes: a header (with or without its prefix), the query, a cookie.
    fn placed(token: Vec<u8>, place: u8) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
        let with = |prefix: &[u8]| [prefix, &token].concat();
        match place {
            0 => (b"/api/pay".to_vec(), vec![("authorization".into(), with(b"Bearer "))]),
            1 => (b"/api/pay".to_vec(), vec![("x-token".into(), token)]),
            2 => ([b"/api/pay?access_token=".as_slice(), &token].concat(), vec![]),
            _ => (b"/api/pay".to_vec(), vec![("cookie".into(), with(b"a=1; session="))]),
        }
    }

    proptest! {
        #![proptest_config(config())]

        /// A forged or damaged token never yields an identity other than the one its issuer signed: the
        /// request is refused, or (a change the signature does not cover, e.g. in the header prefix) it
        /// carries the original claims.
        #[test]
        fn no_identity_without_a_verified_token(t in token_bytes(), place in 0u8..4,
                                                extra in header_pairs(&["authorization", "x-token", "cookie", "x-user"])) {
            let (p, mut headers) = placed(t, place);
            headers.extend(extra);
            let outcome = run(&request(p, headers));
            if let Some(published) = &outcome.publish_claims {
                prop_assert_eq!(status(&outcome.action), 200);
                let claims: Value = serde_json::from_slice(&published.json).unwrap();
                // The bundle's later stages read the parsed copy: it must be what the JSON says.
                prop_assert_eq!(&Value::Object((*published.claims).clone()), &claims);
                prop_assert_eq!(&claims["sub"], "alice");
                prop_assert_eq!(&claims["iss"], ISSUER);
            }
            for (name, value) in &outcome.set_headers {
                prop_assert!(value.bytes().all(|b| b >= 0x20 && b != 0x7f), "{name}: control byte written");
            }
        }

        /// A denied path is denied however it is spelled (dot segments, escapes, slashes, a query).
        #[test]
        fn a_denied_path_stays_denied(p in path(), extra in header_pairs(&["x-user", "cookie"])) {
            let p = [b"/".as_slice(), &p].concat();
            let normalized = normalized_path(&p);
            let outcome = run(&request(p, extra));
            if normalized.starts_with(b"/admin") {
                prop_assert_ne!(status(&outcome.action), 200, "normalized {:?}", String::from_utf8_lossy(&normalized));
            }
        }
    }
}

mod rate_limit_props {
    use super::*;
    use ::rate_limit::logic::{Env, RateLimit};

    proptest! {
        #![proptest_config(config())]

        /// Whatever the key bytes, one key never gets more than its burst at one instant, and key
        /// extraction from hostile headers, paths, addresses and claims never panics.
        #[test]
        fn a_key_never_gets_more_than_its_burst(
            key in bytes(), p in path(), source in bytes(), claims in bytes(),
            extra in header_pairs(&["x-user-id", "x-forwarded-for", "cookie"]), n in 1usize..12,
        ) {
            let rl = RateLimit::from_json(json!({"rules": [
                {"name": "user", "key": {"header": "x-user-id"}, "limits": [{"requests": 3, "per": "1m"}]},
                {"name": "ip", "key": {"clientIp": {"trustedHops": 1}}, "limits": [{"requests": 1000, "per": "1s"}]},
                {"name": "path", "key": {"path": {}}, "limits": [{"requests": 1000, "per": "1s"}]},
                {"name": "claim", "key": {"claim": "sub"}, "limits": [{"requests": 1000, "per": "1s"}]},
            ]}).to_string().as_bytes(), "props").unwrap();
            let (shared, metrics) = (MemorySharedData::default(), RecordingMetrics::default());
            rl.prepare(&shared, &mut SeededRandom::new(1));
            let mut headers = extra;
            headers.retain(|(k, _)| k != "x-user-id");
            headers.push(("x-user-id".into(), key));
            let req = request(p, headers)
                .with_property(&["source", "address"], &source)
                .with_property(&[CLAIMS_PROPERTY], &claims);
            let env = Env { shared: &shared, metrics: &metrics, now: Duration::from_secs(NOW) };
            let admitted = (0..n).filter(|_| rl.on_request(&req, &env).action == Action::Continue).count();
            prop_assert!(admitted <= 3, "{} admitted", admitted);
        }
    }
}

mod canary_props {
    use super::*;
    use ::canary::logic::Canary;

    thread_local! {
        static CANARY: Canary = Canary::from_json(json!({
            "header": "x-meshplug-variant",
            "rules": [{"match": [{"headers": {"x-version": {"exact": "v2"}}}], "variant": "canary"}],
            "split": {"stickyBy": {"cookie": "uid"}, "variants": [{"name": "stable", "weight": 90}, {"name": "canary", "weight": 10}],
                      "setCookie": {"name": "meshplug-variant", "maxAge": "24h"}},
            "override": {"header": "x-meshplug-override", "allowed": ["canary"]},
            "exposeVariant": true,
        }).to_string().as_bytes()).unwrap();
    }

    proptest! {
        #![proptest_config(config())]

        /// Only configured variants are chosen, the same request always gets the same one, and what is
        /// written to headers is header-safe.
        #[test]
        fn only_configured_variants_are_chosen(
            p in path(),
            headers in header_pairs(&["cookie", "x-version", "x-meshplug-override", "x-meshplug-variant"]),
            seed in any::<u64>(),
        ) {
            let req = request(p, headers);
            let metrics = RecordingMetrics::default();
            let d = CANARY.with(|c| c.on_request(&req, &mut SeededRandom::new(seed), &metrics));
            prop_assert!(d.variant == "stable" || d.variant == "canary");
            prop_assert_eq!(&d.route_header.1, &d.variant);
            let again = CANARY.with(|c| c.on_request(&req, &mut SeededRandom::new(seed), &metrics));
            prop_assert_eq!(again.variant, d.variant);
            for (_, v) in &d.response_headers {
                prop_assert!(v.bytes().all(|b| b >= 0x20 && b != 0x7f));
            }
        }
    }
}

mod fault_props {
    use super::*;
    use ::fault::logic::{Env, Fault, H_ABORT, H_ABORT_GRPC, H_ABORT_PCT, H_DELAY, H_DELAY_PCT};

    proptest! {
        #![proptest_config(config())]

        /// Header-asked faults stay within their bounds: a delay never beyond `maxDelay`, an abort status
        /// always a valid one; malformed values are ignored, never a panic.
        #[test]
        fn header_asked_faults_stay_within_bounds(
            p in path(), values in prop::collection::vec(bytes(), 5), seed in any::<u64>(),
            extra in header_pairs(&["x-test-fault"]),
        ) {
            let fault = Fault::from_json(json!({
                "rules": [{"match": [{"uri": {"prefix": "/flaky"}}], "abort": {"httpStatus": 503, "percentage": {"value": 50}}}],
                "headerControl": {"enabled": true, "maxDelay": "2s"},
            }).to_string().as_bytes(), "props").unwrap();
            let shared = MemorySharedData::default();
            fault.prepare(&shared);
            let mut headers = extra;
            for (name, v) in [H_DELAY, H_DELAY_PCT, H_ABORT, H_ABORT_GRPC, H_ABORT_PCT].iter().zip(values) {
                headers.push((name.to_string(), v));
            }
            let metrics = RecordingMetrics::default();
            let d = fault.on_request(&request(p, headers), &mut Env { random: &mut SeededRandom::new(seed), shared: &shared, metrics: &metrics });
            match &d.action {
                Action::Continue => {}
                Action::Respond(r) | Action::Pause { then: Some(r), .. } => {
                    prop_assert!((200..600).contains(&r.status), "status {}", r.status);
                    prop_assert!(r.grpc_status.is_none_or(|g| g <= 16));
                }
                Action::Pause { delay, then: None } => prop_assert!(delay <= &Duration::from_secs(2) && !delay.is_zero()),
                Action::Call(_) => prop_assert!(false, "fault never calls a service"),
            }
            if let Action::Pause { delay, .. } = &d.action {
                prop_assert!(delay <= &Duration::from_secs(2));
            }
        }
    }
}
