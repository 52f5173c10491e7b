#!/usr/bin/env bash
# Bounded memory under a slow target: a synthetic capture of 10 million commands over
# 1,000 connections (100 s of captured time) replayed at 50x against a private MariaDB
# where every query sleeps 50 ms. The schedule asks for 5,000 commands/s per connection;
# the target gives 20: hundreds of times too slow. Without bounds the replayer would
# read the whole capture (and queue the commands) within seconds; with its per-connection
# read-ahead, memory stays flat. Samples RSS while it runs, stops it with SIGINT after
# SECONDS, and prints the peak (target < 200 MiB).
# Usage: bench/replayer-memory.sh [SECONDS=60] [COMMANDS=10000000] [CONNECTIONS=1000]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
commands=${2:-10000000}
connections=${3:-1000}
# shellcheck source=bench/lib.sh
source bench/lib.sh
cargo build -q --release -p replayer --bin replayer --example synthetic_capture
bin=target/release
# One descriptor per replay connection, plus the server's side of each.
ulimit -n "$(( connections * 2 + 1024 ))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"

mariadb_opts=(--max-connections="$(( connections + 100 ))" --back-log=2000 --thread-cache-size=1100)
start_mariadb
"$bin/examples/synthetic_capture" "$work/syn.sqlcap" "$commands" "$connections" 10 >/dev/null
capture_mb=$(( $(stat -c %s "$work/syn.sqlcap") / 1048576 ))

"$bin/replayer" run "$work/syn.sqlcap" --target "mysql://root@127.0.0.1:$db_port" \
  --speed 50 --out "$work/syn.sqlres" --quiet >"$work/summary.txt" 2>"$work/replay.log" &
replay_pid=$!
pids+=("$replay_pid")

kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$replay_pid/status" 2>/dev/null || echo 0; }
printf '%8s %10s %10s\n' "t (s)" "RSS MiB" "peak MiB"
peak=0
for ((t = 5; t <= secs; t += 5)); do
  sleep 5
  kill -0 "$replay_pid" 2>/dev/null || break
  rss=$(kib VmRSS); peak=$(kib VmHWM)
  printf '%8d %10d %10d\n' "$t" "$((rss / 1024))" "$((peak / 1024))"
done
kill -INT "$replay_pid" 2>/dev/null || true
wait "$replay_pid" 2>/dev/null || true

done_cmds=$(awk '/commands/ {print $2; exit}' "$work/summary.txt")
echo
echo "capture: $commands commands, $connections connections, ${capture_mb} MiB; replayed at 50x for ${secs} s"
echo "commands run before the stop: ${done_cmds:-?} (the rest were still waiting: the target is the bottleneck)"
grep -E "^  (commands|connection attempts)" "$work/summary.txt" || true
printf "peak RSS %d MiB (target < 200 MiB)\n" "$((peak / 1024))"
