#!/usr/bin/env bash
# The replayer against its anchor, in one run on one private MariaDB:
#   1. sysbench oltp_point_select (8 threads, prepared statements) is recorded through the
#      recorder; then sysbench runs directly, and `replayer run --speed max` replays the
#      capture: the replay's commands/s against sysbench's queries/s (target >= 0.95x).
#   2. timeline fidelity: lag p99 (target < 1 ms) and wall time against captured
#      duration / speed (target within 1 %) at --speed 1 and --speed 2, for the
#      saturated capture above and for one recorded open-loop (sysbench --rate) at about
#      a quarter of the server's capacity. A saturated capture asks the target for all
#      it has, so any hiccup becomes lag that can never be caught up (and 2x of it is
#      beyond the server): it measures the target. The open-loop one measures the
#      replayer's scheduling.
# Everything is pinned to one CPU (taskset -c 0) so runs are comparable. Part 1 runs in
# ROUNDS interleaved rounds (sysbench, bare loop, replayer) and reports each one's median:
# single runs on a shared machine spread by ±10 %.
# RAND picks sysbench's access distribution (uniform, or its default "special", where
# the server does less per query and the replayer's own cost shows more); CONNECTIONS
# picks the replay mode (pooled, the default, or captured).
# Usage: [ROUNDS=3] [RAND=uniform|special] [CONNECTIONS=pooled|captured] bench/replayer.sh [SECONDS, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${ROUNDS:-3}
rand=${RAND:-uniform}
connections=${CONNECTIONS:-pooled}
# shellcheck source=bench/lib.sh
source bench/lib.sh
command -v sysbench >/dev/null || { echo "bench/replayer: sysbench missing (scripts/install-deps.sh)" >&2; exit 1; }
cargo build -q --release -p recorder -p replayer --bins --example bare_loop
bin=target/release
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)

start_mariadb "${pin[@]}"
mariadb --no-defaults -h127.0.0.1 -P"$db_port" -uroot -e "CREATE DATABASE sbtest"
sb=(sysbench --db-driver=mysql --mysql-host=127.0.0.1 --mysql-user=root --mysql-db=sbtest
    --tables=4 --table-size=10000 --threads=8 --time="$secs" --report-interval=0 --rand-type="$rand")
"${sb[@]}" --mysql-port="$db_port" oltp_point_select prepare >/dev/null
qps() { awk '/queries:/ {gsub(/[()]/,"",$3); print $3; exit}'; }

# 1. Record.
rec_port=$(free_port)
"${pin[@]}" "$bin/recorder" --listen "127.0.0.1:$rec_port" --upstream "127.0.0.1:$db_port" \
  --out "$work/sb.sqlcap" --log warn &
rec_pid=$!
wait_port "$rec_port"
recorded=$("${pin[@]}" "${sb[@]}" --mysql-port="$rec_port" oltp_point_select run | qps)
kill -INT "$rec_pid"; wait "$rec_pid" 2>/dev/null || true

direct=$("${pin[@]}" "${sb[@]}" --mysql-port="$db_port" oltp_point_select run | qps)

# The open-loop capture: Poisson arrivals at a quarter of what sysbench reached directly.
open_rate=$(python3 -c "print(max(100, int($direct / 4)))")
"${pin[@]}" "$bin/recorder" --listen "127.0.0.1:$rec_port" --upstream "127.0.0.1:$db_port" \
  --out "$work/open.sqlcap" --log warn &
rec_pid=$!
wait_port "$rec_port"
"${pin[@]}" "${sb[@]}" --rate="$open_rate" --mysql-port="$rec_port" oltp_point_select run >/dev/null
kill -INT "$rec_pid"; wait "$rec_pid" 2>/dev/null || true

