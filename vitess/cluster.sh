#!/usr/bin/env bash
# A real local Vitess cluster on 127.0.0.1 for the shop, as plain processes:
# etcd (topology), vtctld, one vttablet per shard in front of its own private MariaDB
# (an *unmanaged* tablet: see README.md for why), and vtgate on a MySQL port.
#
#   vitess/cluster.sh up [--layout unsharded|sharded] [--vtgate-port P] [--dir D] [--port-base B]
#                        [--vtgate-buffer]
#   vitess/cluster.sh status [--dir D]
#   vitess/cluster.sh down [--dir D] [--keep]
#   vitess/cluster.sh add-tablet --dir D --uid N --keyspace K --shard S   (used by reshard.sh)
#
# Layouts
#   unsharded  keyspace `shop`, shard 0: every shop table (Vitess as a pure proxy)
#   sharded    keyspace `commerce`, shard 0: product
#              keyspace `customer`, shards -80 and 80-: customer, address, cart_item,
#              corder, order_item, sharded by xxhash(customer_id)
# --vtgate-buffer: vtgate holds primary traffic (up to 10 s) while a shard's primary
# changes hands, e.g. at a Reshard's traffic switch, instead of failing it (off by
# default, as in Vitess).
# Tables come from shop/schema.sql (the shop's own schema file), VSchemas from vschema/.
# All logs, data and pid files live under --dir (default /tmp/sqlreplay-vitess); Vitess
# servers and their MariaDBs run as the unprivileged `vitess` user when started as root.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SCHEMA=$ROOT/shop/schema.sql
CELL=zone1
DB_PASSWORD=vitess-local

cmd=${1:-}
[[ -n $cmd ]] && shift
layout=unsharded
vtgate_port=15306
dir=${SQLREPLAY_VITESS_DIR:-/tmp/sqlreplay-vitess}
port_base=
keep=0
vtgate_buffer=()
uid= keyspace= shard=
while (($#)); do
  case $1 in
    --layout) layout=$2; shift 2 ;;
    --vtgate-port) vtgate_port=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --port-base) port_base=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --vtgate-buffer) vtgate_buffer=(--enable_buffer); shift ;;
    --uid) uid=$2; shift 2 ;;
    --keyspace) keyspace=$2; shift 2 ;;
    --shard) shard=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "cluster.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

log() { printf 'vitess: %s\n' "$*" >&2; }
die() {
  printf 'vitess: %s\n' "$*" >&2
  # A half-started cluster is taken down again (its logs kept for reading).
  if ((starting)); then starting=0; keep=1; down; fi
  exit 1
}
starting=0

# ---- helpers -------------------------------------------------------------------------

run_as=()
if [[ $(id -u) -eq 0 ]]; then
  id vitess >/dev/null 2>&1 || useradd --system --create-home --shell /usr/sbin/nologin vitess
  run_as=(runuser -u vitess --)
fi

# Starts a long-running server in the background: name, then the command.
spawn() {
  local name=$1; shift
  (cd "$dir" && exec setsid "${run_as[@]}" "$@" >>"$dir/logs/$name.out" 2>&1 </dev/null) &
  echo $! >"$dir/pids/$name.pid"
}

wait_port() {
  local port=$1 what=$2 tries=${3:-600}
  for ((i = 0; i < tries; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  die "$what did not listen on $port in $((tries / 10)) s; see $dir/logs"
}

free_port_base() {
  # A run of 100 free ports from a random start, so two clusters (or a test and a
  # user's cluster) do not collide.
  python3 - <<'PY'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 60000, 100)
    ok = True
    for p in range(base, base + 100):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            ok = False
            break
        finally:
            s.close()
    if ok:
        print(base)
        break
PY
}

load_env() {
  [[ -f $dir/cluster.env ]] || die "no cluster in $dir (start one with: vitess/cluster.sh up)"
  # shellcheck disable=SC1091
  source "$dir/cluster.env"
}

topo_flags() {
  echo --topo_implementation etcd2 --topo_global_server_address "127.0.0.1:$ETCD_PORT" \
    --topo_global_root /vitess/global
}

vtctldclient() { "$BIN/vtctldclient" --server "127.0.0.1:$VTCTLD_GRPC" "$@"; }

# The CREATE TABLE statements of shop/schema.sql for the named tables.
schema_for() {
  python3 - "$SCHEMA" "$@" <<'PY'
import re, sys
text = "\n".join(l for l in open(sys.argv[1]).read().splitlines() if not l.strip().startswith("--"))
want = set(sys.argv[2:])
for stmt in text.split(";\n"):
    m = re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", stmt)
    if m and m.group(1) in want:
        print(stmt.strip() + ";")
PY
}

tables_of() {
  case $1 in
    shop) echo product customer address cart_item corder order_item ;;
    commerce) echo product ;;
    customer) echo customer address cart_item corder order_item ;;
    *) die "unknown keyspace $1" ;;
  esac
}

