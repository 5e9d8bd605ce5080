//! Tests of `cache`.

use super::*;

fn v(generation: u64, expires: f64) -> Verified {
    Verified {
        rule: 0,
        principal: Some("i/s".into()),
        claims: Rc::new(serde_json::Map::new()),
        claims_json: Rc::new(b"{}".to_vec()),
        expires,
        generation,
    }
}

#[test]
fn bounded_expiring_and_generation_checked() {
    let mut c = TokenCache::new(2, (1, 2));
    let (a, b, d) = (c.fingerprint("a"), c.fingerprint("b"), c.fingerprint("d"));
    assert_ne!(a, b);
    c.insert(a, v(1, 100.0));
    c.insert(b, v(1, 100.0));
    c.insert(d, v(1, 100.0));
    assert_eq!(c.len(), 2);
    assert!(c.get(a, 0.0, 0.0, 1).is_none(), "the oldest went first");
    assert!(c.get(b, 0.0, 0.0, 1).is_some());
    assert!(c.get(b, 101.0, 0.0, 1).is_none(), "expired");
    assert!(c.get(d, 0.0, 0.0, 2).is_none(), "keys changed since");
    for i in 0..10_000 {
        let fp = c.fingerprint(&i.to_string());
        c.insert(fp, v(1, 100.0));
        let _ = c.get(fp, 200.0, 0.0, 1);
    }
    assert!(c.len() <= 2);
    assert!(c.order.len() <= 4);
    let mut off = TokenCache::new(0, (1, 2));
    off.insert(a, v(1, 100.0));
    assert!(off.is_empty());
}
