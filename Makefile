# The two commands a new user needs are `make demo` and `make test`; both install what
# they need first. Everything else is a building block of those two.

CARGO ?= cargo

.PHONY: demo test deps lint unit transparency e2e bench fuzz clean-testkit

## demo: the main job, end to end: seed, record, replay on MariaDB and Vitess, compare
demo:
	scripts/demo.sh

## test: formatting, lints and every test, against real private servers and real Vitess
test: deps lint unit transparency e2e

deps:
	scripts/install-deps.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	compose/check.sh

unit:
	$(CARGO) test --workspace --locked

## transparency: MariaDB's own test suite directly and through the recorder (~4 min)
transparency:
	$(CARGO) build -q --release --locked -p recorder -p replayer
	recorder/transparency.sh

## e2e: Vitess clusters (unsharded, sharded, resharded) and the whole story, small
e2e:
	vitess/test.sh

## bench: every benchmark script, each printing its ratio against its anchor
bench: deps
	bench/captures.sh
	bench/recorder.sh
	bench/shop.sh
	bench/replayer.sh

## fuzz: ten minutes per capture fuzz target (needs the nightly toolchain + cargo-fuzz)
fuzz:
	cd captures/fuzz && cargo +nightly fuzz run -O reader -- -max_total_time=600
	cd captures/fuzz && cargo +nightly fuzz run -O records -- -max_total_time=600

## clean-testkit: remove private test servers' directories left by killed test runs
clean-testkit:
	rm -rf "$${TESTKIT_DIR:-$${TMPDIR:-/tmp}/sqlreplay-testkit}"
