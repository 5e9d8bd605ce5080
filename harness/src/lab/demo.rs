//! The examples' demo credentials (`meshplug demo-token`): tokens signed with the key in
//! `filters/jwt-authz/testdata/rsa.pem` (kid `rsa-1`, issuer `https://auth.example.com`), valid for an
//! hour, and that key's public JWKS. For trying the examples only.

/// A demo token for `sub` with `extra_claims` (a JSON object) added to the standard ones.
pub fn token(sub: &str, extra_claims: &str) -> anyhow::Result<String> {
    let extra: serde_json::Value = serde_json::from_str(extra_claims)?;
    let extra = extra.as_object().ok_or_else(|| anyhow::anyhow!("--claims must be a JSON object"))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let mut claims = jwt_authz::testkit::claims(now, sub);
    for (k, v) in extra {
        claims.insert(k.clone(), v.clone());
    }
    Ok(jwt_authz::testkit::mint("RS256", "rsa", Some("rsa-1"), claims))
}

/// The demo key's public JWKS.
pub fn jwks() -> String {
    jwt_authz::testkit::jwks(&["rsa"])
}
