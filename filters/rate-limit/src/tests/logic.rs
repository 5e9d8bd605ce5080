//! Tests of `logic`: the limiter's decisions with in-memory shared data and a hand-driven clock.

use super::*;
use meshplug_common::host::SeededRandom;
use meshplug_common::reply::{CallOutcome, GrpcCall};
use meshplug_common::testing::{MemorySharedData, RecordingMetrics, TestRequest};

const T0: Duration = Duration::from_secs(1_800_000_000);

struct Host {
    shared: MemorySharedData,
    metrics: RecordingMetrics,
    now: Duration,
}

impl Host {
    fn new() -> Self {
        Self { shared: MemorySharedData::default(), metrics: RecordingMetrics::default(), now: T0 }
    }
    fn run(&self, rl: &RateLimit, req: &TestRequest) -> Verdict {
        rl.on_request(req, &Env { shared: &self.shared, metrics: &self.metrics, now: self.now })
    }
    fn count(&self, rule: usize, m: Metric) -> u64 {
        self.metrics.get(metric_index(rule, m))
    }
}

fn limiter(json: &str, host: &Host) -> RateLimit {
    let rl = RateLimit::from_json(json.as_bytes(), "test").unwrap();
    rl.prepare(&host.shared, &mut SeededRandom::new(1));
    rl
}

fn get() -> TestRequest {
    TestRequest::new("GET", "/api/x").with_property(&["source", "address"], b"10.1.1.1:5000")
}

fn allowed(v: &Verdict) -> bool {
    v.action == Action::Continue
}

/// A header's value in a reply's headers or a verdict's response headers.
fn header<'a, K: AsRef<str>, V: AsRef<str>>(headers: &'a [(K, V)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.as_ref() == name).map(|(_, v)| v.as_ref())
}

