#!/usr/bin/env bash
# The whole story in one command: installs what is missing, builds, then runs
# `playground demo` (seed → record the shop → replay at 1× and 4× against MariaDB,
# Vitess unsharded and Vitess sharded → compare). Extra arguments go to the demo,
# e.g. scripts/demo.sh --duration 2m --users 32.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
vitess/install.sh >/dev/null
cargo build --release --locked -p shop -p recorder -p replayer -p playground
exec target/release/playground demo --skip-install "$@"
