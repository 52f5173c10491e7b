# The two commands a new user needs are `make demo` and `make test`; both install what
# they need first. Everything else is a building block of those two.

CARGO ?= cargo

.PHONY: demo test deps lint unit bench fuzz clean-testkit

## demo: the main job, end to end (see README "Status" for what it covers today)
demo: deps
	scripts/demo.sh

## test: formatting, lints and every test, against real private servers
test: deps lint unit

deps:
	scripts/install-deps.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) test --workspace --locked

## bench: every benchmark script, each printing its ratio against its anchor
bench: deps
	bench/captures.sh
	bench/recorder.sh

## fuzz: ten minutes per capture fuzz target (needs the nightly toolchain + cargo-fuzz)
fuzz:
	cd captures/fuzz && cargo +nightly fuzz run -O reader -- -max_total_time=600
	cd captures/fuzz && cargo +nightly fuzz run -O records -- -max_total_time=600

## clean-testkit: remove private test servers' directories left by killed test runs
clean-testkit:
	rm -rf "$${TESTKIT_DIR:-$${TMPDIR:-/tmp}/sqlreplay-testkit}"
