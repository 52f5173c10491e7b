#!/usr/bin/env bash
# The real online path from one database to shards, on a running *unsharded* cluster
# (vitess/cluster.sh up --layout unsharded) holding the shop's data:
#
#   1. MoveTables: customer, address, cart_item, corder, order_item move from keyspace
#      `shop` into a new keyspace `customer` (one shard, 0), verified with VDiff, then
#      traffic is switched and the workflow completed (the source copies are dropped);
#   2. the `customer` keyspace gets its sharded VSchema (xxhash on customer_id);
#   3. Reshard: customer/0 splits into -80 and 80-, verified with VDiff, switched and
#      completed.
# Row counts per table, read through vtgate, are compared before and after.
# `product` stays in `shop` (unsharded), like `commerce` in the sharded layout.
#
# With RESHARD_EVENTS=FILE, each milestone (copy started, traffic switched, ...) is also
# appended to FILE as a JSON line {"unix_ns": N, "label": "..."}, the events
# `replayer timeline` draws into a replay that ran meanwhile. With SQLREPLAY_INFLUX_URL
# (e.g. http://127.0.0.1:8086) each is also written to InfluxDB's `events` measurement
# (database SQLREPLAY_INFLUX_DB, default sqlreplay), a marker on the playground's live
# dashboard (format: playground/src/events.rs).
#
# With --live, traffic is expected to keep running meanwhile, through connections that
# use `shop` as their default keyspace (as the unsharded layout's applications do):
#   - MoveTables completes with --keep-routing-rules, so `shop.customer` and friends keep
#     routing to the `customer` keyspace once their source copies are dropped (without
#     them such a session gets error 1146 from then on);
#   - row counts change under the traffic, so the before/after comparison is reported
#     but not enforced (VDiff, which compares source and target at a consistent
#     position, is what verifies the copies).
#
#   vitess/reshard.sh [--dir D] [--live]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
dir=${SQLREPLAY_VITESS_DIR:-/tmp/sqlreplay-vitess}
live=0
while (($#)); do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --live) live=1; shift ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "reshard.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -f $dir/cluster.env ]] || { echo "reshard: no cluster in $dir" >&2; exit 1; }
# shellcheck disable=SC1091
source "$dir/cluster.env"
[[ $LAYOUT == unsharded ]] || { echo "reshard: the cluster in $dir is $LAYOUT, not unsharded" >&2; exit 1; }

TABLES=(customer address cart_item corder order_item)
log() { printf 'reshard: %s\n' "$*" >&2; }
event() {
  log "$*"
  local now
  now=$(date +%s%N)
  [[ -z ${RESHARD_EVENTS:-} ]] || printf '{"unix_ns": %s, "label": "%s"}\n' "$now" "$*" >>"$RESHARD_EVENTS"
  [[ -z ${SQLREPLAY_INFLUX_URL:-} ]] || influx_event "$now" "$*"
}
# Best effort: a dashboard marker is not worth failing a reshard for.
influx_event() {
  local label=${2//\\/\\\\}
  label=${label//\"/\\\"}
  curl -fsS -m 2 -XPOST "$SQLREPLAY_INFLUX_URL/write?db=${SQLREPLAY_INFLUX_DB:-sqlreplay}&precision=ns" \
    --data-binary "events,source=reshard,kind=reshard label=\"$label\" $1" 2>>"$dir/logs/reshard.log" ||
    log "could not write the event to InfluxDB at $SQLREPLAY_INFLUX_URL"
}
die() { printf 'reshard: %s\n' "$*" >&2; exit 1; }
vtctld() { "$BIN/vtctldclient" --server "127.0.0.1:$VTCTLD_GRPC" "$@" 2>>"$dir/logs/reshard.log"; }
sql() { mariadb --no-defaults -h127.0.0.1 -P"$VTGATE_PORT" -uroot -N -B -e "$1"; }

counts() {
  local t out=()
  for t in product "${TABLES[@]}"; do out+=("$t=$(sql "SELECT COUNT(*) FROM $t")"); done
  echo "${out[*]}"
}

# Retries a vtctldclient call while a new tablet's VReplication engine is still opening.
retry() {
  local i
  for ((i = 0; i < 60; i++)); do
    vtctld "$@" >/dev/null && return 0
    sleep 2
  done
  die "vtctldclient $* kept failing; see $dir/logs/reshard.log"
}

# Waits until every stream of a workflow has copied and is streaming, then runs VDiff.
settle_and_verify() {
  local kind=$1 wf=$2 i status
  for ((i = 0; i < 300; i++)); do
    status=$(vtctld "$kind" --workflow "$wf" --target-keyspace customer status || true)
    grep -q "Status: Error" <<<"$status" && die "$kind $wf failed: $status"
    if grep -q "Status: Running" <<<"$status" && ! grep -q -i "copying\|has not started" <<<"$status"; then
      break
    fi
    sleep 1
  done
  log "$kind $wf: copied, running VDiff"
  local diff
  diff=$(vtctld VDiff --target-keyspace customer --workflow "$wf" create --wait) ||
    die "VDiff of $wf did not run; see $dir/logs/reshard.log"
  grep -q "HasMismatch:  false" <<<"$diff" || die "VDiff of $wf found differences: $diff"
  log "$kind $wf: VDiff clean ($(grep RowsCompared <<<"$diff" | tr -s ' '))"
}

switch_and_complete() {
  local kind=$1 wf=$2 keep=()
  [[ $kind == MoveTables ]] && ((live)) && keep=(--keep-routing-rules)
  event "$kind: switching traffic"
  retry "$kind" --workflow "$wf" --target-keyspace customer switchtraffic
  event "$kind: traffic switched"
  retry "$kind" --workflow "$wf" --target-keyspace customer complete "${keep[@]}"
  log "$kind $wf: workflow completed"
}

before=$(counts)
log "before: $before"

event "MoveTables: copy to customer/0 starts"
vtctld CreateKeyspace --durability-policy none customer >/dev/null || die "CreateKeyspace customer failed"
SKIP_SCHEMA=1 "$HERE/cluster.sh" add-tablet --dir "$dir" --uid 200 --keyspace customer --shard 0
retry MoveTables --workflow shop2customer --target-keyspace customer create \
  --source-keyspace shop --tables "$(IFS=,; echo "${TABLES[*]}")"
settle_and_verify MoveTables shop2customer
switch_and_complete MoveTables shop2customer

log "sharded VSchema for customer (xxhash on customer_id)"
vtctld ApplyVSchema --vschema-file "$HERE/vschema/customer.json" customer >/dev/null ||
  die "ApplyVSchema customer failed"

event "Reshard: copy to -80, 80- starts"
SKIP_SCHEMA=1 "$HERE/cluster.sh" add-tablet --dir "$dir" --uid 300 --keyspace customer --shard -80
SKIP_SCHEMA=1 "$HERE/cluster.sh" add-tablet --dir "$dir" --uid 400 --keyspace customer --shard 80-
retry Reshard --workflow cust2cust --target-keyspace customer create --source-shards 0 --target-shards -80,80-
settle_and_verify Reshard cust2cust
switch_and_complete Reshard cust2cust

after=$(counts)
log "after:  $after"
if [[ $before != "$after" ]]; then
  ((live)) || die "row counts differ: before $before, after $after"
  log "row counts changed meanwhile (--live: the traffic wrote); VDiff verified the copies"
fi
split=$(for s in -80 80-; do printf '%s:%s ' "$s" "$(sql "USE \`customer:$s\`; SELECT COUNT(*) FROM customer")"; done)
log "customers per shard: $split"
sed -i 's/^LAYOUT=.*/LAYOUT=resharded/' "$dir/cluster.env"
if ((live)); then
  log "done: shop (product) unsharded, customer sharded -80/80-, VDiff clean"
else
  log "done: shop (product) unsharded, customer sharded -80/80-, same rows"
fi
