//! What the canary filter decides for one request. No proxy-wasm here.
//!
//! Order: `override` (only when configured, only to an allowed variant) → `rules` in order → the split:
//! a sticky key if `stickyBy` names one the request has, else the pinning cookie (with `setCookie`),
//! else a random draw. Weights of 0 take a variant out of the split and make its cookie invalid (a
//! kill switch); rules and override still reach it, so testers can keep trying a fix.
//!
//! Sticky assignment is monotonic: the key's keyed hash (SipHash-1-3 keyed by `split.seed`, the same in
//! every worker, replica and restart) is a point `u` in [0, 1); variants after the first own consecutive
//! slices of [0, 1) from 0 upwards in list order, the first variant takes the rest. Raising the second
//! variant's share (10% → 20%) only widens its slice `[0, share)`, so every user already on it stays.

use crate::config::{CanaryConfig, StickyBy};
use meshplug_common::config::ConfigError;
use meshplug_common::host::{Metrics, Random, Request};
use meshplug_common::path::cookie_values;
use meshplug_common::reply::{Header, Text};
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::rc::Rc;

pub const FILTER: &str = "canary";

meshplug_common::metric_table! {
    /// How a variant was chosen; also the metric names `meshplug.canary.<variant>.<via>`.
    pub enum Via / VIA_NAMES {
        Override => "override",
        Rule => "rule",
        Sticky => "sticky",
        Random => "random",
        Cookie => "cookie",
    }
}
/// Per variant: `routed`, then one per [`Via`].
const PER_VARIANT: usize = 1 + VIA_NAMES.len();

/// Metric names, in index order: per variant `<v>.routed`, `<v>.override` …; then `override_refused`.
pub fn metric_names(config: &CanaryConfig) -> Vec<String> {
    let mut names: Vec<String> = config
        .split
        .variants
        .iter()
        .flat_map(|v| {
            std::iter::once(format!("{}.routed", v.name))
                .chain(VIA_NAMES.iter().map(move |p| format!("{}.{p}", v.name)))
        })
        .collect();
    names.push("override_refused".into());
    names
}

/// The filter's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub variant: Text,
    pub via: Via,
    /// The routing header and its value (the client's value is removed first).
    pub route_header: Header,
    /// Headers for the response: the variant (`exposeVariant`), the pinning cookie.
    pub response_headers: Vec<Header>,
}

pub struct Canary {
    config: CanaryConfig,
    /// The sum of the weights (> 0, checked at load).
    total: u64,
    keys: (u64, u64),
    max_age_secs: u64,
    /// The routing header's name and the variants' names, made once: a decision shares them.
    header: Rc<str>,
    names: Vec<Rc<str>>,
}

impl Canary {
    pub fn new(config: CanaryConfig) -> Self {
        let mut h = SipHasher13::new_with_keys(0x6d65_7368_706c_7567, 0x6361_6e61_7279_0001);
        h.write(config.split.seed.as_bytes());
        let k0 = h.finish();
        h.write_u8(0xff);
        let k1 = h.finish();
        let max_age_secs = config.split.set_cookie.as_ref().map(|c| c.max_age.0.as_secs()).unwrap_or(0);
        let total = config.split.variants.iter().map(|v| u64::from(v.weight)).sum();
        let header = Rc::from(config.header.as_str());
        let names = config.split.variants.iter().map(|v| Rc::from(v.name.as_str())).collect();
        Self { config, total, keys: (k0, k1), max_age_secs, header, names }
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        CanaryConfig::from_json(bytes).map(Self::new)
    }

    pub fn config(&self) -> &CanaryConfig {
        &self.config
    }

    /// The variant owning point `b` of [0, total): later variants first, the first takes the rest.
    fn variant_at(&self, b: u64) -> usize {
        let mut acc = 0u64;
        for (i, v) in self.config.split.variants.iter().enumerate().skip(1) {
            acc += u64::from(v.weight);
            if b < acc {
                return i;
            }
        }
        0
    }

