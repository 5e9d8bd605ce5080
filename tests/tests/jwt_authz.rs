//! The jwt-authz filter against the real Envoy 1.40 (two workers): every algorithm, claim edges,
//! policies, header outputs, claims handed to rate-limit, a remote JWKS that rotates, fails and answers
//! garbage, hostile tokens, and refused configs. Tokens are minted at test time.

use jwt_authz::testkit::{self, claims, jwks, mint, raw, token, token_with, ALGS, ISSUER};
use meshplug_harness::lab::stub::StubServer;
use meshplug_tests::{eventually, lab_with, metric, Lab, Req};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const JWT: &str = "jwt-authz";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn inline(extra: Value) -> Value {
    let mut c = json!({"jwtRules": [{"issuer": ISSUER, "audiences": ["payment-api"],
        "jwks": jwks(&["rsa", "p256", "p384", "ed25519", "hmac"]),
        "outputPayloadToHeader": "x-jwt-payload",
        "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}]}]});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn bearer(path: &str, t: &str) -> Req {
    Req::get(path).header("authorization", &format!("Bearer {t}"))
}

#[test]
fn every_algorithm_is_accepted_and_claims_reach_the_upstream() {
    let lab = lab_with(JWT, inline(json!({})));
    let client = lab.envoy.client().unwrap();
    for alg in ALGS {
        let r = client.send(bearer("/api", &token(alg, now(), "alice")).header("x-user", "mallory")).unwrap();
        assert_eq!(r.status, 200, "{alg}: {}", r.text());
        let seen = r.json();
        assert_eq!(seen["headers"]["x-user"], "alice", "{alg}: the client's x-user was replaced");
        assert!(seen["headers"].get("authorization").is_none(), "{alg}: token not forwarded");
        let payload = seen["headers"]["x-jwt-payload"].as_str().unwrap().to_string();
        use base64::Engine;
        let decoded: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(decoded["sub"], "alice");
    }
    // RS* and ES* went through Envoy's BoringSSL: the host has the foreign function.
    assert!(!lab.envoy.log().contains("no verify_signature function"), "{}", lab.envoy.log());
    assert!(eventually(ms(3000), || metric(&lab, JWT, "tokens_valid") == ALGS.len() as u64));
}

#[test]
fn no_token_passes_a_bad_token_gets_401() {
    let lab = lab_with(JWT, inline(json!({})));
    let client = lab.envoy.client().unwrap();
    assert_eq!(client.get("/").unwrap().status, 200);
    let r = client.send(bearer("/", "not-a-token")).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer error=\"invalid_token\""));
    assert_eq!(r.text(), "Jwt verification fails");
}

#[test]
fn hostile_tokens_are_refused_and_the_vm_survives() {
    let lab = lab_with(JWT, inline(json!({})));
    let client = lab.envoy.client().unwrap();
    let n = now();
    let good = token("RS256", n, "alice");
    let parts: Vec<&str> = good.split('.').collect();
    use base64::Engine;
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let c = Value::Object(claims(n, "alice")).to_string();
    let rsa_pem = jwt_simple::prelude::RS256KeyPair::from_pem(testkit::RSA_PEM).unwrap().public_key().to_pem().unwrap();
    let hs_with_rsa_public = {
        use jwt_simple::prelude::*;
        let mut cl = Claims::with_custom_claims(claims(n, "alice"), Duration::from_secs(1));
        cl.issued_at = None;
        cl.expires_at = None;
        cl.invalid_before = None;
        HS256Key::from_bytes(rsa_pem.as_bytes()).with_key_id("rsa-1").authenticate(cl).unwrap()
    };
    let with = |k: &str, v: Value| token_with("RS256", n, "alice", json!({ k: v }));
    let corpus: Vec<(&str, String)> = vec![
        ("alg none", raw(r#"{"alg":"none"}"#, &c, b"x")),
        ("HS256 signed with the RSA public key", hs_with_rsa_public),
        ("unknown kid", mint("RS256", "rsa", Some("nope"), claims(n, "alice"))),
        ("kid not a string", raw(r#"{"alg":"RS256","kid":["rsa-1"]}"#, &c, &sig)),
        ("bad base64", format!("{}.%%%.{}", parts[0], parts[2])),
        ("payload not an object", raw(r#"{"alg":"RS256","kid":"rsa-1"}"#, "\"alice\"", &sig)),
        ("duplicate claims", raw(r#"{"alg":"RS256","kid":"rsa-1"}"#, &c.replacen('{', r#"{"sub":"admin","#, 1), &sig)),
        ("exp as a string", with("exp", json!("9999999999"))),
        ("expired", with("exp", json!(n - 120))),
        ("nbf in the future", with("nbf", json!(n + 120))),
        ("oversize", format!("{}.{}.{}", parts[0], "A".repeat(9000), parts[2])),
        ("two segments", format!("{}.{}", parts[0], parts[1])),
        ("four segments", format!("{good}.{}", parts[2])),
        ("empty signature", format!("{}.{}.", parts[0], parts[1])),
        ("crit", raw(r#"{"alg":"RS256","kid":"rsa-1","crit":["b64"]}"#, &c, &sig)),
        ("junk", "!!!.###.$$$".to_string()),
    ];
    for (name, t) in &corpus {
        let r = client.send(bearer("/", t)).unwrap();
        assert_eq!(r.status, 401, "{name}: {}", r.text());
    }
    assert_eq!(client.send(bearer("/", &good)).unwrap().status, 200, "the VM still serves");
    let log = lab.envoy.log();
    assert!(!log.contains("panic"), "{log}");
    assert!(!log.contains(parts[2]), "a token was logged");
    assert!(eventually(ms(3000), || metric(&lab, JWT, "tokens_invalid_bad_signature")
        + metric(&lab, JWT, "tokens_invalid_malformed")
        > 5));
}

#[test]
fn issuer_audience_and_expiry_edges() {
    let lab = lab_with(JWT, inline(json!({"clockSkew": "30s"})));
    let client = lab.envoy.client().unwrap();
    let n = now();
    let with = |k: &str, v: Value| token_with("ES256", n, "alice", json!({ k: v }));
    let status = |t: String| client.send(bearer("/", &t)).unwrap().status;
    assert_eq!(status(with("exp", json!(n - 10))), 200, "within clockSkew");
    assert_eq!(status(with("exp", json!(n - 60))), 401);
    assert_eq!(status(with("nbf", json!(n + 10))), 200);
    assert_eq!(status(with("nbf", json!(n + 60))), 401);
    assert_eq!(status(with("iat", json!(n + 60))), 401);
    assert_eq!(status(with("aud", json!("someone-else"))), 401);
    assert_eq!(status(with("aud", json!(["x", "payment-api"]))), 200);
    assert_eq!(status(with("iss", json!("https://other.example.com"))), 401);
}

#[test]
fn policies_allow_and_deny_as_istio_does() {
    let lab = lab_with(
        JWT,
        inline(json!({"policies": [
            {"action": "DENY", "rules": [{"when": [{"key": "request.auth.claims[role]", "values": ["banned"]}]}]},
            {"action": "ALLOW", "rules": [
                {"from": [{"source": {"requestPrincipals": [format!("{ISSUER}/*")]}}],
                 "to": [{"operation": {"methods": ["GET", "POST"], "paths": ["/api/*"]}}],
                 "when": [{"key": "request.auth.claims[groups]", "values": ["payments"]}]},
                {"to": [{"operation": {"paths": ["/health", "/ready"]}}]},
                {"to": [{"operation": {"paths": ["/org/*"]}}],
                 "when": [{"key": "request.auth.claims[https://example.com/org][tier]", "values": ["gold"]}]}]}]})),
    );
    let client = lab.envoy.client().unwrap();
    let n = now();
    let tok = |extra: Value| token_with("RS256", n, "alice", extra);
    let payments = tok(json!({"groups": ["staff", "payments"]}));
    let cases: Vec<(Req, u16)> = vec![
        (bearer("/api/pay", &payments), 200),
        (bearer("/api/pay", &payments).header("x-ignore", "1"), 200),
        (Req::get("/api/pay"), 403),
        (bearer("/api/pay", &tok(json!({"groups": "staff"}))), 403),
        (bearer("/api/pay", &tok(json!({"groups": ["payments"], "role": "banned"}))), 403),
        (Req::get("/health"), 200),
        (Req::get("/health?probe=1"), 200),
        (bearer("/other", &payments), 403),
        (bearer("/org/x", &tok(json!({"https://example.com/org": {"tier": "gold"}}))), 200),
        (bearer("/org/x", &tok(json!({"https://example.com/org": {"tier": "silver"}}))), 403),
    ];
    for (req, want) in cases {
        let desc = format!("{} {}", req.method, req.path);
        let r = client.send(req).unwrap();
        assert_eq!(r.status, want, "{desc}: {}", r.text());
        if want == 403 {
            assert_eq!(r.text(), "RBAC: access denied");
        }
    }
    let r = client.send(Req::post("/api/pay", b"{}").header("authorization", &format!("Bearer {payments}"))).unwrap();
    assert_eq!(r.status, 200);
    let r = client.send(Req { method: "DELETE".into(), ..bearer("/api/pay", &payments) }).unwrap();
    assert_eq!(r.status, 403);
    assert!(eventually(ms(3000), || metric(&lab, JWT, "policy_deny") >= 6));
}

/// A header sent twice is judged as Envoy's RBAC judges it (Istio's AuthorizationPolicy): its values
/// joined with `,`. `x-client: web` + `x-client: mobile-legacy` is `web,mobile-legacy`, which a DENY
/// on `*-legacy` refuses; reading the first value only let it through (200).
#[test]
fn a_repeated_header_cannot_escape_a_deny() {
    let lab = lab_with(
        JWT,
        inline(json!({"policies": [
            {"action": "DENY", "rules": [{"when": [{"key": "request.headers[x-client]", "values": ["*-legacy"]}]}]}]})),
    );
    let client = lab.envoy.client().unwrap();
    let one = |v: &str| Req::get("/api").header("x-client", v);
    assert_eq!(client.send(one("web")).unwrap().status, 200);
    assert_eq!(client.send(one("mobile-legacy")).unwrap().status, 403);
    let r = client.send(one("web").header("x-client", "mobile-legacy")).unwrap();
    assert_eq!((r.status, r.text().as_str()), (403, "RBAC: access denied"), "web,mobile-legacy ends in -legacy");
    assert_eq!(client.send(one("mobile-legacy").header("x-client", "web")).unwrap().status, 200, "web is the end");
}

#[test]
fn verified_claims_key_the_rate_limit_and_cannot_be_forged() {
    let lab = meshplug_tests::builder()
        .filter(JWT, inline(json!({})))
        .filter(
            "rate-limit",
            json!({"rules": [{"name": "per-sub", "key": {"claim": "sub"}, "onMissingKey": "allow",
                                               "limits": [{"requests": 2, "per": "1h"}]}]}),
        )
        .start()
        .unwrap();
    let client = lab.envoy.client().unwrap();
    let n = now();
    let (alice, bob) = (token("RS256", n, "alice"), token("ES256", n, "bob"));
    let st = |t: &str| client.send(bearer("/", t)).unwrap().status;
    assert_eq!((st(&alice), st(&alice), st(&alice)), (200, 200, 429));
    assert_eq!((st(&bob), st(&bob), st(&bob)), (200, 200, 429));
    // Without a token there are no claims, whatever headers say.
    for _ in 0..5 {
        let r = client
            .send(Req::get("/").header("meshplug_claims", r#"{"sub":"alice"}"#).header("x-user", "alice"))
            .unwrap();
        assert_eq!(r.status, 200);
    }
}

fn remote(cluster_port: u16, extra: Value) -> Lab {
    let mut rule = json!({"issuer": ISSUER, "remoteJwks": {"cluster": "auth", "path": "/.well-known/jwks.json",
                                                           "authority": "auth.example.com", "timeout": "1s",
                                                           "refreshInterval": "2s", "unknownKidRefetchInterval": "1s"}});
    for (k, v) in extra.as_object().unwrap() {
        rule[k] = v.clone();
    }
    meshplug_tests::builder().filter(JWT, json!({"jwtRules": [rule]})).cluster("auth", cluster_port).start().unwrap()
}

fn until_status(client: &meshplug_tests::Client, t: &str, want: u16) -> bool {
    eventually(Duration::from_secs(10), || client.send(bearer("/", t)).map(|r| r.status == want).unwrap_or(false))
}

#[test]
fn remote_jwks_is_fetched_once_per_process_and_rotates() {
    let server = StubServer::start(0, 200, jwks(&["rsa"]).as_bytes()).unwrap();
    let lab = remote(server.addr.port(), json!({}));
    let client = lab.envoy.client().unwrap();
    let n = now();
    assert!(until_status(&client, &token("RS256", n, "alice"), 200), "keys never arrived");
    // Two workers and the main thread, but one fetch per refresh interval for the whole process.
    let hits = server.hits();
    assert!(hits <= 2, "{hits} fetches right after start");
    // Rotation: the server now has rsa-2; a token with the new kid triggers an early refetch.
    server.answer(200, jwks(&["rsa2"]).as_bytes());
    let rotated = mint("RS256", "rsa2", Some("rsa-2"), claims(n, "bob"));
    assert!(until_status(&client, &rotated, 200), "the new kid was never fetched");
    assert!(until_status(&client, &token("RS256", n, "alice"), 401), "the removed key still verifies");
    assert!(eventually(ms(3000), || metric(&lab, JWT, "jwks_fetch_ok") >= 2));
}

#[test]
fn a_failing_jwks_server_keeps_the_old_keys_and_unknown_kids_fail_closed() {
    let server = StubServer::start(0, 200, jwks(&["rsa"]).as_bytes()).unwrap();
    let port = server.addr.port();
    let lab = remote(port, json!({}));
    let client = lab.envoy.client().unwrap();
    let n = now();
    let alice = token("RS256", n, "alice");
    assert!(until_status(&client, &alice, 200));
    // Garbage, then an oversized body, then the server gone: the old keys keep working.
    server.answer(200, b"<html>not json</html>");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(client.send(bearer("/", &alice)).unwrap().status, 200);
    server.answer(200, &vec![b' '; 300 * 1024]);
    std::thread::sleep(Duration::from_millis(2500));
    drop(server);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(client.send(bearer("/", &alice)).unwrap().status, 200, "stale keys keep working");
    let unknown = mint("RS256", "rsa2", Some("rsa-2"), claims(n, "bob"));
    assert_eq!(client.send(bearer("/", &unknown)).unwrap().status, 401, "an unknown kid fails closed");
    assert!(
        eventually(ms(5000), || metric(&lab, JWT, "jwks_fetch_failed") >= 2 && metric(&lab, JWT, "jwks_stale") >= 2)
    );
    assert!(lab.envoy.log().contains("keeping the keys fetched before (stale)"));
}

#[test]
fn until_the_first_fetch_succeeds_tokens_are_refused() {
    let server = StubServer::start(0, 503, b"down").unwrap();
    let lab = remote(server.addr.port(), json!({}));
    let client = lab.envoy.client().unwrap();
    let alice = token("RS256", now(), "alice");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(client.send(bearer("/", &alice)).unwrap().status, 401);
    assert!(eventually(ms(3000), || metric(&lab, JWT, "tokens_invalid_no_keys") >= 1));
    server.answer(200, jwks(&["rsa"]).as_bytes());
    assert!(until_status(&client, &alice, 200), "keys never arrived after the server recovered");
}

#[test]
fn invalid_configs_are_refused_at_load_with_the_field_named() {
    let cases = [
        (
            json!({"jwtRules": [{"issuer": ISSUER}]}),
            "[jwt-authz] invalid config at /jwtRules/0: needs exactly one of `jwks` and `remoteJwks`",
        ),
        (
            json!({"jwtRules": [{"issuer": ISSUER, "jwks": "{\"keys\":[]}"}]}),
            "[jwt-authz] invalid config at /jwtRules/0/jwks: the JWKS has no usable key",
        ),
        (
            json!({"policies": [{"action": "CUSTOM"}]}),
            "[jwt-authz] invalid config at /policies/0/action: unknown variant `CUSTOM`",
        ),
    ];
    meshplug_tests::assert_refused(JWT, cases);
}
