# Shared by the bench scripts (source it): a scratch directory cleaned on exit, free
# ports, waiting for a listener, and a private MariaDB.
#   work         scratch directory
#   pids         background processes to stop on exit
#   start_mariadb [CPU-PIN...]   sets db_port and db_socket; extra mariadbd options from
#                                mariadb_opts=()
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

# A private MariaDB, started as the tests start theirs (testkit-mariadb: its own
# directory under $work, a free port on 127.0.0.1, relaxed durability; the data is thrown
# away); sets db_port and db_socket, and is stopped on exit like the other pids.
# Arguments: an optional command prefix, e.g. `taskset -c 0` (the server inherits it).
# TESTKIT_MARIADB=path: that binary instead of building target/release/testkit-mariadb.
start_mariadb() {
  local bin=${TESTKIT_MARIADB:-}
  if [[ -z $bin ]]; then
    cargo build -q --release -p testkit --bin testkit-mariadb
    bin=target/release/testkit-mariadb
  fi
  : >"$work/mariadb.addr"
  "$@" "$bin" --dir "$work" -- "${mariadb_opts[@]}" >"$work/mariadb.addr" 2>"$work/mariadb.log" &
  local pid=$!
  pids+=("$pid")
  # It prints "PORT SOCKET" once the server answers (read fails until the line is whole).
  until read -r db_port db_socket <"$work/mariadb.addr"; do
    kill -0 "$pid" 2>/dev/null || { echo "bench: MariaDB did not start:" >&2; cat "$work/mariadb.log" >&2; exit 1; }
    sleep 0.05
  done
}