# One tablet: a private MariaDB (binlog + GTID, as VReplication needs) and an unmanaged
# vttablet in front of it, then made the shard's primary.
start_tablet() {
  local uid=$1 ks=$2 sh=$3
  local alias=$CELL-$(printf '%010d' "$uid")
  local off=$((10 + (uid / 100 - 1) * 3))
  local http=$((PORT_BASE + off)) grpc=$((PORT_BASE + off + 1)) mport=$((PORT_BASE + off + 2))
  local data=$dir/mysql/$uid
  mkdir -p "$data"
  chown -R "${run_as:+vitess}${run_as:+:vitess}" "$data" 2>/dev/null || true
  cat >"$dir/mysql/$uid.cnf" <<EOF
[mariadbd]
datadir=$data/data
socket=$data/mysqld.sock
pid-file=$data/mysqld.pid
port=$mport
bind-address=127.0.0.1
skip-name-resolve
server-id=$uid
log-bin=$data/binlog
binlog-format=ROW
binlog-row-image=FULL
log-slave-updates
gtid-strict-mode=1
gtid-domain-id=$uid
innodb-buffer-pool-size=96M
innodb-log-file-size=48M
innodb-flush-log-at-trx-commit=2
max-connections=400
character-set-server=utf8mb4
collation-server=utf8mb4_general_ci
log-error=$dir/logs/mariadb-$uid.err
EOF
  if [[ ! -d $data/data/mysql ]]; then
    "${run_as[@]}" mariadb-install-db --defaults-file="$dir/mysql/$uid.cnf" \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/logs/install-$uid.log" 2>&1 ||
      die "mariadb-install-db for tablet $uid failed; see $dir/logs/install-$uid.log"
  fi
  spawn "mariadb-$uid" mariadbd --defaults-file="$dir/mysql/$uid.cnf"
  wait_port "$mport" "MariaDB of tablet $uid"
  local db=vt_$ks
  {
    # The accounts vttablet uses. Unmanaged tablets insist on passwords; these guard
    # nothing (the server listens on 127.0.0.1 only, its datadir is private).
    for u in vt_dba vt_app vt_allprivs vt_repl vt_filtered; do
      echo "CREATE USER IF NOT EXISTS '$u'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD'; CREATE USER IF NOT EXISTS '$u'@'localhost' IDENTIFIED BY '$DB_PASSWORD';"
      echo "GRANT ALL ON *.* TO '$u'@'127.0.0.1' WITH GRANT OPTION; GRANT ALL ON *.* TO '$u'@'localhost' WITH GRANT OPTION;"
    done
    echo "CREATE DATABASE IF NOT EXISTS \`$db\`; USE \`$db\`;"
    # shellcheck disable=SC2046
    [[ ${SKIP_SCHEMA:-0} == 1 ]] || schema_for $(tables_of "$ks")
  } | mariadb --no-defaults -h127.0.0.1 -P"$mport" -uroot

  local dbflags=(--db_host 127.0.0.1 --db_port "$mport")
  for kind in app dba allprivs repl filtered; do
    dbflags+=("--db_${kind}_user" "vt_$kind" "--db_${kind}_password" "$DB_PASSWORD")
  done
  for kind in allprivs repl filtered; do dbflags+=("--db_${kind}_use_ssl=false"); done
  # shellcheck disable=SC2046
  spawn "vttablet-$uid" "$BIN/vttablet" $(topo_flags) \
    --tablet-path "$alias" --tablet_hostname 127.0.0.1 \
    --init_keyspace "$ks" --init_shard "$sh" --init_tablet_type replica \
    --unmanaged "${dbflags[@]}" \
    --port "$http" --grpc_port "$grpc" \
    --service_map 'grpc-queryservice,grpc-tabletmanager,grpc-updatestream' \
    --health_check_interval 2s --heartbeat_enable --heartbeat_interval 1s \
    --log_dir "$dir/logs"
  wait_port "$grpc" "vttablet $alias" 900
  # Unmanaged tablets are told who is primary (there is no replica to fail over to).
  for ((i = 0; i < 60; i++)); do
    vtctldclient TabletExternallyReparented "$alias" >>"$dir/logs/vtctldclient.log" 2>&1 && break
    sleep 1
  done
  log "tablet $alias: $ks/$sh, MariaDB on $mport"
}

