//! Load on a running lab: benchmarks side by side with the native twins ([`bench`](mod@bench), `meshplug bench`),
//! the soak run ([`soak`], `meshplug soak`) and the hostile request corpus both it and the end-to-end
//! tests send ([`hostile`]).
//!
//! May use: `deploy` and `lab`. Nothing imports from here except the CLI and the tests.

pub mod bench;
pub mod hostile;
pub mod soak;
