#!/usr/bin/env bash
# End-to-end tests against real Vitess clusters (part of `make test`):
#   1. unsharded and sharded layouts: the shop's whole API test suite through vtgate,
#      including "the same seed gives the same rows as on MariaDB";
#   2. the whole story, small: playground demo records the shop on MariaDB, replays the
#      capture against MariaDB and both Vitess layouts and compares them; the report
#      must name the sign-up email lookup as a scatter query once sharded;
#   3. reshard under traffic: the story's capture is replayed against a seeded unsharded
#      cluster while reshard.sh --live runs MoveTables + Reshard (VDiffs clean);
#      `replayer timeline` must cut the replay at both traffic switches, and traffic
#      before, between and after them must run without errors; then the shop suite
#      passes against the resharded cluster.
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

step "reshard under traffic: replay the story's capture during MoveTables + Reshard"
up unsharded
# The story's dataset, so the replayed writes land on the rows they were captured on.
target/release/shop seed --db "mysql://root@127.0.0.1:$port/shop" --customers 300 --products 100 --seed 42
# Slowed so the few seconds of capture outlast the reshard (stopped when it is done).
target/release/replayer run "$work/demo/shop.sqlcap" --target "mysql://root@127.0.0.1:$port/shop" \
  --speed 0.03 --label live-reshard --out "$work/live.results" --quiet >"$work/live.log" 2>&1 &
replay_pid=$!
sleep 3
RESHARD_EVENTS="$work/events.jsonl" "$ROOT/vitess/reshard.sh" --dir "$work/unsharded" --live
sleep 3
kill -INT "$replay_pid" 2>/dev/null || true
replay_status=0
wait "$replay_pid" || replay_status=$?
[[ $replay_status == 0 || $replay_status == 130 ]] || { cat "$work/live.log"; exit 1; }
target/release/replayer timeline "$work/live.results" --events "$work/events.jsonl" \
  --json "$work/timeline.json" --html "$work/timeline.html"
python3 - "$work/timeline.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
events = [label for _, label in t["events"]]
for label in ("MoveTables: traffic switched", "Reshard: traffic switched"):
    assert label in events, f"event {label!r} missing: {events}"
# Phases without traffic are left out; the cut-overs themselves may be too short to
# catch a command at this rate, the stretches between and after them are not.
phases = {p["label"]: p for p in t["phases"]}
for label in ("start", "Reshard: copy to -80, 80- starts", "Reshard: traffic switched"):
    p = phases.get(label)
    assert p and p["commands"] > 0 and p["errors"] == 0, f"phase {label!r}: {p} (all: {list(phases)})"
print("timeline: traffic ran through both cut-overs;",
      ", ".join(f"{p['label']}: {p['commands']} cmds {p['errors']} err p99 {p['p99_ms']:.1f} ms" for p in t["phases"]))
PY
# The application's view: `shop.customer` must now be a routing rule to the sharded
# keyspace, routed by customer_id (not a table re-created in `shop`).
plan=$(mariadb --no-defaults -h127.0.0.1 -P"$port" -uroot -N -B \
  -e "VEXPLAIN PLAN SELECT * FROM shop.customer WHERE customer_id = 7")
grep -q '"Name": "customer"' <<<"$plan" && grep -q EqualUnique <<<"$plan" ||
  { echo "test: shop.customer is not routed to the sharded customer keyspace: $plan" >&2; exit 1; }
# No default keyspace for the suite: vtgate finds each table by its unique name (with
# /shop, the suite's CREATE TABLE IF NOT EXISTS could land in `shop` and test nothing).
shop_suite "mysql://root@127.0.0.1:$port"

step "done"
