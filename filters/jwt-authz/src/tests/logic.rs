//! Tests of `logic`: tokens minted at test time for every algorithm, hostile tokens, claims checks,
//! policies, outputs and the cache — with the pure-Rust verifier (no host crypto).

use super::*;
use crate::testkit::{self, claims, jwks, kid_of, mint, raw, token, token_with, ALGS, ISSUER};
use crate::verify::NoCrypto;
use meshplug_common::host::SeededRandom;
use meshplug_common::testing::{MemorySharedData, RecordingMetrics, TestRequest};
use serde_json::{json, Value};

const NOW: u64 = 1_800_000_000;

struct Host {
    metrics: RecordingMetrics,
    shared: MemorySharedData,
    now: Duration,
}

impl Host {
    fn new() -> Self {
        Self {
            metrics: RecordingMetrics::default(),
            shared: MemorySharedData::default(),
            now: Duration::from_secs(NOW),
        }
    }
    fn run(&self, f: &JwtAuthz, req: &TestRequest) -> Outcome {
        f.on_request(req, &Env { metrics: &self.metrics, crypto: &NoCrypto, shared: &self.shared, now: self.now })
    }
    fn invalid(&self, r: Reason) -> u64 {
        self.metrics.get(invalid_metric(r))
    }
}

fn filter(extra: Value) -> JwtAuthz {
    let mut config = json!({
        "jwtRules": [{"issuer": ISSUER, "audiences": ["payment-api"],
                      "jwks": jwks(&["rsa", "p256", "p384", "ed25519", "hmac"])}]
    });
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    JwtAuthz::from_json(config.to_string().as_bytes(), "test", &mut SeededRandom::new(3)).unwrap()
}

fn bearer(t: &str) -> TestRequest {
    TestRequest::new("GET", "/api/pay").with("authorization", &format!("Bearer {t}"))
}

fn status(o: &Outcome) -> u16 {
    match &o.action {
        Action::Continue => 200,
        Action::Respond(r) => r.status,
        Action::Pause { .. } | Action::Call(_) => 0,
    }
}

#[test]
fn every_algorithm_verifies_and_publishes_claims() {
    let h = Host::new();
    let f = filter(json!({}));
    for alg in ALGS {
        let o = h.run(&f, &bearer(&token(alg, NOW, "alice")));
        assert_eq!(status(&o), 200, "{alg}");
        let published: Value = serde_json::from_slice(&o.publish_claims.as_ref().unwrap().json).unwrap();
        assert_eq!(published["sub"], "alice", "{alg}");
        assert!(o.remove_headers.contains(&"authorization".to_string()), "token not forwarded by default");
    }
    assert_eq!(h.metrics.get(Metric::TokensValid as usize), ALGS.len() as u64);
}

#[test]
fn no_token_is_not_an_authentication_failure() {
    let h = Host::new();
    let o = h.run(&filter(json!({})), &TestRequest::new("GET", "/"));
    assert_eq!(status(&o), 200);
    assert!(o.publish_claims.is_none());
}

fn refused(h: &Host, f: &JwtAuthz, t: &str) -> Reason {
    let before: Vec<u64> = Reason::ALL.iter().map(|r| h.invalid(*r)).collect();
    let o = h.run(f, &bearer(t));
    match &o.action {
        Action::Respond(r) => {
            assert_eq!(r.status, 401);
            assert_eq!(r.headers, vec![("www-authenticate".to_string(), "Bearer error=\"invalid_token\"".to_string())]);
            assert_eq!(r.body, UNAUTHORIZED_BODY.as_bytes());
        }
        other => panic!("accepted: {other:?}"),
    }
    *Reason::ALL.iter().zip(before).find(|(r, b)| h.invalid(**r) > *b).map(|(r, _)| r).unwrap()
}

