# The two commands of the README.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/slastream/target

.PHONY: demo test bench
demo:
	scripts/setup.sh
	cargo run --release -- demo --config config/slastream.toml

test:
	scripts/test.sh

bench:
	scripts/setup.sh
	cargo bench --bench engine --bench decode
