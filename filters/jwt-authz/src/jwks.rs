//! JSON Web Key Sets: the keys a rule verifies signatures with.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

/// Largest JWKS document accepted (inline or fetched).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The signature algorithms meshplug accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl Alg {
    /// `none` and anything unknown give `None`.
    pub fn parse(name: &str) -> Option<Alg> {
        Some(match name {
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "PS256" => Alg::PS256,
            "PS384" => Alg::PS384,
            "PS512" => Alg::PS512,
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            "EdDSA" => Alg::EdDSA,
            "HS256" => Alg::HS256,
            "HS384" => Alg::HS384,
            "HS512" => Alg::HS512,
            _ => return None,
        })
    }

    /// Whether a key of this material may verify this algorithm (`alg` must agree with the key type).
    pub fn fits(self, key: &KeyMaterial) -> bool {
        matches!(
            (self, key),
            (Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512, KeyMaterial::Rsa { .. })
                | (Alg::ES256, KeyMaterial::P256 { .. })
                | (Alg::ES384, KeyMaterial::P384 { .. })
                | (Alg::EdDSA, KeyMaterial::Ed25519 { .. })
                | (Alg::HS256 | Alg::HS384 | Alg::HS512, KeyMaterial::Oct { .. })
        )
    }
}

/// A key's material, decoded.
#[derive(Clone)]
pub enum KeyMaterial {
    /// RSA modulus and exponent (big-endian), and the SubjectPublicKeyInfo DER for BoringSSL.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
        spki: Vec<u8>,
    },
    /// Uncompressed SEC1 point (`04 || x || y`) and SPKI DER.
    P256 {
        point: Vec<u8>,
        spki: Vec<u8>,
    },
    P384 {
        point: Vec<u8>,
        spki: Vec<u8>,
    },
    Ed25519 {
        public: Vec<u8>,
    },
    /// A shared secret (HS*): only accepted when configured in the JWKS.
    Oct {
        secret: Vec<u8>,
    },
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material (secrets in particular).
        f.write_str(match self {
            KeyMaterial::Rsa { .. } => "RSA",
            KeyMaterial::P256 { .. } => "EC P-256",
            KeyMaterial::P384 { .. } => "EC P-384",
            KeyMaterial::Ed25519 { .. } => "OKP Ed25519",
            KeyMaterial::Oct { .. } => "oct",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The key's own `alg`, when it names one: tokens must then use exactly it.
    pub alg: Option<Alg>,
    pub material: KeyMaterial,
}

/// The usable keys of a JWKS.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct JwksJson {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct JwkJson {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
}

fn b64(field: &str, v: &Option<String>) -> Result<Vec<u8>, String> {
    let s = v.as_deref().ok_or_else(|| format!("missing `{field}`"))?;
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|_| format!("`{field}` is not base64url"))
}

