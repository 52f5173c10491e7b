# Shared by the bench scripts (source it): a scratch directory cleaned on exit, free
# ports, waiting for a listener, and a private MariaDB.
#   work         scratch directory
#   pids         background processes to stop on exit
#   start_mariadb [CPU-PIN...]   sets db_port; extra server options from mariadb_opts=()
# shellcheck shell=bash

work=$(mktemp -d)
pids=()
mariadb_opts=()
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap bench_cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: nothing listens on $1" >&2
  exit 1
}

# A private MariaDB on a free port with relaxed durability (the data is thrown away).
# Arguments: an optional command prefix, e.g. `taskset -c 0`.
start_mariadb() {
  PATH=$PATH:/usr/sbin
  for tool in mariadbd mariadb-install-db mariadb; do
    command -v "$tool" >/dev/null || { echo "bench: $tool missing (scripts/install-deps.sh)" >&2; exit 1; }
  done
  db_port=$(free_port)
  local user_opt=()
  [[ $(id -u) -eq 0 ]] && user_opt=(--user=root)
  mariadb-install-db --no-defaults --datadir="$work/data" --auth-root-authentication-method=normal \
    --skip-test-db "${user_opt[@]}" >"$work/install.log" 2>&1
  "$@" mariadbd --no-defaults --datadir="$work/data" --port="$db_port" --bind-address=127.0.0.1 \
    --socket="$work/mysqld.sock" --pid-file="$work/mysqld.pid" --skip-name-resolve \
    --innodb-buffer-pool-size=256M --innodb-flush-log-at-trx-commit=2 --max-connections=500 \
    "${user_opt[@]}" --log-error="$work/error.log" "${mariadb_opts[@]}" 2>/dev/null &
  pids+=($!)
  wait_port "$db_port"
}