fn reply(v: &Verdict) -> &LocalReply {
    match &v.action {
        Action::Respond(r) => r,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn admits_capacity_then_refuses_then_refills() {
    let mut h = Host::new();
    let rl = limiter(r#"{"rules":[{"name":"g","limits":[{"requests":5,"per":"10s","burst":2}]}]}"#, &h);
    let admitted = (0..20).filter(|_| allowed(&h.run(&rl, &get()))).count();
    assert_eq!(admitted, 7, "5 + burst 2");
    assert_eq!(h.count(0, Metric::Limited), 13);
    let v = h.run(&rl, &get());
    let r = reply(&v);
    assert_eq!(r.status, 429);
    assert_eq!(r.body, b"rate limited\n");
    assert_eq!(header(&r.headers, "retry-after"), Some("2"), "one request refills every 2 s");
    assert_eq!(header(&r.headers, "ratelimit-remaining"), Some("0"));
    h.now += Duration::from_millis(1999);
    assert!(!allowed(&h.run(&rl, &get())));
    h.now += Duration::from_millis(1);
    assert!(allowed(&h.run(&rl, &get())));
    assert!(!allowed(&h.run(&rl, &get())));
}

#[test]
fn headers_count_down_and_reset_tells_when_full() {
    let h = Host::new();
    let rl = limiter(r#"{"rules":[{"name":"g","limits":[{"requests":3,"per":"3s"}]}]}"#, &h);
    for remaining in ["2", "1", "0"] {
        let v = h.run(&rl, &get());
        assert!(allowed(&v));
        assert_eq!(header(&v.response_headers, "ratelimit-limit"), Some("3"));
        assert_eq!(header(&v.response_headers, "ratelimit-remaining"), Some(remaining));
    }
    let v = h.run(&rl, &get());
    assert_eq!(header(&reply(&v).headers, "ratelimit-reset"), Some("3"));
    let rl = limiter(
        r#"{"rules":[{"name":"q","limits":[{"requests":3,"per":"3s"}]}],"response":{"headers":false,"status":503,"body":"slow down"}}"#,
        &h,
    );
    let v = h.run(&rl, &get());
    assert!(v.response_headers.is_empty());
}

#[test]
fn keys_are_isolated() {
    let h = Host::new();
    let rl = limiter(r#"{"rules":[{"name":"u","key":{"header":"x-user"},"limits":[{"requests":2,"per":"1h"}]}]}"#, &h);
    let alice = get().with("x-user", "alice");
    let bob = get().with("x-user", "bob");
    assert!(allowed(&h.run(&rl, &alice)) && allowed(&h.run(&rl, &alice)));
    assert!(!allowed(&h.run(&rl, &alice)));
    assert!(allowed(&h.run(&rl, &bob)) && allowed(&h.run(&rl, &bob)));
    assert!(!allowed(&h.run(&rl, &bob)));
}

#[test]
fn several_limits_on_a_rule_apply_together_and_a_refusal_charges_none() {
    let mut h = Host::new();
    let rl = limiter(r#"{"rules":[{"name":"u","limits":[{"requests":2,"per":"1s"},{"requests":3,"per":"1h"}]}]}"#, &h);
    assert!(allowed(&h.run(&rl, &get())) && allowed(&h.run(&rl, &get())));
    // The per-second limit refuses; the hourly one must not be charged for it.
    for _ in 0..10 {
        assert!(!allowed(&h.run(&rl, &get())));
    }
    h.now += Duration::from_secs(1);
    assert!(allowed(&h.run(&rl, &get())), "third of the hour");
    h.now += Duration::from_secs(1);
    let v = h.run(&rl, &get());
    assert_eq!(
        header(&reply(&v).headers, "retry-after"),
        Some("1198"),
        "hourly limit: one per 20 min, the first of the three taken 2 s ago"
    );
}

#[test]
fn every_matching_rule_is_charged_and_any_refusal_refuses() {
    let h = Host::new();
    let rl = limiter(
        r#"{"rules":[
            {"name":"api","match":[{"uri":{"prefix":"/api"}}],"limits":[{"requests":3,"per":"1h"}]},
            {"name":"all","limits":[{"requests":5,"per":"1h"}]}]}"#,
        &h,
    );
    let other = TestRequest::new("GET", "/other");
    assert!((0..3).all(|_| allowed(&h.run(&rl, &get()))));
    assert!(!allowed(&h.run(&rl, &get())), "api exhausted");
    assert_eq!(h.count(1, Metric::Allowed), 4, "`all` was charged for the refused request too");
    assert!(allowed(&h.run(&rl, &other)));
    assert!(!allowed(&h.run(&rl, &other)), "all exhausted");
    let v = h.run(&rl, &get());
    assert_eq!(header(&reply(&v).headers, "ratelimit-remaining"), Some("0"));
}

#[test]
fn shadow_rules_count_but_let_through() {
    let h = Host::new();
    let rl = limiter(r#"{"rules":[{"name":"s","shadow":true,"limits":[{"requests":2,"per":"1h"}]}]}"#, &h);
    let verdicts: Vec<_> = (0..5).map(|_| h.run(&rl, &get())).collect();
    assert!(verdicts.iter().all(allowed));
    assert_eq!(header(&verdicts[4].response_headers, "ratelimit-remaining"), Some("0"));
    assert_eq!(h.count(0, Metric::ShadowLimited), 3);
    assert_eq!(h.count(0, Metric::Limited), 0);
}

#[test]
fn missing_keys_share_the_unknown_bucket_or_pass() {
    let h = Host::new();
    let rl = limiter(r#"{"rules":[{"name":"u","key":{"header":"x-user"},"limits":[{"requests":1,"per":"1h"}]}]}"#, &h);
    assert!(allowed(&h.run(&rl, &get())));
    assert!(!allowed(&h.run(&rl, &get())), "second keyless request: unknown bucket is empty");
    assert!(allowed(&h.run(&rl, &get().with("x-user", "carol"))));
    assert_eq!(h.count(0, Metric::MissingKey), 2);
    let rl = limiter(
        r#"{"rules":[{"name":"v","key":{"claim":"sub"},"onMissingKey":"allow","limits":[{"requests":1,"per":"1h"}]}]}"#,
        &h,
    );
    assert!((0..5).all(|_| allowed(&h.run(&rl, &get()))));
    let claims = get().with_property(&["meshplug_claims"], br#"{"sub":"u1"}"#);
    assert!(allowed(&h.run(&rl, &claims)));
    assert!(!allowed(&h.run(&rl, &claims)));
}

#[test]
fn two_workers_share_one_limit_exactly() {
    let h = Host::new();
    let json = r#"{"rules":[{"name":"g","limits":[{"requests":10,"per":"1h"}]}]}"#;
    let w1 = limiter(json, &h);
    let w2 = limiter(json, &h);
    let admitted = (0..30).filter(|i| allowed(&h.run(if i % 2 == 0 { &w1 } else { &w2 }, &get()))).count();
    assert_eq!(admitted, 10);
}

#[test]
fn lost_races_are_retried_and_exhausted_retries_follow_on_error() {
    let h = Host::new();
    let rl = limiter(r#"{"rules":[{"name":"g","limits":[{"requests":10,"per":"1h"}]}]}"#, &h);
    assert!(allowed(&h.run(&rl, &get())), "creates the slot");
    h.shared.fail_next_cas(5);
    assert!(allowed(&h.run(&rl, &get())), "won after 5 lost races");
    h.shared.fail_next_cas(1000);
    let v = h.run(&rl, &get());
    assert_eq!(reply(&v).status, 429, "onError: deny by default");
    assert_eq!(h.count(0, Metric::Errors), 1);
    let rl = limiter(r#"{"rules":[{"name":"g2","limits":[{"requests":10,"per":"1h"}]}],"onError":"allow"}"#, &h);
    assert!(allowed(&h.run(&rl, &get())));
    h.shared.fail_next_cas(1000);
    assert!(allowed(&h.run(&rl, &get())));
}

#[test]
fn clock_trouble_never_refills_early_by_more_than_the_jump() {
    let mut h = Host::new();
    let rl = limiter(r#"{"rules":[{"name":"g","limits":[{"requests":2,"per":"10s"}]}]}"#, &h);
    assert!(allowed(&h.run(&rl, &get())) && allowed(&h.run(&rl, &get())));
    // Backwards by an hour: still refused, no panic.
    h.now = T0 - Duration::from_secs(3600);
    assert!(!allowed(&h.run(&rl, &get())));
    // Back to 0 (a broken clock): still refused.
    h.now = Duration::ZERO;
    assert!(!allowed(&h.run(&rl, &get())));
    // Forward again to T0 + 4 s: the steps back were written down as clamps (so the bucket could drain
    // from the stepped clock on), so the bucket is at most full again: never more than its burst.
    h.now = T0 + Duration::from_secs(4);
    assert!((0..10).filter(|_| allowed(&h.run(&rl, &get()))).count() <= 2);
    // A jump of ten years refills the bucket to full, and no more.
    h.now = T0 + Duration::from_secs(10 * 365 * 86400);
    assert_eq!((0..10).filter(|_| allowed(&h.run(&rl, &get()))).count(), 2);
    h.now = Duration::from_nanos(u64::MAX);
    let _ = h.run(&rl, &get());
}

#[test]
fn a_flood_of_distinct_keys_cannot_grow_memory_or_reset_any_exhausted_bucket() {
    let h = Host::new();
    let rl = limiter(
        r#"{"rules":[{"name":"u","key":{"header":"x-user"},"limits":[{"requests":3,"per":"1h"}]}],"maxKeys":1000}"#,
        &h,
    );
    let victim = get().with("x-user", "victim");
    let flooder = get().with("x-user", "flooder");
    for r in [&victim, &flooder] {
        while allowed(&h.run(&rl, r)) {}
    }
    // One million distinct keys (fewer when compiled to Wasm, where the test runs ~20× slower).
    let n: u32 = if cfg!(target_arch = "wasm32") { 100_000 } else { 1_000_000 };
    for i in 0..n {
        let _ = h.run(&rl, &get().with("x-user", &format!("k{i}")));
    }
    assert!(h.shared.len() <= 1000 + 1, "{} shared-data keys for maxKeys 1000 (+ the seed)", h.shared.len());
    assert!(h.count(0, Metric::SlotsCreated) <= 1000);
    assert!(!allowed(&h.run(&rl, &victim)), "the victim's exhausted bucket was reset");
    assert!(!allowed(&h.run(&rl, &flooder)), "the flooder's own exhausted bucket was reset");
    assert!(h.count(0, Metric::SharedBucket) > 0, "at the bound, keys share buckets");
}

#[test]
fn a_clock_step_back_refuses_for_at_most_one_interval_and_forward_admits_only_the_burst() {
    let mut h = Host::new();
    let rl = limiter(r#"{"rules":[{"name":"g","limits":[{"requests":10,"per":"10s","burst":0}]}]}"#, &h);
    assert_eq!((0..10).filter(|_| allowed(&h.run(&rl, &get()))).count(), 10);
    // The wall clock steps back an hour: the stored TATs are an hour ahead. The bucket counts as empty
    // (as it was), and one emission interval later (1 s) a request is admitted again, not an hour later.
    h.now -= Duration::from_secs(3600);
    assert!(!allowed(&h.run(&rl, &get())), "still empty right after the step");
    h.now += Duration::from_millis(1001);
    let v = h.run(&rl, &get());
    assert!(allowed(&v), "admissible again after one interval, not after an hour: {v:?}");
    assert!(!allowed(&h.run(&rl, &get())), "and no more than the refill");
    // The clock steps forward a day: the bucket is full, never more than full.
    h.now += Duration::from_secs(86_400);
    assert_eq!((0..30).filter(|_| allowed(&h.run(&rl, &get()))).count(), 10);
}

// ---- global rules ----

const GLOBAL: &str = r#"{"rateLimitService":{"cluster":"rls","domain":"shop","timeout":"250ms"},
  "rules":[{"name":"g","key":{"header":"x-user"},"limits":[{"requests":10,"per":"60s"}],
            "global":{"descriptors":[{"key":"user","header":"x-user"},{"key":"tier","value":"gold"}],"hitsAddend":2}}]}"#;

fn response(code: u64, remaining: u64, reset: u64) -> Vec<u8> {
    response_of(code, &[(code, remaining, reset)])
}

/// A `RateLimitResponse`: overall code, one `DescriptorStatus` (code, remaining, reset seconds) per
/// descriptor (limit 5 per hour), and the header `x-ratelimit-by: rls`.
fn response_of(overall: u64, statuses: &[(u64, u64, u64)]) -> Vec<u8> {
    use meshplug_common::proto::Writer;
    let mut r = Writer::default();
    r.uint(1, overall);
    for (code, remaining, reset) in statuses {
        let mut limit = Writer::default();
        limit.uint(1, 5).uint(2, 3);
        let mut dur = Writer::default();
        dur.uint(1, *reset);
        let mut status = Writer::default();
        status.uint(1, *code).message(2, &limit.bytes).uint(3, *remaining).message(4, &dur.bytes);
        r.message(2, &status.bytes);
    }
    let mut header = Writer::default();
    header.bytes(1, b"x-ratelimit-by").bytes(2, b"rls");
    r.message(3, &header.bytes);
    r.bytes
}

fn call(v: &Verdict) -> &GrpcCall {
    match &v.action {
        Action::Call(c) => c,
        other => panic!("no call: {other:?}"),
    }
}

#[test]
fn a_global_rule_asks_the_service_after_the_local_limits() {
    let h = Host::new();
    let rl = limiter(GLOBAL, &h);
    let req = get().with("x-user", "alice");
    let v = h.run(&rl, &req);
    let c = call(&v);
    assert_eq!((&*c.cluster, c.service, c.method), ("rls", global::SERVICE, global::METHOD));
    assert_eq!(c.timeout, Duration::from_millis(250));
    assert_eq!(
        &*c.upstream,
        meshplug_common::reply::grpc_service("rls", "rls").as_slice(),
        "cluster and :authority, built at configure time"
    );
    assert_eq!(header(&c.carry.headers, "ratelimit-remaining"), Some("9"), "the local quota travels with the call");
    assert_eq!(c.carry.indices, vec![0], "the rule of each descriptor travels with the call");
    assert_eq!(
        c.message,
        global::encode_request(
            "shop",
            &[global::Descriptor {
                entries: vec![("user".into(), "alice".into()), ("tier".into(), "gold".into())],
                hits_addend: Some(2)
            }]
        )
    );
    // Over the local limit: refused without asking.
    for _ in 0..9 {
        h.run(&rl, &req);
    }
    assert!(matches!(h.run(&rl, &req).action, Action::Respond(_)), "11th request: local refusal, no call");
}

#[test]
fn the_services_answer_decides() {
    let h = Host::new();
    let rl = limiter(GLOBAL, &h);
    let req = get().with("x-user", "alice");
    let carry = call(&h.run(&rl, &req)).carry.clone();
    let env = Env { shared: &h.shared, metrics: &h.metrics, now: h.now };
    let ok = rl.on_global_response(&env, CallOutcome::Ok(response(1, 4, 30)), carry.clone());
    assert!(allowed(&ok));
    assert_eq!(
        header(&ok.response_headers, "ratelimit-remaining"),
        Some("4"),
        "the service's quota is tighter (4 < 9)"
    );
    assert_eq!(header(&ok.response_headers, "x-ratelimit-by"), Some("rls"));
    let over = rl.on_global_response(&env, CallOutcome::Ok(response(2, 0, 30)), carry.clone());
    let r = reply(&over);
    assert_eq!(r.status, 429);
    assert_eq!(header(&r.headers, "retry-after"), Some("30"));
    assert_eq!(header(&r.headers, "ratelimit-limit"), Some("5"));
    assert_eq!(h.count(0, Metric::GlobalLimited), 1);
    assert_eq!(h.count(0, Metric::GlobalAllowed), 1);
}

/// Two global rules, the first not matching this request: the call asks about the second only, and
/// the answer's one status is that rule's (as carried with the call, not derived again).
#[test]
fn each_status_is_the_rule_its_descriptor_came_from() {
    const TWO: &str = r#"{"rateLimitService":{"cluster":"rls","domain":"shop"},
      "rules":[{"name":"admin","match":[{"uri":{"prefix":"/admin"}}],"global":{"descriptors":[{"key":"a","value":"1"}]}},
               {"name":"all","global":{"descriptors":[{"key":"user","header":"x-user"}]}},
               {"name":"gold","global":{"descriptors":[{"key":"tier","value":"gold"}]},"shadow":true}]}"#;
    let h = Host::new();
    let rl = limiter(TWO, &h);
    let req = get().with("x-user", "alice");
    let carry = call(&h.run(&rl, &req)).carry.clone();
    assert_eq!(carry.indices, vec![1, 2]);
    let env = Env { shared: &h.shared, metrics: &h.metrics, now: h.now };
    let v = rl.on_global_response(&env, CallOutcome::Ok(response_of(2, &[(1, 3, 9), (2, 0, 9)])), carry.clone());
    assert!(allowed(&v), "only the shadow rule is over: let through");
    assert_eq!(h.count(1, Metric::GlobalAllowed), 1);
    assert_eq!(h.count(2, Metric::GlobalShadowLimited), 1);
    assert_eq!(h.count(0, Metric::GlobalAllowed) + h.count(0, Metric::GlobalLimited), 0, "not asked about");
    let v = rl.on_global_response(&env, CallOutcome::Ok(response_of(2, &[(2, 0, 7), (1, 3, 9)])), carry);
    assert_eq!(reply(&v).status, 429, "the enforcing rule is over");
    assert_eq!(h.count(1, Metric::GlobalLimited), 1);
}

/// The overall code decides, as for Envoy's own `ratelimit` filter
/// (source/extensions/filters/common/ratelimit/ratelimit_impl.cc); an answer without statuses is
/// Limitador's (limitador-server/src/envoy_rls/server.rs answers `statuses: vec![]`).
#[test]
fn the_overall_code_decides_and_an_answer_without_statuses_is_read() {
    const TWO: &str = r#"{"rateLimitService":{"cluster":"rls","domain":"shop"},
      "rules":[{"name":"all","global":{"descriptors":[{"key":"user","header":"x-user"}]}},
               {"name":"gold","global":{"descriptors":[{"key":"tier","value":"gold"}]},"shadow":true}]}"#;
    let h = Host::new();
    let rl = limiter(TWO, &h);
    let carry = call(&h.run(&rl, &get().with("x-user", "alice"))).carry.clone();
    let env = Env { shared: &h.shared, metrics: &h.metrics, now: h.now };
    let answer = |bytes: Vec<u8>| rl.on_global_response(&env, CallOutcome::Ok(bytes), carry.clone());
    // Limitador: OK, no statuses → through; OVER_LIMIT, no statuses → every descriptor over.
    assert!(allowed(&answer(vec![0x08, 0x01])));
    assert_eq!((h.count(0, Metric::GlobalAllowed), h.count(1, Metric::GlobalAllowed)), (1, 1));
    let over = answer(vec![0x08, 0x02]);
    let r = reply(&over);
    assert_eq!((r.status, header(&r.headers, "retry-after")), (429, Some("1")));
    assert_eq!((h.count(0, Metric::GlobalLimited), h.count(1, Metric::GlobalShadowLimited)), (1, 1));
    // UNKNOWN (0) is not over the limit, as in Envoy.
    assert!(allowed(&answer(vec![])));
    // A status OVER_LIMIT under an overall OK: Envoy lets it through, so do we.
    assert!(allowed(&answer(response_of(1, &[(2, 0, 5), (1, 1, 5)]))));
    // OVER_LIMIT overall with statuses that name none: every descriptor over.
    assert_eq!(reply(&answer(response_of(2, &[(1, 1, 5), (1, 1, 5)]))).status, 429);
    assert_eq!(h.count(0, Metric::GlobalBadResponse), 0);
}

/// The request's `hits_addend` is the descriptors' when they all agree (Limitador reads only it).
#[test]
fn the_shared_hits_addend_is_the_requests() {
    use meshplug_common::proto::{Field, Reader};
    let d = |h| global::Descriptor { entries: vec![("k".into(), "v".into())], hits_addend: h };
    let request_hits = |ds: &[global::Descriptor]| {
        Reader::new(&global::encode_request("shop", ds)).find_map(|f| match f {
            Ok(Field::Varint(3, v)) => Some(v),
            _ => None,
        })
    };
    assert_eq!(request_hits(&[d(Some(3)), d(Some(3))]), Some(3));
    assert_eq!(request_hits(&[d(Some(3)), d(Some(2))]), None, "each descriptor keeps its own");
    assert_eq!(request_hits(&[d(Some(3)), d(None)]), None);
    assert_eq!(request_hits(&[d(None)]), None);
}

#[test]
fn service_failures_follow_on_error_and_are_counted() {
    let h = Host::new();
    let rl = limiter(GLOBAL, &h);
    let req = get().with("x-user", "alice");
    let carry = call(&h.run(&rl, &req)).carry.clone();
    let env = Env { shared: &h.shared, metrics: &h.metrics, now: h.now };
    let timeout = rl.on_global_response(&env, CallOutcome::Failed(4), carry.clone());
    assert_eq!(reply(&timeout).status, 500);
    assert_eq!(h.count(0, Metric::GlobalTimeout), 1);
    let down = rl.on_global_response(&env, CallOutcome::Failed(14), carry.clone());
    assert_eq!(reply(&down).status, 500);
    assert_eq!(h.count(0, Metric::GlobalUnavailable), 1);
    let garbage = rl.on_global_response(&env, CallOutcome::Ok(vec![0xff; 7]), carry.clone());
    assert_eq!(reply(&garbage).status, 500);
    // A well-formed answer with the wrong number of statuses is garbage too.
    let two = response_of(1, &[(1, 1, 1), (1, 1, 1)]);
    let _ = rl.on_global_response(&env, CallOutcome::Ok(two), carry.clone());
    assert_eq!(h.count(0, Metric::GlobalBadResponse), 2);
    // An answer the host could not hand over whole (or over the size cap) is a bad one, not an empty OK.
    let unreadable = rl.on_global_response(&env, CallOutcome::Unreadable("too big"), carry.clone());
    assert_eq!(reply(&unreadable).status, 500);
    assert_eq!(h.count(0, Metric::GlobalBadResponse), 3);

    let allow = limiter(&GLOBAL.replace(r#""timeout":"250ms""#, r#""timeout":"250ms","onError":"allow""#), &h);
    let carry = call(&h.run(&allow, &req)).carry.clone();
    assert!(allowed(&allow.on_global_response(&env, CallOutcome::Failed(14), carry)));
    let shadow = limiter(&GLOBAL.replace(r#""name":"g","#, r#""name":"g","shadow":true,"#), &h);
    let carry = call(&h.run(&shadow, &req)).carry.clone();
    assert!(
        allowed(&shadow.on_global_response(&env, CallOutcome::Ok(response(2, 0, 9)), carry.clone())),
        "shadow: counted, let through"
    );
    assert!(allowed(&shadow.on_global_response(&env, CallOutcome::Failed(14), carry)), "a shadow rule never refuses");
}

#[test]
fn headers_the_service_may_not_set_are_dropped_and_counted() {
    let (kept, dropped) = global::usable_headers(
        [
            ("content-length", "0"),
            ("transfer-encoding", "chunked"),
            ("connection", "close"),
            ("host", "evil"),
            (":authority", "evil"),
            ("x-ok", "1"),
            ("x-split", "a\r\nb"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    assert_eq!(kept, vec![("x-ok".to_string(), "1".to_string())]);
    assert_eq!(dropped, 6);
}