impl KeySet {
    /// Parses a JWKS. Keys that cannot be used (other key types, encryption keys) are skipped; a JWKS
    /// with no usable key, or that is not a JWKS, is an error.
    pub fn parse(bytes: &[u8]) -> Result<KeySet, String> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(format!("the JWKS is {} bytes; the maximum is {}", bytes.len(), MAX_JWKS_BYTES));
        }
        let doc: JwksJson = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, raw) in doc.keys.iter().enumerate() {
            match serde_json::from_value::<JwkJson>(raw.clone()).map_err(|e| e.to_string()).and_then(|j| Self::key(&j))
            {
                Ok(Some(k)) => keys.push(k),
                Ok(None) => {}
                Err(e) => skipped.push(format!("keys[{i}]: {e}")),
            }
        }
        if keys.is_empty() {
            let why = if skipped.is_empty() { String::new() } else { format!(" ({})", skipped.join("; ")) };
            return Err(format!("the JWKS has no usable key{why}"));
        }
        Ok(KeySet { keys })
    }

    fn key(j: &JwkJson) -> Result<Option<Jwk>, String> {
        if j.use_.as_deref().is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        let alg = match j.alg.as_deref() {
            None => None,
            Some(a) => Some(Alg::parse(a).ok_or_else(|| format!("unsupported alg {a:?}"))?),
        };
        let material = match (j.kty.as_str(), j.crv.as_deref()) {
            ("RSA", _) => {
                let (n, e) = (b64("n", &j.n)?, b64("e", &j.e)?);
                if n.len() < 256 {
                    return Err(format!("RSA key of {} bits; at least 2048 are required", n.len() * 8));
                }
                let spki = rsa_spki(&n, &e);
                KeyMaterial::Rsa { n, e, spki }
            }
            ("EC", Some("P-256")) => {
                let point = ec_point(&b64("x", &j.x)?, &b64("y", &j.y)?, 32)?;
                let spki = ec_spki(&point, P256_OID);
                KeyMaterial::P256 { point, spki }
            }
            ("EC", Some("P-384")) => {
                let point = ec_point(&b64("x", &j.x)?, &b64("y", &j.y)?, 48)?;
                let spki = ec_spki(&point, P384_OID);
                KeyMaterial::P384 { point, spki }
            }
            ("OKP", Some("Ed25519")) => {
                let public = b64("x", &j.x)?;
                if public.len() != 32 {
                    return Err("Ed25519 `x` must be 32 bytes".into());
                }
                KeyMaterial::Ed25519 { public }
            }
            ("oct", _) => {
                let secret = b64("k", &j.k)?;
                if secret.len() < 32 {
                    return Err("an HMAC secret must be at least 32 bytes".into());
                }
                KeyMaterial::Oct { secret }
            }
            (kty, crv) => {
                return Err(format!(
                    "unsupported key type {kty:?}{}",
                    crv.map(|c| format!(" ({c})")).unwrap_or_default()
                ))
            }
        };
        if let Some(a) = alg {
            if !a.fits(&material) {
                return Err(format!("alg {a:?} does not fit a {material:?} key"));
            }
        }
        Ok(Some(Jwk { kid: j.kid.clone(), alg, material }))
    }

    /// The keys that may verify a token with this `kid` and `alg`: with a `kid`, only keys with that
    /// `kid`; without one, every key. Each must fit `alg`.
    pub fn candidates<'a>(&'a self, kid: Option<&'a str>, alg: Alg) -> impl Iterator<Item = &'a Jwk> + 'a {
        self.keys.iter().filter(move |k| {
            (kid.is_none() || k.kid.as_deref() == kid) && alg.fits(&k.material) && k.alg.is_none_or(|a| a == alg)
        })
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

fn ec_point(x: &[u8], y: &[u8], len: usize) -> Result<Vec<u8>, String> {
    if x.len() != len || y.len() != len {
        return Err(format!("EC coordinates must be {len} bytes"));
    }
    let mut p = Vec::with_capacity(1 + 2 * len);
    p.push(4);
    p.extend_from_slice(x);
    p.extend_from_slice(y);
    Ok(p)
}

// --- Minimal DER, enough for public keys and ECDSA signatures. ---

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 6);
    out.push(tag);
    der_len(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// A positive DER INTEGER from big-endian bytes.
fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len().saturating_sub(1));
        bytes.get(start..).unwrap_or(&[0])
    };
    let mut body = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(trimmed);
    der(0x02, &body)
}

const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

fn bit_string(body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(body.len() + 1);
    b.push(0);
    b.extend_from_slice(body);
    der(0x03, &b)
}

/// SubjectPublicKeyInfo of an RSA key.
pub fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let alg = der(0x30, &[der(0x06, RSA_OID), vec![0x05, 0x00]].concat());
    let key = der(0x30, &[der_uint(n), der_uint(e)].concat());
    der(0x30, &[alg, bit_string(&key)].concat())
}

/// SubjectPublicKeyInfo of an EC key on the curve `curve_oid`.
pub fn ec_spki(point: &[u8], curve_oid: &[u8]) -> Vec<u8> {
    let alg = der(0x30, &[der(0x06, EC_OID), der(0x06, curve_oid)].concat());
    der(0x30, &[alg, bit_string(point)].concat())
}

/// A JWS ECDSA signature (`r || s`, each `len` bytes) as the DER `ECDSA-Sig-Value` BoringSSL expects.
pub fn ecdsa_sig_to_der(raw: &[u8], len: usize) -> Option<Vec<u8>> {
    if raw.len() != 2 * len {
        return None;
    }
    let (r, s) = raw.split_at(len);
    Some(der(0x30, &[der_uint(r), der_uint(s)].concat()))
}

#[cfg(test)]
#[path = "tests/jwks.rs"]
mod tests;
