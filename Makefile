# Two commands do everything, including set-up on a fresh machine (see README.md):
#   make demo   runs a local Envoy with the example filters in front of an echo upstream
#   make test   runs the whole test suite (what CI runs)
.PHONY: demo test setup

demo:
	scripts/setup
	cargo run --locked -p meshplug-harness -- up examples/fault/composition.yaml

test:
	scripts/test

setup:
	scripts/setup
