//! The meshplug harness: builds the filters, renders a composition into a local Envoy config, runs the
//! real Envoy with echo upstreams, and drives tests. The `meshplug` CLI is a thin layer over this.

pub mod bench;
pub mod bootstrap;
pub mod client;
pub mod composition;
pub mod daemon;
pub mod echo;
pub mod envoy;
pub mod filters;
pub mod global;
pub mod hostile;
pub mod istio;
pub mod local;
pub mod manifests;
pub mod oci;
pub mod redis;
pub mod registry;
pub mod render;
pub mod run;
pub mod soak;
pub mod stub;
