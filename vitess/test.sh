#!/usr/bin/env bash
# End-to-end tests against real Vitess clusters (part of `make test`):
#   1. unsharded and sharded layouts: the shop's whole API test suite through vtgate,
#      including "the same seed gives the same rows as on MariaDB";
#   2. the whole story, small: playground demo records the shop on MariaDB, replays the
#      capture against MariaDB and both Vitess layouts and compares them; the report
#      must name the sign-up email lookup as a scatter query once sharded;
#   3. reshard: a seeded unsharded cluster goes through MoveTables + Reshard (VDiff
#      clean, same row counts), and the shop suite still passes afterwards.
# Installs what it needs (vitess/install.sh). Each cluster lives in its own directory
# and is taken down whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

"$ROOT/vitess/install.sh" >/dev/null
cargo build -q --release -p shop -p recorder -p replayer -p playground

work=$(mktemp -d /tmp/sqlreplay-vitess-test.XXXXXX)
chmod 755 "$work"
clusters=()
cleanup() {
  local d
  for d in "${clusters[@]}"; do "$ROOT/vitess/cluster.sh" down --dir "$d" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
step() { printf '\n== vitess e2e: %s (%ss)\n' "$*" "$SECONDS"; }

# Starts a cluster with vtgate on $port. Not called as $(up ...): the cluster must be
# registered for cleanup in this shell, not in a subshell.
up() {
  local layout=$1
  port=$(free_port)
  clusters+=("$work/$layout")
  "$ROOT/vitess/cluster.sh" up --layout "$layout" --dir "$work/$layout" --vtgate-port "$port" >&2
}

shop_suite() {
  local url=$1
  # One database shared by every test: run them one at a time.
  SHOP_TEST_DB_URL=$url cargo test -q -p shop --test api -- --test-threads=1
}

step "unsharded: shop suite through vtgate"
up unsharded
shop_suite "mysql://root@127.0.0.1:$port/shop"
"$ROOT/vitess/cluster.sh" down --dir "$work/unsharded" >/dev/null

step "sharded: shop suite through vtgate"
up sharded
shop_suite "mysql://root@127.0.0.1:$port"
"$ROOT/vitess/cluster.sh" down --dir "$work/sharded" >/dev/null

step "the whole story, small: record, replay on MariaDB and both layouts, compare"
target/release/playground demo --skip-install --no-metrics --duration 6s --users 4 \
  --speeds 1 --customers 300 --products 100 --out "$work/demo" >"$work/demo.log" 2>&1 ||
  { cat "$work/demo.log"; exit 1; }
python3 - "$work/demo/report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
text = json.dumps(report)
assert "vitess-sharded" in text and "vitess-unsharded" in text, "runs missing from the report"
# The sign-up check "is this email taken?" reads every shard once customers are sharded.
found = [c for c in report.get("classes", []) if "from customer where email" in c.get("fingerprint", "")]
assert found, "the email lookup class is missing"
routes = json.dumps(found[0])
assert "Scatter" in routes, f"email lookup not reported as scatter: {routes}"
print("report: email lookup is Scatter on the sharded cluster")
PY

step "reshard: MoveTables + Reshard on a seeded cluster"
up unsharded
target/release/shop seed --db "mysql://root@127.0.0.1:$port/shop" --customers 1500 --products 200 --seed 9
"$ROOT/vitess/reshard.sh" --dir "$work/unsharded"
shop_suite "mysql://root@127.0.0.1:$port/shop"

step "done"
