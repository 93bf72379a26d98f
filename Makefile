# The two commands of the README.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/slastream/target

.PHONY: demo test bench
demo:
	scripts/setup.sh
	cargo run --release -- demo --config config/slastream.toml

test:
	scripts/test.sh

# The criterion benches (decode; decode+apply with and without persistence,
# over 35 days of event time), then the end-to-end replay figure.
bench:
	scripts/setup.sh
	cargo bench --bench engine --bench decode
	scripts/replay_bench.sh
