//! Load on a running lab: benchmarks side by side with the native twins ([`bench`](mod@bench), `meshplug bench`),
//! the host calls each benchmark case makes per request ([`calls`], `meshplug bench calls`), where
//! each case's module time goes ([`profile`], `meshplug bench profile`),
//! the soak run ([`soak`], `meshplug soak`) and the hostile request corpus both it and the end-to-end
//! tests send ([`hostile`]).
//!
//! May use: `deploy` and `lab`. Nothing imports from here except the CLI and the tests.

pub mod bench;
pub mod calls;
pub mod chart;
pub mod hostile;
pub mod profile;
pub mod soak;