#[test]
fn hostile_tokens_are_refused_with_their_reason() {
    let h = Host::new();
    let f = filter(json!({}));
    let good = token("RS256", NOW, "alice");
    let parts: Vec<&str> = good.split('.').collect();
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let c = Value::Object(claims(NOW, "alice")).to_string();
    use base64::Engine;
    let rsa_public_pem =
        jwt_simple::prelude::RS256KeyPair::from_pem(testkit::RSA_PEM).unwrap().public_key().to_pem().unwrap();
    let hs_with_rsa_public = {
        let k = jwt_simple::prelude::HS256Key::from_bytes(rsa_public_pem.as_bytes()).with_key_id("rsa-1");
        use jwt_simple::prelude::MACLike;
        let mut cl = jwt_simple::prelude::Claims::with_custom_claims(
            claims(NOW, "alice"),
            jwt_simple::prelude::Duration::from_secs(1),
        );
        cl.issued_at = None;
        cl.expires_at = None;
        cl.invalid_before = None;
        k.authenticate(cl).unwrap()
    };
    let mut dup = claims(NOW, "alice");
    dup.remove("iss");
    let duplicate = {
        // JWTClaims' own `iss` plus a custom `iss`: the payload names `iss` twice.
        use jwt_simple::prelude::*;
        let mut cl = Claims::with_custom_claims(dup, Duration::from_secs(1));
        cl.issued_at = None;
        cl.expires_at = None;
        cl.invalid_before = None;
        cl.issuer = Some(ISSUER.into());
        let mut m = cl.custom.clone();
        m.insert("iss".into(), json!("https://evil.example.com"));
        cl.custom = m;
        RS256KeyPair::from_pem(testkit::RSA_PEM).unwrap().with_key_id("rsa-1").sign(cl).unwrap()
    };
    let mut exp_string = claims(NOW, "alice");
    exp_string.insert("exp".into(), json!("tomorrow"));
    let mut expired = claims(NOW, "alice");
    expired.insert("exp".into(), json!(NOW - 61));
    let mut future = claims(NOW, "alice");
    future.insert("nbf".into(), json!(NOW + 61));
    let cases: Vec<(&str, String, Reason)> = vec![
        ("alg none", raw(r#"{"alg":"none"}"#, &c, b""), Reason::Malformed),
        ("alg none with a signature", raw(r#"{"alg":"none","kid":"rsa-1"}"#, &c, &sig), Reason::UnsupportedAlg),
        ("unknown alg", raw(r#"{"alg":"RS999","kid":"rsa-1"}"#, &c, &sig), Reason::UnsupportedAlg),
        ("HS256 signed with the RSA public key", hs_with_rsa_public, Reason::UnsupportedAlg),
        ("unknown kid", mint("RS256", "rsa", Some("nope"), claims(NOW, "alice")), Reason::UnknownKid),
        ("kid not a string", raw(r#"{"alg":"RS256","kid":7}"#, &c, &sig), Reason::Malformed),
        ("crit", raw(r#"{"alg":"RS256","kid":"rsa-1","crit":["exp"]}"#, &c, &sig), Reason::Crit),
        ("bad base64", format!("{}.{}.{}", parts[0], "@@@", parts[2]), Reason::Malformed),
        ("payload not an object", raw(r#"{"alg":"RS256","kid":"rsa-1"}"#, "[1,2]", &sig), Reason::Malformed),
        ("header not JSON", format!("bm90IGpzb24.{}.{}", parts[1], parts[2]), Reason::Malformed),
        ("duplicate claims", duplicate, Reason::Malformed),
        ("exp as a string", mint("RS256", "rsa", Some("rsa-1"), exp_string), Reason::ClaimType),
        ("expired", mint("RS256", "rsa", Some("rsa-1"), expired), Reason::Expired),
        ("nbf in the future", mint("RS256", "rsa", Some("rsa-1"), future), Reason::NotYetValid),
        ("oversize", format!("{}.{}.{}", parts[0], "A".repeat(9000), parts[2]), Reason::TooLarge),
        ("two segments", format!("{}.{}", parts[0], parts[1]), Reason::Malformed),
        ("four segments", format!("{good}.AAAA"), Reason::Malformed),
        ("empty signature", format!("{}.{}.", parts[0], parts[1]), Reason::Malformed),
        ("tampered payload", format!("{}.{}.{}", parts[0], parts[1].replace('a', "b"), parts[2]), Reason::BadSignature),
        (
            "signature of another token",
            format!("{}.{}.{}", parts[0], token("RS256", NOW, "bob").split('.').nth(1).unwrap(), parts[2]),
            Reason::BadSignature,
        ),
    ];
    for (name, t, want) in cases {
        assert_eq!(refused(&h, &f, &t), want, "{name}");
    }
}

#[test]
fn times_audience_and_issuer_edges() {
    let h = Host::new();
    let f = filter(json!({}));
    let with = |k: &str, v: Value| token_with("ES256", NOW, "alice", json!({ k: v }));
    assert_eq!(status(&h.run(&f, &bearer(&with("exp", json!(NOW - 59))))), 200, "within the 60 s skew");
    assert_eq!(refused(&h, &f, &with("exp", json!(NOW - 61))), Reason::Expired);
    assert_eq!(status(&h.run(&f, &bearer(&with("nbf", json!(NOW + 59))))), 200);
    assert_eq!(refused(&h, &f, &with("iat", json!(NOW + 61))), Reason::IssuedInFuture);
    assert_eq!(refused(&h, &f, &with("aud", json!(["other", "another"]))), Reason::Audience);
    assert_eq!(status(&h.run(&f, &bearer(&with("aud", json!(["other", "payment-api"]))))), 200);
    assert_eq!(refused(&h, &f, &with("iss", json!("https://evil.example.com"))), Reason::UnknownIssuer);
    let mut no_exp = claims(NOW, "alice");
    no_exp.remove("exp");
    let t = mint("ES256", "p256", Some("ec-256"), no_exp);
    assert_eq!(refused(&h, &f, &t), Reason::MissingExp);
    let lenient = JwtAuthz::from_json(
        json!({"jwtRules": [{"issuer": ISSUER, "jwks": jwks(&["p256"]), "requireExpiration": false}]})
            .to_string()
            .as_bytes(),
        "t",
        &mut SeededRandom::new(1),
    )
    .unwrap();
    assert_eq!(status(&h.run(&lenient, &bearer(&t))), 200);
}

#[test]
fn one_identity_per_request() {
    let h = Host::new();
    let f = filter(json!({"jwtRules": [{"issuer": ISSUER, "jwks": jwks(&["rsa"]),
        "fromHeaders": [{"name": "authorization", "prefix": "Bearer "}, {"name": "x-token"}]}],
        "policies": [{"action": "DENY", "rules": [{"when": [{"key": "request.auth.claims[sub]", "values": ["banned"]}]}]}]}));
    let mine = token("RS256", NOW, "banned");
    let theirs = token("RS256", NOW, "alice");
    // A banned user pairs someone else's valid token with their own: refused, whichever comes first.
    assert_eq!(status(&h.run(&f, &bearer(&theirs).with("x-token", &mine))), 401);
    assert_eq!(status(&h.run(&f, &bearer(&mine).with("x-token", &theirs))), 401);
    assert_eq!(h.invalid(Reason::Ambiguous), 2);
    // The same token in two configured places is one identity.
    assert_eq!(status(&h.run(&f, &bearer(&theirs).with("x-token", &theirs))), 200);
    assert_eq!(status(&h.run(&f, &bearer(&theirs).with("x-token", "garbage"))), 401);
    assert_eq!(status(&h.run(&f, &bearer(&mine))), 403);
}

#[test]
fn a_location_given_twice_is_ambiguous() {
    let h = Host::new();
    let f = filter(json!({"jwtRules": [{"issuer": ISSUER, "jwks": jwks(&["rsa"]),
        "fromHeaders": [{"name": "authorization", "prefix": "Bearer "}],
        "fromParams": ["access_token"], "fromCookies": ["session"]}]}));
    let t = token("RS256", NOW, "a");
    let cases = [
        TestRequest::new("GET", "/")
            .with("authorization", &format!("Bearer {t}"))
            .with("authorization", &format!("Bearer {t}")),
        TestRequest::new("GET", &format!("/?access_token={t}&access_token={t}")),
        TestRequest::new("GET", "/").with("cookie", &format!("session={t}; session={t}")),
        TestRequest::new("GET", "/")
            .with("cookie", &format!("session={t}"))
            .with("cookie", &format!("x=1; session={t}")),
    ];
    for req in &cases {
        assert_eq!(status(&h.run(&f, req)), 401, "{req:?}");
    }
    assert_eq!(h.invalid(Reason::Ambiguous), cases.len() as u64);
    // One of each is fine (the same token), and another scheme beside it is not a token.
    let req = TestRequest::new("GET", &format!("/?access_token={t}")).with("cookie", &format!("session={t}"));
    assert_eq!(status(&h.run(&f, &req)), 200);
    let basic = TestRequest::new("GET", "/").with("authorization", "Basic eA==");
    assert_eq!(status(&h.run(&f, &basic)), 200, "no token");
}

#[test]
fn a_token_that_is_not_ascii_is_refused() {
    let h = Host::new();
    let f = filter(json!({}));
    let t = token("RS256", NOW, "a");
    let mut value = format!("Bearer {t}").into_bytes();
    value.push(0xe4);
    let req = TestRequest::new("GET", "/").with_bytes("authorization", &value);
    assert_eq!(status(&h.run(&f, &req)), 401);
    assert_eq!(h.invalid(Reason::NotAscii), 1);
    // A header that is not UTF-8 but not ours passes untouched.
    let other = bearer(&t).with_bytes("user-agent", b"\xe4\xb8");
    assert_eq!(status(&h.run(&f, &other)), 200);
}

#[test]
fn a_token_in_a_place_its_issuer_does_not_list_is_refused() {
    let h = Host::new();
    let other_issuer = "https://other.example.com";
    let f = JwtAuthz::from_json(
        json!({"jwtRules": [
            {"issuer": ISSUER, "jwks": jwks(&["rsa"]), "fromHeaders": [{"name": "authorization", "prefix": "Bearer "}]},
            {"issuer": other_issuer, "jwks": jwks(&["rsa"]), "fromHeaders": [{"name": "x-other"}]}]})
        .to_string()
        .as_bytes(),
        "t",
        &mut SeededRandom::new(1),
    )
    .unwrap();
    let t = token("RS256", NOW, "a");
    assert_eq!(status(&h.run(&f, &bearer(&t))), 200);
    let req = TestRequest::new("GET", "/").with("x-other", &t);
    assert_eq!(status(&h.run(&f, &req)), 401, "ISSUER's token in the other issuer's header");
    assert_eq!(h.invalid(Reason::WrongLocation), 1);
}

#[test]
fn time_claims_outside_envoys_range_are_refused() {
    let h = Host::new();
    let f = filter(json!({}));
    for (claim, value) in [("exp", json!(-1)), ("exp", json!(1e20)), ("nbf", json!(-5)), ("iat", json!(1.9e19))] {
        let t = token_with("RS256", NOW, "a", json!({ claim: value }));
        assert_eq!(status(&h.run(&f, &bearer(&t))), 401, "{claim} = {value}");
    }
    assert_eq!(h.invalid(Reason::ClaimType), 4);
    let t = token_with("RS256", NOW, "a", json!({"exp": NOW as f64 + 10.9}));
    assert_eq!(status(&h.run(&f, &bearer(&t))), 200, "a fraction is truncated");
}

#[test]
fn a_principal_needs_iss_and_sub() {
    let h = Host::new();
    let f = filter(json!({"policies": [{"rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}]}]}));
    let mut c = claims(NOW, "a");
    c.remove("sub");
    let key = crate::testkit::key_for("RS256");
    let no_sub = mint("RS256", key, Some(kid_of(key)), c);
    assert_eq!(status(&h.run(&f, &bearer(&no_sub))), 403, "a valid token without sub has no principal");
    assert_eq!(status(&h.run(&f, &bearer(&token("RS256", NOW, "a")))), 200);
}

#[test]
fn claims_with_control_characters_never_reach_a_header() {
    let h = Host::new();
    let f = filter(json!({"jwtRules": [{"issuer": ISSUER, "jwks": jwks(&["rsa"]),
        "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}, {"header": "x-team", "claim": "team"}]}]}));
    for bad in ["a\r\nx-admin: 1", "a\u{0}b", "tab\there", "del\u{7f}"] {
        let t = token_with("RS256", NOW, bad, json!({"team": "blue"}));
        let o = h.run(&f, &bearer(&t));
        assert_eq!(status(&o), 200);
        assert_eq!(o.set_headers, vec![("x-team".to_string(), "blue".to_string())], "{bad:?}");
        assert!(o.remove_headers.contains(&"x-user".to_string()), "the client's copy still goes");
    }
    assert_eq!(h.metrics.get(Metric::OutputHeadersDropped as usize), 4);
}

#[test]
fn policies_see_output_headers_as_written() {
    let h = Host::new();
    let f = filter(json!({"jwtRules": [{"issuer": ISSUER, "jwks": jwks(&["rsa"]),
        "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}]}],
        "policies": [{"rules": [{"when": [{"key": "request.headers[x-user]", "values": ["alice"]}]}]}]}));
    let bob = token("RS256", NOW, "bob");
    let forged = bearer(&bob).with("x-user", "alice");
    assert_eq!(status(&h.run(&f, &forged)), 403, "the client's x-user is not what policies see");
    assert_eq!(status(&h.run(&f, &bearer(&token("RS256", NOW, "alice")))), 200);
    let anonymous = TestRequest::new("GET", "/").with("x-user", "alice");
    assert_eq!(status(&h.run(&f, &anonymous)), 403, "without a token the client's copy is removed");
}

#[test]
fn space_delimited_scopes_are_lists() {
    let h = Host::new();
    let f = filter(
        json!({"policies": [{"rules": [{"when": [{"key": "request.auth.claims[scope]", "values": ["write"]}]}]}]}),
    );
    let t = token_with("RS256", NOW, "a", json!({"scope": "read write"}));
    assert_eq!(status(&h.run(&f, &bearer(&t))), 200);
    let t = token_with("RS256", NOW, "a", json!({"scope": "read writer"}));
    assert_eq!(status(&h.run(&f, &bearer(&t))), 403);
    let f =
        filter(json!({"policies": [{"rules": [{"when": [{"key": "request.auth.claims[team]", "values": ["b"]}]}]}]}));
    let t = token_with("RS256", NOW, "a", json!({"team": "a b"}));
    assert_eq!(status(&h.run(&f, &bearer(&t))), 403, "only scope, scp and permission are split");
}

#[test]
fn policy_paths_see_the_normalized_path() {
    let h = Host::new();
    let f =
        filter(json!({"policies": [{"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}]}));
    let t = token("RS256", NOW, "a");
    for p in ["/admin", "/public/../admin", "//admin", "/%61dmin/x", "/./admin"] {
        let req = TestRequest::new("GET", p).with("authorization", &format!("Bearer {t}"));
        assert_eq!(status(&h.run(&f, &req)), 403, "{p}");
    }
}

#[test]
fn path_templates() {
    let h = Host::new();
    let f = filter(
        json!({"policies": [{"rules": [{"to": [{"operation": {"paths": ["/files/{*}/meta", "/static/{**}"]}}]}]}]}),
    );
    let t = token("RS256", NOW, "a");
    let run = |p: &str| status(&h.run(&f, &TestRequest::new("GET", p).with("authorization", &format!("Bearer {t}"))));
    assert_eq!(run("/files/a/meta"), 200);
    assert_eq!(run("/files/a/b/meta"), 403, "{{*}} is one segment");
    assert_eq!(run("/files//meta"), 403);
    assert_eq!(run("/static/"), 200);
    assert_eq!(run("/static/a/b.css"), 200);
    assert_eq!(run("/files/{*}/meta"), 403, "a template is not a literal");
}

#[test]
fn tokens_from_params_and_cookies() {
    let h = Host::new();
    let f = filter(json!({"jwtRules": [{"issuer": ISSUER, "jwks": jwks(&["rsa"]),
        "fromParams": ["access_token"], "fromCookies": ["session"]}]}));
    let t = token("RS256", NOW, "a");
    assert_eq!(status(&h.run(&f, &TestRequest::new("GET", &format!("/x?access_token={t}")))), 200);
    let o = h.run(&f, &TestRequest::new("GET", "/x").with("cookie", &format!("theme=dark; session={t}")));
    assert_eq!(status(&o), 200);
    assert!(o.publish_claims.is_some());
    let o = h.run(&f, &TestRequest::new("GET", "/x").with("cookie", "session=bad.token.here"));
    assert_eq!(status(&o), 401);
}

#[test]
fn outputs_replace_client_sent_headers() {
    let h = Host::new();
    let f = filter(json!({"jwtRules": [{"issuer": ISSUER, "jwks": jwks(&["rsa"]), "forwardOriginalToken": true,
        "outputPayloadToHeader": "x-jwt-payload", "outputClaimToHeaders": [{"header": "X-User", "claim": "sub"}]}]}));
    let t = token("RS256", NOW, "alice");
    let o = h.run(&f, &bearer(&t).with("x-user", "mallory").with("x-jwt-payload", "forged"));
    assert_eq!(status(&o), 200);
    assert!(o.remove_headers.contains(&"x-user".into()) && o.remove_headers.contains(&"x-jwt-payload".into()));
    assert!(!o.remove_headers.contains(&"authorization".into()), "forwardOriginalToken keeps it");
    assert!(o.set_headers.contains(&("x-user".into(), "alice".into())));
    assert!(o.set_headers.contains(&("x-jwt-payload".into(), t.split('.').nth(1).unwrap().into())));
    // Without a token the forged headers are still removed and nothing is set.
    let o = h.run(&f, &TestRequest::new("GET", "/").with("x-user", "mallory"));
    assert!(o.remove_headers.contains(&"x-user".into()) && o.set_headers.is_empty());
}

#[test]
fn the_cache_verifies_a_repeated_token_once_and_respects_expiry() {
    let mut h = Host::new();
    let f = filter(json!({}));
    let mut c = claims(NOW, "alice");
    c.insert("exp".into(), json!(NOW + 100));
    let t = mint("RS256", "rsa", Some("rsa-1"), c);
    for _ in 0..5 {
        assert_eq!(status(&h.run(&f, &bearer(&t))), 200);
    }
    assert_eq!(h.metrics.get(Metric::CacheMisses as usize), 1);
    assert_eq!(h.metrics.get(Metric::CacheHits as usize), 4);
    h.now = Duration::from_secs(NOW + 161);
    assert_eq!(refused(&h, &f, &t), Reason::Expired, "an expired cached token is checked again");
}

#[test]
fn policies_in_istio_shape() {
    let h = Host::new();
    let f = filter(json!({"policies": [
        {"action": "DENY", "rules": [{"when": [{"key": "request.auth.claims[role]", "values": ["banned"]}]}]},
        {"action": "ALLOW", "rules": [
            {"from": [{"source": {"requestPrincipals": [format!("{ISSUER}/*")]}}],
             "to": [{"operation": {"methods": ["GET", "POST"], "paths": ["/api/*"]}}],
             "when": [{"key": "request.auth.claims[groups]", "values": ["payments"]}]},
            {"to": [{"operation": {"paths": ["/health", "/ready"]}}]},
            {"to": [{"operation": {"paths": ["*/info"], "notMethods": ["DELETE"]}}],
             "when": [{"key": "request.auth.claims[https://example.com/org][tier]", "values": ["gold*"]}]}]}
    ]}));
    let tok = |extra: Value| token_with("RS256", NOW, "alice", extra);
    let get = |path: &str, t: Option<&str>| {
        let r = TestRequest::new("GET", path);
        status(&h.run(
            &f,
            &match t {
                Some(t) => r.with("authorization", &format!("Bearer {t}")),
                None => r,
            },
        ))
    };
    let payments = tok(json!({"groups": ["staff", "payments"]}));
    assert_eq!(get("/api/pay", Some(&payments)), 200, "array claim, any element");
    assert_eq!(get("/api/pay", Some(&tok(json!({"groups": ["staff"]})))), 403);
    assert_eq!(get("/api/pay", None), 403, "no token: no principal");
    assert_eq!(get("/health", None), 200);
    assert_eq!(get("/other", Some(&payments)), 403);
    assert_eq!(get("/api/pay", Some(&tok(json!({"groups": ["payments"], "role": "banned"})))), 403, "DENY wins");
    let gold = tok(json!({"https://example.com/org": {"tier": "gold-plus"}}));
    assert_eq!(get("/v1/info", Some(&gold)), 200, "URL-named nested claim, prefix value, suffix path");
    let o = h.run(&f, &TestRequest::new("DELETE", "/v1/info").with("authorization", &format!("Bearer {gold}")));
    assert_eq!(status(&o), 403);
    match o.action {
        Action::Respond(r) => assert_eq!(r.body, FORBIDDEN_BODY.as_bytes()),
        _ => unreachable!(),
    }
    assert!(o.publish_claims.is_none() && o.set_headers.is_empty());
}

#[test]
fn not_forms_and_request_principals() {
    let h = Host::new();
    let f = filter(json!({"policies": [
        {"action": "ALLOW", "rules": [
            {"from": [{"source": {"notRequestPrincipals": [format!("{ISSUER}/bob")]}}],
             "to": [{"operation": {"notPaths": ["/admin*"]}}],
             "when": [{"key": "request.auth.claims[sub]", "notValues": ["carol"]}]}]}
    ]}));
    let as_ = |sub: &str, path: &str| {
        status(&h.run(
            &f,
            &TestRequest::new("GET", path).with("authorization", &format!("Bearer {}", token("RS256", NOW, sub))),
        ))
    };
    assert_eq!(as_("alice", "/x"), 200);
    assert_eq!(as_("bob", "/x"), 403);
    assert_eq!(as_("carol", "/x"), 403);
    assert_eq!(as_("alice", "/admin/users"), 403);
}

#[test]
fn an_allow_policy_without_rules_denies_everything() {
    let h = Host::new();
    let f = filter(json!({"policies": [{"action": "ALLOW"}]}));
    assert_eq!(status(&h.run(&f, &TestRequest::new("GET", "/"))), 403);
    let f = filter(json!({"policies": [{"action": "ALLOW", "rules": [{}]}]}));
    assert_eq!(status(&h.run(&f, &TestRequest::new("GET", "/"))), 200, "one empty rule matches everything");
}

#[test]
fn keys_of_the_other_kind_never_verify() {
    let h = Host::new();
    let f = filter(json!({}));
    // An ES256 token claiming the RSA key's kid.
    let t = mint("ES256", "p256", Some(kid_of("rsa")), claims(NOW, "alice"));
    assert_eq!(refused(&h, &f, &t), Reason::UnsupportedAlg);
}