    /// The sticky variant of `key`.
    pub fn sticky(&self, key: &[u8]) -> usize {
        let mut h = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        h.write(key);
        let u = h.finish();
        // u / 2^64 scaled to [0, total): the same point keeps its place whatever the total.
        let b = ((u128::from(u) * u128::from(self.total)) >> 64) as u64;
        self.variant_at(b)
    }

    /// The sticky key, as bytes (a header or cookie value that is not UTF-8 is a key like any other).
    fn sticky_key(&self, req: &dyn Request) -> Option<Vec<u8>> {
        let key = match self.config.split.sticky_by.as_ref()? {
            StickyBy::Cookie(name) => cookie_value(req, name)?,
            StickyBy::Header(name) => req.header(name)?,
            StickyBy::Claim(name) => req.claim(name)?.into_bytes(),
            StickyBy::ClientIp => meshplug_common::host::source_ip(req)?.to_string().into_bytes(),
        };
        (!key.is_empty()).then_some(key)
    }

    fn metric(&self, variant: usize, offset: usize) -> usize {
        variant * PER_VARIANT + offset
    }

    /// Decides one request.
    pub fn on_request(&self, req: &dyn Request, random: &mut dyn Random, metrics: &dyn Metrics) -> Decision {
        let c = &self.config;
        let mut chosen: Option<(usize, Via)> = None;
        if let Some(o) = &c.override_ {
            if let Some(asked) = req.header(&o.header) {
                // A value that is not UTF-8 names no variant: refused like any unknown one.
                let asked = String::from_utf8(asked).unwrap_or_default();
                match c.variant_index(&asked).filter(|_| o.allowed.contains(&asked)) {
                    Some(i) => chosen = Some((i, Via::Override)),
                    None => metrics.increment(c.split.variants.len() * PER_VARIANT),
                }
            }
        }
        if chosen.is_none() {
            chosen = c
                .rules
                .iter()
                .find(|r| r.matches.matches(req))
                .and_then(|r| c.variant_index(&r.variant))
                .map(|i| (i, Via::Rule));
        }
        if chosen.is_none() {
            if let Some(key) = self.sticky_key(req) {
                chosen = Some((self.sticky(&key), Via::Sticky));
            }
        }
        if chosen.is_none() {
            if let Some(sc) = &c.split.set_cookie {
                let pinned = cookie_value(req, &sc.name).and_then(|v| String::from_utf8(v).ok());
                chosen = pinned
                    .and_then(|p| c.variant_index(&p))
                    .filter(|i| c.split.variants.get(*i).is_some_and(|v| v.weight > 0))
                    .map(|i| (i, Via::Cookie));
            }
        }
        let (index, via) = chosen.unwrap_or_else(|| {
            let total = u32::try_from(self.total).unwrap_or(u32::MAX);
            (self.variant_at(u64::from(random.below(total))), Via::Random)
        });
        let name = self.names.get(index).map_or(Text::Static(""), Text::from);
        metrics.increment(self.metric(index, 0));
        metrics.increment(self.metric(index, 1 + via as usize));
        let mut response_headers = Vec::new();
        if c.expose_variant {
            response_headers.push((Text::from(&self.header), name.clone()));
        }
        if let (Via::Random, Some(sc)) = (via, &c.split.set_cookie) {
            response_headers.push((
                Text::Static("set-cookie"),
                Text::Owned(format!(
                    "{}={name}; Max-Age={}; Path={}; HttpOnly; SameSite=Lax",
                    sc.name, self.max_age_secs, sc.path
                )),
            ));
        }
        Decision { variant: name.clone(), via, route_header: (Text::from(&self.header), name), response_headers }
    }
}

/// The first value of cookie `name` across the request's `cookie` headers (HTTP/2 may split them).
fn cookie_value(req: &dyn Request, name: &str) -> Option<Vec<u8>> {
    cookie_values(&req.header_values("cookie"), name).next().map(<[u8]>::to_vec)
}

#[cfg(test)]
#[path = "tests/logic.rs"]
mod tests;
