#!/usr/bin/env bash
# How fast the shop serves its main read routes, and how much of that time is the
# database's: `shop drive` (closed loop, browse + search, N users) against `shop serve`
# on a private MariaDB, twice in one run:
#   direct      shop → MariaDB                     requests/s per route, p50/p99
#   recorded    shop → recorder → MariaDB         the capture's summed command time,
#               divided by users × seconds, is the share of request time spent waiting
#               for the database (in a closed loop every user always waits on a request)
# Usage: bench/shop.sh [SECONDS, default 10] [USERS, default 16]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
users=${2:-16}
# shellcheck source=bench/lib.sh
source bench/lib.sh
cargo build -q --release -p shop -p recorder -p replayer
bin=target/release

start_mariadb
mariadb --no-defaults -h127.0.0.1 -P"$db_port" -uroot -e "CREATE DATABASE shop"
"$bin/shop" seed --db "mysql://root@127.0.0.1:$db_port/shop" --customers 20000 --products 2000 --seed 1 \
  2>/dev/null | sed 's/^/  /'

# One drive against a shop that talks to DB_URL; prints the driver's table.
drive() {
  local db_url=$1 json=$2 port
  port=$(free_port)
  "$bin/shop" serve --db "$db_url" --listen "127.0.0.1:$port" --log warn &
  local shop_pid=$!
  wait_port "$port"
  "$bin/shop" drive --url "http://127.0.0.1:$port" --users "$users" --duration "${secs}s" \
    --mix browse=3,search=1 --json "$json" 2>/dev/null
  kill "$shop_pid"; wait "$shop_pid" 2>/dev/null || true
}

printf '\n== direct: shop → MariaDB, %s users, %s s\n' "$users" "$secs"
drive "mysql://root@127.0.0.1:$db_port/shop" "$work/direct.json"

rec_port=$(free_port)
"$bin/recorder" --listen "127.0.0.1:$rec_port" --upstream "127.0.0.1:$db_port" \
  --out "$work/shop.sqlcap" --log warn &
rec_pid=$!
wait_port "$rec_port"
printf '\n== recorded: shop → recorder → MariaDB\n'
drive "mysql://root@127.0.0.1:$rec_port/shop" "$work/recorded.json"
kill -INT "$rec_pid"; wait "$rec_pid" 2>/dev/null || true
"$bin/replayer" inspect "$work/shop.sqlcap" --json --top 100000 >"$work/inspect.json"

python3 - "$work/direct.json" "$work/recorded.json" "$work/inspect.json" "$users" <<'PY'
import json, sys
direct, recorded, inspect = (json.load(open(p)) for p in sys.argv[1:4])
users = int(sys.argv[4])
print("\nsummary")
for r in direct["routes"]:
    print(f"  {r['name']:<22} {r['count'] / direct['seconds']:9.0f} req/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms")
print(f"  all read routes        {direct['requests_per_s']:9.0f} req/s direct, "
      f"{recorded['requests_per_s']:.0f} req/s recorded ({recorded['requests_per_s'] / direct['requests_per_s']:.2f}x)")
db_ms = sum(c["total_ms"] for c in inspect["top_by_time"])
busy_ms = users * recorded["seconds"] * 1000
print(f"  database share of request time: {db_ms / busy_ms:.0%} "
      f"({db_ms / 1000:.1f} s of commands over {users} users x {recorded['seconds']:.1f} s)")
PY
