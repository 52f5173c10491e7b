#!/usr/bin/env bash
# What the recorder costs a real client: sysbench (an independent load generator) against
# one private MariaDB through four paths, in one run:
#   direct          client → MariaDB
#   socat           client → socat → MariaDB          (the price of any TCP hop: the anchor)
#   recorder (off)  client → recorder → MariaDB        (relay only, no capture file)
#   recorder (on)   client → recorder --out → MariaDB  (the real thing)
# and prints throughput, p95 latency and each path's ratio against direct and socat,
# plus the capture's size per command.
#
# Usage: bench/recorder.sh [SECONDS per run, default 10] [THREADS, default 8]
# The proxies are pinned to CPU 1 and MariaDB + sysbench to CPU 0 when there are two
# cores, so the hop competes for the same core in every proxied case.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
threads=${2:-8}
# shellcheck source=bench/lib.sh
source bench/lib.sh
for tool in sysbench socat; do
  command -v "$tool" >/dev/null || { echo "bench/recorder: $tool missing (scripts/install-deps.sh)" >&2; exit 1; }
done
cargo build -q --release -p recorder
recorder=target/release/recorder

pin_db=() pin_proxy=()
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
  pin_db=(taskset -c 0) pin_proxy=(taskset -c 1)
fi

start_mariadb "${pin_db[@]}"
mariadb --no-defaults -h127.0.0.1 -P"$db_port" -uroot -e "CREATE DATABASE sbtest"

sb=(sysbench --db-driver=mysql --mysql-host=127.0.0.1 --mysql-user=root --mysql-db=sbtest
    --tables=4 --table-size=10000 --threads="$threads" --time="$secs" --report-interval=0
    --percentile=95 --rand-type=uniform)
"${sb[@]}" --mysql-port="$db_port" oltp_read_write prepare >/dev/null

socat_port=$(free_port)
"${pin_proxy[@]}" socat "TCP-LISTEN:$socat_port,bind=127.0.0.1,fork,reuseaddr,nodelay" \
  "TCP:127.0.0.1:$db_port,nodelay" &
pids+=($!)
relay_port=$(free_port)
"${pin_proxy[@]}" "$recorder" --listen "127.0.0.1:$relay_port" --upstream "127.0.0.1:$db_port" \
  --threads 1 --log warn &
pids+=($!)
cap_port=$(free_port)
"${pin_proxy[@]}" "$recorder" --listen "127.0.0.1:$cap_port" --upstream "127.0.0.1:$db_port" \
  --threads 1 --log warn --out "$work/bench.sqlcap" &
cap_pid=$!
pids+=($cap_pid)
wait_port "$socat_port"; wait_port "$relay_port"; wait_port "$cap_port"

# One sysbench run: "tps p95_ms queries".
run() {
  local port=$1 test=$2 out
  out=$("${pin_db[@]}" "${sb[@]}" --mysql-port="$port" "$test" run)
  awk '/queries:/ {q=$NF; gsub(/[()]/,"",q)} /transactions:/ {t=$(NF-2); gsub(/[()]/,"",t)}
       /95th percentile:/ {p=$NF} /total number of events/ {}
       END {print t, p}' <<<"$out" | {
    read -r tps p95
    total=$(awk '/queries:/ {print $2; exit}' <<<"$out")
    echo "$tps $p95 $total"
  }
}

printf 'sysbench, %s threads, %s s per run, 4 tables x 10000 rows\n' "$threads" "$secs"
for test in oltp_point_select oltp_read_write; do
  printf '\n%s\n' "$test"
  printf '  %-16s %12s %10s %10s %10s\n' path "tx/s" "p95 ms" "vs direct" "vs socat"
  declare -A tps=() p95=()
  for path in direct socat recorder-off recorder-on; do
    case $path in
      direct) port=$db_port ;;
      socat) port=$socat_port ;;
      recorder-off) port=$relay_port ;;
      recorder-on) port=$cap_port ;;
    esac
    read -r t p q < <(run "$port" "$test")
    tps[$path]=$t p95[$path]=$p
    [[ $path == recorder-on ]] && captured_queries=$q
    vs_direct=$(python3 -c "print(f'{$t / ${tps[direct]}:.2f}')")
    vs_socat=-
    [[ -n ${tps[socat]:-} ]] && vs_socat=$(python3 -c "print(f'{$t / ${tps[socat]}:.2f}')")
    printf '  %-16s %12s %10s %10s %10s\n' "$path" "$t" "$p" "$vs_direct" "$vs_socat"
  done
  unset tps p95
done

# Stop the capturing recorder cleanly so the file is complete, then size it.
kill -INT "$cap_pid"
wait "$cap_pid" 2>/dev/null || true
bytes=$(stat -c %s "$work/bench.sqlcap")
commands=$(cargo run -q --release -p replayer -- inspect "$work/bench.sqlcap" --json 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin).get("commands", 0))' 2>/dev/null || echo 0)
printf '\ncapture: %.1f MB' "$(python3 -c "print($bytes / 1e6)")"
if [[ $commands -gt 0 ]]; then
  printf ', %s commands, %.1f bytes/command on disk\n' "$commands" "$(python3 -c "print($bytes / $commands)")"
else
  printf '\n'
fi
echo "ratios: tx/s relative to the path named (1.00 = no cost); socat is any TCP hop's price"
