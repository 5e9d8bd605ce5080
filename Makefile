# Two commands do everything, including set-up on a fresh machine (see README.md):
#   make demo   runs a local Envoy with all four filters chained in front of echo upstreams
#   make test   runs the whole test suite (what CI runs)
#   make bench  runs the benchmarks (BENCHMARKS.md) side by side with their native twins
.PHONY: demo test setup bench

demo:
	scripts/setup
	cargo run --locked -p meshplug-harness -- up examples/chain/composition.yaml

test:
	scripts/test

setup:
	scripts/setup

bench:
	scripts/setup --bench
	cargo build --release --locked --target wasm32-wasip1
	cargo run --release --locked -p meshplug-harness -- bench rate-limit
	cargo run --release --locked -p meshplug-harness -- bench jwt-authz
	cargo run --release --locked -p meshplug-harness -- bench canary