apply_vschema() {
  local ks=$1 file=$2
  vtctldclient ApplyVSchema --vschema-file "$file" "$ks" >>"$dir/logs/vtctldclient.log" 2>&1 ||
    die "ApplyVSchema $ks failed; see $dir/logs/vtctldclient.log"
}

# Waits until vtgate answers a query on every table of a keyspace.
wait_serving() {
  local ks=$1 t
  for t in $(tables_of "$ks"); do
    for ((i = 0; i < 600; i++)); do
      mariadb --no-defaults -h127.0.0.1 -P"$VTGATE_PORT" -uroot -e "SELECT 1 FROM $ks.$t LIMIT 1" \
        >/dev/null 2>>"$dir/logs/wait.log" && continue 2
      sleep 0.2
    done
    die "vtgate does not serve $ks.$t after 2 minutes; see $dir/logs"
  done
}

# ---- commands ------------------------------------------------------------------------

up() {
  case $layout in unsharded | sharded) ;; *) die "--layout must be unsharded or sharded" ;; esac
  if [[ -f $dir/cluster.env ]]; then
    load_env
    if [[ -s $dir/pids/vtgate.pid ]] && kill -0 "$(cat "$dir/pids/vtgate.pid")" 2>/dev/null; then
      die "a cluster already runs in $dir (layout $LAYOUT, vtgate on $VTGATE_PORT): vitess/cluster.sh down --dir $dir"
    fi
    rm -rf "$dir"
  fi
  starting=1
  BIN=$("$HERE/install.sh")
  for t in etcd mariadbd mariadb-install-db mariadb python3; do
    command -v "$t" >/dev/null || PATH=$PATH:/usr/sbin:/usr/bin
    command -v "$t" >/dev/null || die "$t is missing: run scripts/install-deps.sh and vitess/install.sh"
  done
  mkdir -p "$dir"/{logs,pids,mysql,etcd,backups}
  [[ ${#run_as[@]} -gt 0 ]] && chown -R vitess:vitess "$dir"
  # vitess must be able to reach the directory.
  [[ ${#run_as[@]} -gt 0 ]] && chmod o+x "$(dirname "$dir")" 2>/dev/null || true

  PORT_BASE=${port_base:-$(free_port_base)}
  ETCD_PORT=$PORT_BASE ETCD_PEER=$((PORT_BASE + 1))
  VTCTLD_HTTP=$((PORT_BASE + 2)) VTCTLD_GRPC=$((PORT_BASE + 3))
  VTGATE_HTTP=$((PORT_BASE + 4)) VTGATE_GRPC=$((PORT_BASE + 5))
  VTGATE_PORT=$vtgate_port
  LAYOUT=$layout
  cat >"$dir/cluster.env" <<EOF
LAYOUT=$LAYOUT
PORT_BASE=$PORT_BASE
ETCD_PORT=$ETCD_PORT
VTCTLD_HTTP=$VTCTLD_HTTP
VTCTLD_GRPC=$VTCTLD_GRPC
VTGATE_HTTP=$VTGATE_HTTP
VTGATE_GRPC=$VTGATE_GRPC
VTGATE_PORT=$VTGATE_PORT
BIN=$BIN
EOF

  log "etcd on $ETCD_PORT"
  spawn etcd etcd --name sqlreplay --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "sqlreplay=http://127.0.0.1:$ETCD_PEER"
  wait_port "$ETCD_PORT" etcd
  "$BIN/vtctldclient" --server internal --topo-implementation etcd2 \
    --topo-global-server-address "127.0.0.1:$ETCD_PORT" --topo-global-root /vitess/global \
    AddCellInfo --root "/vitess/$CELL" --server-address "127.0.0.1:$ETCD_PORT" "$CELL" \
    >>"$dir/logs/vtctldclient.log" 2>&1 || die "AddCellInfo failed; see $dir/logs/vtctldclient.log"

  log "vtctld on $VTCTLD_HTTP (grpc $VTCTLD_GRPC)"
  # shellcheck disable=SC2046
  spawn vtctld "$BIN/vtctld" $(topo_flags) --cell "$CELL" \
    --service_map 'grpc-vtctl,grpc-vtctld' --backup_storage_implementation file \
    --file_backup_storage_root "$dir/backups" --port "$VTCTLD_HTTP" --grpc_port "$VTCTLD_GRPC" \
    --log_dir "$dir/logs"
  wait_port "$VTCTLD_GRPC" vtctld 900

  case $layout in
    unsharded)
      vtctldclient CreateKeyspace --durability-policy none shop >>"$dir/logs/vtctldclient.log" 2>&1
      start_tablet 100 shop 0
      apply_vschema shop "$HERE/vschema/shop.json"
      keyspaces=(shop)
      ;;
    sharded)
      vtctldclient CreateKeyspace --durability-policy none commerce >>"$dir/logs/vtctldclient.log" 2>&1
      vtctldclient CreateKeyspace --durability-policy none customer >>"$dir/logs/vtctldclient.log" 2>&1
      start_tablet 100 commerce 0
      start_tablet 200 customer -80
      start_tablet 300 customer 80-
      apply_vschema commerce "$HERE/vschema/commerce.json"
      apply_vschema customer "$HERE/vschema/customer.json"
      keyspaces=(commerce customer)
      ;;
  esac

  log "vtgate on 127.0.0.1:$VTGATE_PORT"
  # shellcheck disable=SC2046
  spawn vtgate "$BIN/vtgate" $(topo_flags) --cell "$CELL" --cells_to_watch "$CELL" \
    --tablet_types_to_wait PRIMARY --service_map 'grpc-vtgateservice' \
    --port "$VTGATE_HTTP" --grpc_port "$VTGATE_GRPC" \
    --mysql_server_port "$VTGATE_PORT" --mysql_server_bind_address 127.0.0.1 \
    --mysql_auth_server_impl none --log_dir "$dir/logs" "${vtgate_buffer[@]}"
  wait_port "$VTGATE_PORT" vtgate 900
  for ks in "${keyspaces[@]}"; do wait_serving "$ks"; done
  log "ready: mysql -h127.0.0.1 -P$VTGATE_PORT -uroot   (layout $layout, logs in $dir/logs)"
}

status() {
  load_env
  printf 'layout %s, vtgate 127.0.0.1:%s, vtctld http://127.0.0.1:%s, logs %s/logs\n' \
    "$LAYOUT" "$VTGATE_PORT" "$VTCTLD_HTTP" "$dir"
  local f name pid
  for f in "$dir"/pids/*.pid; do
    name=$(basename "$f" .pid) pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then printf '  %-16s up (pid %s)\n' "$name" "$pid"
    else printf '  %-16s DOWN\n' "$name"; fi
  done
  vtctldclient GetTablets 2>/dev/null | sed 's/^/  /' || true
}

down() {
  [[ -d $dir ]] || { log "nothing in $dir"; return 0; }
  local order=(vtgate vttablet vtctld mariadb etcd) kind f pid
  for kind in "${order[@]}"; do
    for f in "$dir"/pids/"$kind"*.pid; do
      [[ -f $f ]] || continue
      pid=$(cat "$f")
      # setsid made each server the leader of its own group: stop the whole group.
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for f in "$dir"/pids/"$kind"*.pid; do
      [[ -f $f ]] || continue
      pid=$(cat "$f")
      for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      rm -f "$f"
    done
  done
  if ((keep)); then log "stopped; data and logs kept in $dir"
  else rm -rf "$dir"; log "stopped and removed $dir"; fi
}

add_tablet() {
  load_env
  [[ -n $uid && -n $keyspace && -n $shard ]] || die "add-tablet needs --uid --keyspace --shard"
  start_tablet "$uid" "$keyspace" "$shard"
}

case $cmd in
  up) up ;;
  status) status ;;
  down) down ;;
  add-tablet) SKIP_SCHEMA=${SKIP_SCHEMA:-0} add_tablet ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
