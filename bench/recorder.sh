#!/usr/bin/env bash
# What the recorder costs a real client: sysbench (an independent load generator) against
# one private MariaDB through four paths, in one run:
#   direct          client → MariaDB
#   socat           client → socat → MariaDB          (the price of any TCP hop: the anchor)
#   bare relay      client → tokio copy_bidirectional → MariaDB (recorder/examples/bare_relay:
#                   the cheapest proxy possible, parsing nothing)
#   recorder (off)  client → recorder → MariaDB        (relay only, no capture file)
#   recorder (on)   client → recorder --out → MariaDB  (the real thing)
# and prints throughput, p95 latency and each path's ratio against direct and socat,
# plus the capture's size per command.
#
# Usage: [ROUNDS=3] bench/recorder.sh [SECONDS per run, default 10] [THREADS, default 8]
# PIN=one (default): everything — sysbench, MariaDB, the proxy — on CPU 0, so every CPU
#   cycle a proxy spends per command is taken from the server: the layout the targets
#   (≥ 1.4× socat point_select, ≥ 1.15× read_write, capture-on ≥ 0.97× off) are set in.
# PIN=split: proxies on CPU 1, MariaDB + sysbench on CPU 0: the hop costs latency only.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
threads=${2:-8}
rounds=${ROUNDS:-3}
# shellcheck source=bench/lib.sh
source bench/lib.sh
for tool in sysbench socat; do
  command -v "$tool" >/dev/null || { echo "bench/recorder: $tool missing (scripts/install-deps.sh)" >&2; exit 1; }
done
cargo build -q --release -p recorder --bins --example bare_relay
recorder=target/release/recorder

pin_db=() pin_proxy=()
if command -v taskset >/dev/null; then
  case ${PIN:-one} in
    one) pin_db=(taskset -c 0) pin_proxy=(taskset -c 0) ;;
    split) [[ $(nproc) -ge 2 ]] && pin_db=(taskset -c 0) pin_proxy=(taskset -c 1) ;;
    *) echo "bench/recorder: PIN is one or split" >&2; exit 2 ;;
  esac
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
bare_port=$(free_port)
"${pin_proxy[@]}" target/release/examples/bare_relay "127.0.0.1:$bare_port" "127.0.0.1:$db_port" &
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
# Capturing without result digests: what the digests cost on their own.
nodigest_port=$(free_port)
"${pin_proxy[@]}" "$recorder" --listen "127.0.0.1:$nodigest_port" --upstream "127.0.0.1:$db_port" \
  --threads 1 --log warn --out "$work/bench-nodigest.sqlcap" --no-result-digest &
pids+=($!)
wait_port "$socat_port"; wait_port "$bare_port"; wait_port "$relay_port"; wait_port "$cap_port"
wait_port "$nodigest_port"

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

printf 'sysbench, %s threads, %s s per run, %s rounds, 4 tables x 10000 rows, PIN=%s\n' \
  "$threads" "$secs" "$rounds" "${PIN:-one}"
paths=(direct socat bare-relay recorder-off recorder-nodigest recorder-on)
declare -A port_of=([direct]=$db_port [socat]=$socat_port [bare-relay]=$bare_port
                    [recorder-off]=$relay_port [recorder-nodigest]=$nodigest_port
                    [recorder-on]=$cap_port)
for test in oltp_point_select oltp_read_write; do
  # Rounds go through every path in turn, so a slow minute on this shared machine hits
  # all paths alike instead of one; each path's median round is reported.
  results=()
  for round in $(seq "$rounds"); do
    for path in "${paths[@]}"; do
      read -r t p _ < <(run "${port_of[$path]}" "$test")
      results+=("$path" "$t" "$p")
    done
  done
  python3 - "$test" "${results[@]}" <<'PY'
import statistics, sys
test, rest = sys.argv[1], sys.argv[2:]
runs = {}
for i in range(0, len(rest), 3):
    runs.setdefault(rest[i], []).append((float(rest[i + 1]), float(rest[i + 2])))
med = {p: (statistics.median(t for t, _ in r), statistics.median(l for _, l in r)) for p, r in runs.items()}
print(f"\n{test} (median of {len(runs['direct'])} rounds; tx/s of each round in brackets)")
print(f"  {'path':<14} {'tx/s':>10} {'p95 ms':>8} {'vs direct':>10} {'vs socat':>9} {'vs bare':>8}  rounds")
for p, (t, l) in med.items():
    ratios = [f"{t / med[a][0]:.2f}" if a in med else "-" for a in ("direct", "socat", "bare-relay")]
    rounds = " ".join(f"{x:.0f}" for x, _ in runs[p])
    print(f"  {p:<14} {t:10.0f} {l:8.2f} {ratios[0]:>10} {ratios[1]:>9} {ratios[2]:>8}  [{rounds}]")
on, off = med["recorder-on"][0], med["recorder-off"][0]
print(f"  capture on / off: {on / off:.3f} (target >= 0.97; capture on keeps result digests)")
print(f"  digests on / off (capturing both): {on / med['recorder-nodigest'][0]:.3f}")
PY
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
