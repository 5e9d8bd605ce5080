# Two commands do everything, including set-up on a fresh machine (see README.md):
#   make demo   runs a local Envoy with all four filters chained in front of echo upstreams
#   make test   runs the whole test suite (what CI runs)
#   make bench  runs the benchmarks (BENCHMARKS.md): every case side by side in one run
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
	cargo run --release --locked -p meshplug-harness -- build
	cargo run --release --locked -p meshplug-harness -- bench all --rounds 5 --seconds 5
