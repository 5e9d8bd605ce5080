//! The meshplug harness: builds the filters, renders a composition into Istio resources and a local
//! Envoy config, runs the real Envoy with echo upstreams, and drives tests and benchmarks. The `meshplug`
//! CLI (`src/main.rs`, `src/cli/`) is a thin layer over this library.
//!
//! Folders by job, lowest first; a folder imports only from the folders above it in this list, never
//! from one below (`harness/tests/layout.rs` checks it):
//!
//! | Folder | Owns |
//! | --- | --- |
//! | [`deploy`] | what we ship: the filter table and module builds, the composition, `validate`, `render`, OCI images, the rate limit service's config, Istio's API names |
//! | [`lab`] | running things locally: finding and running Envoy, bootstraps, echo and stub upstreams, the client, helper daemons (Redis, registry), the local lab fed from a composition |
//! | [`istio`] | istiod and istio-agent mirrored from their source, and the lab fed that way (`up --istio`) |
//! | [`load`] | load on a running lab: benchmarks, soak, the hostile request corpus |

pub mod deploy;
pub mod istio;
pub mod lab;
pub mod load;
