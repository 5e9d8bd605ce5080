//! Running things on this machine: finding Envoy ([`envoy`]), rendering a bootstrap ([`bootstrap`]),
//! running Envoy until dropped ([`run`]), echo and stub upstreams ([`echo`], [`stub`]), a client
//! ([`client`]), helper daemons from Debian packages ([`daemon`]: [`redis`], [`registry`]), the local lab
//! that runs a composition's chain in front of echo upstreams ([`local`], `meshplug up`) and the
//! examples' demo token ([`demo`]).
//!
//! May use: `deploy` (the composition, module paths, the rate limit service's config). Never `istio`
//! or `load`, which drive the lab.

pub mod bootstrap;
pub mod client;
pub mod daemon;
pub mod demo;
pub mod echo;
pub mod envoy;
pub mod local;
pub mod redis;
pub mod registry;
pub mod run;
pub mod stub;
