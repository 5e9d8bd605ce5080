//! Tests of `config`.

use super::*;
use crate::testkit::jwks;
use serde_json::json;

fn err(v: serde_json::Value) -> ConfigError {
    JwtAuthzConfig::from_json(v.to_string().as_bytes()).unwrap_err()
}

#[test]
fn the_documented_shape_parses_with_defaults() {
    let c = JwtAuthzConfig::from_json(
        json!({"jwtRules": [{"issuer": "https://auth.example.com", "audiences": ["payment-api"],
                "remoteJwks": {"cluster": "auth", "path": "/.well-known/jwks.json", "authority": "auth.example.com",
                               "timeout": "2s", "refreshInterval": "10m"},
                "fromHeaders": [{"name": "Authorization", "prefix": "Bearer "}],
                "fromParams": ["access_token"], "fromCookies": ["session"], "forwardOriginalToken": false,
                "outputPayloadToHeader": "x-jwt-payload", "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}]}],
               "policies": [{"action": "DENY", "rules": [{"when": [{"key": "request.auth.claims[role]", "values": ["banned"]}]}]}],
               "clockSkew": "60s"})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(c.jwt_rules[0].from_headers[0].name, "authorization");
    assert_eq!(c.jwt_rules[0].max_token_bytes, 8192);
    assert!(c.jwt_rules[0].require_expiration);
    let c = JwtAuthzConfig::from_json(
        json!({"jwtRules": [{"issuer": "i", "jwks": jwks(&["rsa"])}]}).to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(
        c.jwt_rules[0].from_headers,
        vec![FromHeader { name: "authorization".into(), prefix: "Bearer ".into() }]
    );
    assert_eq!(c.jwt_rules[0].from_params, vec!["access_token".to_string()]);
}

#[test]
fn invalid_configs_name_the_field() {
    let k = jwks(&["rsa"]);
    let cases = [
        (json!({"jwtRules": [{"issuer": "i"}]}), "/jwtRules/0", "exactly one of"),
        (json!({"jwtRules": [{"issuer": "i", "jwks": "{}"}]}), "/jwtRules/0/jwks", "not a JWKS"),
        (json!({"jwtRules": [{"issuer": "", "jwks": k}]}), "/jwtRules/0/issuer", "must not be empty"),
        (
            json!({"jwtRules": [{"issuer": "i", "jwks": k}, {"issuer": "i", "jwks": k}]}),
            "/jwtRules/1/issuer",
            "duplicate",
        ),
        (
            json!({"jwtRules": [{"issuer": "i", "remoteJwks": {"cluster": "c", "path": "x"}}]}),
            "/jwtRules/0/remoteJwks/path",
            "start with '/'",
        ),
        (
            json!({"jwtRules": [{"issuer": "i", "remoteJwks": {"cluster": "c", "path": "/x", "timeout": "soon"}}]}),
            "/jwtRules/0/remoteJwks/timeout",
            "invalid duration",
        ),
        (
            json!({"jwtRules": [{"issuer": "i", "jwks": k, "outputClaimToHeaders": [{"header": "bad header", "claim": "sub"}]}]}),
            "/jwtRules/0/outputClaimToHeaders/0/header",
            "not a valid header",
        ),
        (json!({"policies": [{"action": "AUDIT"}]}), "/policies/0/action", "unknown variant"),
        (
            json!({"policies": [{"rules": [{"when": [{"key": "source.ip", "values": ["1.2.3.4"]}]}]}]}),
            "/policies/0/rules/0/when/0/key",
            "unsupported key",
        ),
        (
            json!({"policies": [{"rules": [{"when": [{"key": "request.auth.claims[", "values": ["x"]}]}]}]}),
            "/policies/0/rules/0/when/0/key",
            "malformed",
        ),
        (
            json!({"policies": [{"rules": [{"when": [{"key": "request.auth.claims[a]"}]}]}]}),
            "/policies/0/rules/0/when/0",
            "values",
        ),
        (
            json!({"policies": [{"rules": [{"from": [{"source": {"principals": ["x"]}}]}]}]}),
            "/policies/0/rules/0/from/0/source/principals",
            "unknown field",
        ),
        (json!({"clockSkew": "-1s"}), "/clockSkew", "negative"),
        (
            json!({"policies": [{"rules": [{"to": [{"operation": {"paths": ["/ok", "/a/*/b"]}}]}]}]}),
            "/policies/0/rules/0/to/0/operation/paths/1",
            "`*` is allowed only",
        ),
        (
            json!({"policies": [{"rules": [{"to": [{"operation": {"notPaths": ["*admin*"]}}]}]}]}),
            "/policies/0/rules/0/to/0/operation/notPaths/0",
            "`*` is allowed only",
        ),
        (
            json!({"policies": [{"rules": [{"to": [{"operation": {"paths": ["/{**}/x/{*}"]}}]}]}]}),
            "/policies/0/rules/0/to/0/operation/paths/0",
            "must be the last operator",
        ),
        (
            json!({"policies": [{"rules": [{"to": [{"operation": {"paths": ["/foo/{*}.txt"]}}]}]}]}),
            "/policies/0/rules/0/to/0/operation/paths/0",
            "whole segment",
        ),
        (
            json!({"policies": [{"rules": [{"to": [{"operation": {"paths": ["/*/baz/{*}"]}}]}]}]}),
            "/policies/0/rules/0/to/0/operation/paths/0",
            "whole segment",
        ),
    ];
    for (config, pointer, reason) in cases {
        let e = err(config.clone());
        assert_eq!(e.pointer, pointer, "{config} → {e}");
        assert!(e.reason.contains(reason), "{config} → {e}");
    }
}
