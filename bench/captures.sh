#!/usr/bin/env bash
# Capture format throughput: records/s written and read, bytes per record.
# Usage: bench/captures.sh [RECORDS]   (default 2,000,000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q -p captures --bench format -- "${1:-2000000}"
