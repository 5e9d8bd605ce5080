//! What we ship, made from a composition without running anything: the suite's filters and their
//! module builds ([`filters`]), the step after cargo that makes a module what we ship ([`finish`]), the composition file ([`composition`]), the checks of `meshplug validate`
//! on manifests ([`manifests`]), `meshplug render` ([`render`]), OCI images and istio-agent's pull rules
//! ([`oci`]), the rate limit service's config for global rules ([`global`]), and the names and encodings
//! Istio gives things ([`istio_api`]).
//!
//! May use: only what is in this folder (and the filters' own crates). It starts no server, only the
//! build's tools (cargo, binaryen): the labs that run what it makes are in `lab` and `istio`.

pub mod composition;
pub mod filters;
pub mod finish;
pub mod global;
pub mod istio_api;
pub mod manifests;
pub mod oci;
pub mod render;
