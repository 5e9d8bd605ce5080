//! What filter logic needs from its host, as small traits.
//!
//! The proxy-wasm implementations live in [`crate::wasm`] (compiled for Wasm only); tests use the
//! in-memory ones in [`crate::testing`]. Filter logic depends on these traits only, so it runs natively,
//! in a Wasm test runner, inside its own module or inside the bundle.

use std::time::Duration;

/// Read access to the request headers being decided (pseudo-headers such as `:path` included).
///
/// Values are the bytes Envoy holds: a client can put any byte but NUL, CR and LF in a header value
/// (Latin-1 or GBK user agents, broken proxies), so nothing here assumes UTF-8. Each filter decides
/// per use: matchers compare bytes, keys are built from bytes, tokens must be ASCII (see the filters'
/// "Hostile input" sections).
pub trait RequestHeaders {
    /// The first value of header `name` (lower-case), or `None` when absent.
    fn header(&self, name: &str) -> Option<Vec<u8>>;
    /// Every value of header `name` (lower-case), in the order Envoy holds them.
    fn header_values(&self, name: &str) -> Vec<Vec<u8>>;

    /// Header `name` as Envoy's header matchers see it (route matching, RBAC, Istio's
    /// AuthorizationPolicy `request.headers`): every value joined with `,`
    /// (`Http::HeaderUtility::getAllOfHeaderAsString` in Envoy's `source/common/http/header_utility.cc`).
    /// A client sending `x-client: web` and `x-client: mobile-legacy` is judged as `web,mobile-legacy`,
    /// not as its first value: a matcher that read only the first value would let that request escape
    /// a DENY on `*-legacy`, which Istio's own filters would refuse.
    fn header_joined(&self, name: &str) -> Option<Vec<u8>> {
        let mut values = self.header_values(name);
        match values.len() {
            0 => None,
            1 => values.pop(),
            _ => Some(values.join(&b',')),
        }
    }
}

/// Request attributes beyond headers (Envoy's attribute paths, e.g. `["source", "address"]`).
pub trait RequestProperties {
    /// The raw value of the attribute at `path`, or `None` when the host has none.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;

    /// The claim `name` of the request's verified JWT claims as a key string
    /// ([`crate::claims::claim_of`]), or `None` when there are no claims or no such claim. By default
    /// the published claims property is read and parsed; a host that already holds the claims parsed
    /// (the bundle's chain) answers from them.
    fn claim(&self, name: &str) -> Option<String> {
        crate::claims::claim_value(&self.property(&[crate::claims::CLAIMS_PROPERTY])?, name)
    }
}

/// Everything a filter can read about a request.
pub trait Request: RequestHeaders + RequestProperties {}
impl<T: RequestHeaders + RequestProperties> Request for T {}

/// The connection's client address as Envoy sees it (`source.address`, which honours the listener's
/// `use_remote_address` / `xff_num_trusted_hops`), without the port.
pub fn source_ip(req: &dyn RequestProperties) -> Option<std::net::IpAddr> {
    let source = req.property(&["source", "address"])?;
    parse_ip(std::str::from_utf8(&source).ok()?)
}

/// `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`.
pub fn parse_ip(s: &str) -> Option<std::net::IpAddr> {
    s.parse::<std::net::IpAddr>().ok().or_else(|| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

/// A source of uniformly distributed random numbers.
pub trait Random {
    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u32) -> u32;
    /// Any `u64`.
    fn next_u64(&mut self) -> u64;
}

/// Wall-clock time from the host.
pub trait Clock {
    /// Time since the Unix epoch. All workers of one Envoy read the same clock.
    fn now(&self) -> Duration;
}

/// Failure of a shared-data write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedDataError {
    /// Another worker changed the value since it was read (compare-and-swap lost).
    CasMismatch,
    /// Any other host error.
    Host(String),
}

/// The CAS token to pass when writing a key believed absent: Envoy (proxy-wasm-cpp-host) ignores the
/// token when the key does not exist, and refuses the write (`CasMismatch`) when it does — unless its
/// token happens to be exactly this value. So a write with it creates the key only if nobody else has
/// meanwhile; a plain write (token 0) could overwrite another worker's fresh value. Envoy hands out
/// tokens from one process-wide counter, so a clash needs that counter to sit at `u32::MAX` at the very
/// moment two workers race to create the same key.
pub const CREATE_ONLY: u32 = u32::MAX;

/// Envoy's process-wide key/value store with compare-and-swap, shared by all worker threads.
pub trait SharedData {
    /// The value and its CAS token; `(None, None)` when the key was never set.
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Writes `value`; with `cas = Some(token)` only if the value is unchanged since it was read (a key
    /// that does not exist is always written, whatever the token, as Envoy does).
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SharedDataError>;
}

/// Counters, addressed by their index in the filter's metric table (see [`crate::metrics`]).
pub trait Metrics {
    fn increment(&self, metric: usize);
}

/// A fast pseudo-random generator seeded once per VM (fastrand's wyrand). Not for secrets.
pub struct SeededRandom(fastrand::Rng);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        Self(fastrand::Rng::with_seed(seed))
    }

    /// Seeded from the host's entropy (WASI `random_get` in Envoy).
    pub fn from_entropy() -> Self {
        Self(fastrand::Rng::new())
    }
}

impl Random for SeededRandom {
    fn below(&mut self, n: u32) -> u32 {
        self.0.u32(0..n.max(1))
    }

    fn next_u64(&mut self) -> u64 {
        self.0.u64(..)
    }
}