# One replay of capture $1 at speed $2 (more replayer arguments after them); prints
# "rate lag_p99_ms wall_s captured_s".
replay() {
  "${pin[@]}" "$bin/replayer" run "$work/$1.sqlcap" --target "mysql://root@127.0.0.1:$db_port/sbtest" \
    --speed "$2" --connections "$connections" --out "$work/r-$1-$2.sqlres" --quiet "${@:3}" |
    awk '/^  wall/ {w=$2; c=$4; sub(/s$/,"",w); sub(/s$/,"",c); for (i=1;i<=NF;i++) if ($i=="rate") r=$(i+1); sub(/\/s$/,"",r)}
         /lag ms/ {l=$6}
         END {print r, l, w, c}'
}
# Part 1 in rounds. The bare loop is the anchor for the replayer's own cost: mysql_async
# alone, the same statements, over TCP like sysbench (prefer_socket would quietly move it
# to the Unix socket).
directs=() bares=() maxes=() plains=()
for ((round = 1; round <= rounds; round++)); do
  if (( round == 1 )); then
    directs+=("$direct")   # measured above, before the open-loop recording
  else
    directs+=("$("${pin[@]}" "${sb[@]}" --mysql-port="$db_port" oltp_point_select run | qps)")
  fi
  bares+=("$("${pin[@]}" "$bin/examples/bare_loop" "mysql://root@127.0.0.1:$db_port/sbtest?prefer_socket=false" \
    8 "$secs" 4 10000 | awk '{print $4}')")
  read -r rate _ _ _ < <(replay sb max)
  maxes+=("$rate")
  read -r rate _ _ _ < <(replay sb max --no-result-digest)
  plains+=("$rate")
done
fidelity=()
for capture in sb open; do
  for speed in 1 2; do
    read -r _ lag wall cap < <(replay "$capture" "$speed")
    fidelity+=("$capture" "$speed" "$lag" "$wall" "$cap")
  done
done

RAND="$rand" CONNS="$connections" python3 - "$recorded" "$open_rate" "${directs[*]}" "${bares[*]}" "${maxes[*]}" "${plains[*]}" "${fidelity[@]}" <<'PY'
import os, statistics, sys
RAND, CONNS = os.environ["RAND"], os.environ["CONNS"]
recorded, open_rate = map(float, sys.argv[1:3])
directs, bares, maxes, plains = ([float(x) for x in a.split()] for a in sys.argv[3:7])
rows = sys.argv[7:]
direct, bare, max_rate, plain = (statistics.median(v) for v in (directs, bares, maxes, plains))
each = lambda v: " ".join(f"{x:.0f}" for x in v)
print(f"sysbench oltp_point_select, 8 threads, --rand-type={RAND}, replay --connections {CONNS}, all on one CPU (median of {len(directs)} rounds; each round in brackets)")
print(f"  sysbench direct          {direct:10.0f} queries/s    [{each(directs)}]")
print(f"  sysbench via recorder    {recorded:10.0f} queries/s    (the saturated capture)")
print(f"  bare mysql_async loop    {bare:10.0f} queries/s    {bare / direct:.2f}x sysbench, the client library alone [{each(bares)}]")
print(f"  replayer --speed max     {max_rate:10.0f} commands/s   {max_rate / direct:.2f}x sysbench (target >= 0.95x), "
      f"{max_rate / bare:.2f}x the bare loop [{each(maxes)}]")
print(f"  per round, replayer / sysbench: {' '.join(f'{m / d:.2f}' for m, d in zip(maxes, directs))}")
print(f"  replayer --no-result-digest {plain:7.0f} commands/s   digests on / off {max_rate / plain:.3f} (target >= 0.97) [{each(plains)}]")
print(f"timeline fidelity (targets: lag p99 < 1 ms, wall within 1 % of captured / speed)")
names = {"sb": "saturated capture", "open": f"open loop, {open_rate:.0f}/s"}
for i in range(0, len(rows), 5):
    capture, speed, lag, wall, cap = rows[i], float(rows[i + 1]), *map(float, rows[i + 2:i + 5])
    want = cap / speed
    print(f"  {names[capture]:<22} --speed {speed:g}: lag p99 {lag:8.3f} ms, wall {wall:6.2f} s "
          f"for {want:6.2f} s ({(wall / want - 1) * 100:+.1f} %)")
PY
