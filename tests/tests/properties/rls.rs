//! rate-limit's global rules speak Envoy's rate limit service protocol with a hand-written codec
//! (`meshplug_common::proto`, `rate_limit::global`). Held to the consumer's rules: the messages we
//! write are read by prost with the generated types of Envoy's own protos (`envoy-types`, the same
//! types meshplug-rls and every Rust RLS use), and what prost writes we read back field for field;
//! arbitrary bytes never panic the reader.

use crate::{bytes, config};
use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{DescriptorStatus, RateLimit};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use proptest::prelude::*;
use prost::Message;
use rate_limit::global::{decode_response, encode_request, Descriptor};

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-z0-9/%.\u{e9}\u{4e2d}-]{0,12}").unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn requests_we_write_are_what_prost_reads(
        domain in text(),
        descriptors in proptest::collection::vec(
            (proptest::collection::vec((text(), text()), 0..4), proptest::option::of(1u32..1000)),
            0..4,
        ),
    ) {
        let ours: Vec<Descriptor> = descriptors.iter().map(|(e, h)| Descriptor { entries: e.clone(), hits_addend: *h }).collect();
        let read = RateLimitRequest::decode(encode_request(&domain, &ours).as_slice()).unwrap();
        prop_assert_eq!(&read.domain, &domain);
        prop_assert_eq!(read.descriptors.len(), ours.len());
        for (got, want) in read.descriptors.iter().zip(&ours) {
            let entries: Vec<(String, String)> = got.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
            prop_assert_eq!(&entries, &want.entries);
            prop_assert_eq!(got.hits_addend.as_ref().map(|h| h.value), want.hits_addend.map(u64::from));
        }
        // The request's own hits_addend (what Limitador reads): the descriptors' when they all agree.
        let shared = ours.first().and_then(|d| d.hits_addend).filter(|h| ours.iter().all(|d| d.hits_addend == Some(*h)));
        prop_assert_eq!(read.hits_addend, shared.unwrap_or(0));
    }

    #[test]
    fn answers_prost_writes_are_what_we_read(
        overall in 0i32..3,
        statuses in proptest::collection::vec((0i32..3, proptest::option::of(0u32..10_000), 0u32..10_000, proptest::option::of((0i64..100_000, 0i32..1_000_000_000))), 0..5),
        headers in proptest::collection::vec((text(), text()), 0..3),
        body in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let message = RateLimitResponse {
            overall_code: overall,
            statuses: statuses.iter().map(|(code, limit, remaining, reset)| DescriptorStatus {
                code: *code,
                current_limit: limit.map(|l| RateLimit { requests_per_unit: l, unit: 2, name: "n".into() }),
                limit_remaining: *remaining,
                duration_until_reset: reset.map(|(seconds, nanos)| PbDuration { seconds, nanos }),
                ..Default::default()
            }).collect(),
            response_headers_to_add: headers.iter().map(|(k, v)| HeaderValue { key: k.clone(), value: v.clone(), ..Default::default() }).collect(),
            raw_body: body.clone(),
            ..Default::default()
        };
        let ours = decode_response(&message.encode_to_vec()).unwrap();
        prop_assert_eq!(ours.overall_code, overall as u64);
        prop_assert_eq!(ours.statuses.len(), statuses.len());
        for (got, (code, limit, remaining, reset)) in ours.statuses.iter().zip(&statuses) {
            prop_assert_eq!(got.code, *code as u64);
            prop_assert_eq!(got.limit, *limit);
            prop_assert_eq!(got.remaining, *remaining);
            prop_assert_eq!(got.reset_secs, reset.map(|(s, n)| s as u64 + u64::from(n > 0)));
        }
        let got_headers: Vec<(String, String)> = ours.response_headers.clone();
        prop_assert_eq!(got_headers, headers);
        prop_assert_eq!(ours.raw_body, body);
    }

    #[test]
    fn any_bytes_as_an_answer(b in bytes()) {
        let _ = decode_response(&b);
    }
}
