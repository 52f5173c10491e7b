#!/usr/bin/env bash
# Judges the recorder's transparency with MariaDB's own test suite: every mtr test that
# passes directly against a server must also pass through the recorder with capture on.
#
# It prepares a private MariaDB (own datadir under a temp dir, a free port on 127.0.0.1,
# never the system service or 3306) as mtr prepares its own servers (the `mtr` schema
# with mtr.add_suppression and mtr.check_testcase, a latin1 `test` database, the test
# time zones, mtr's server options), then runs the chosen tests twice with
# `mariadb-test-run.pl --extern host=127.0.0.1 --extern port=N --extern loose-protocol=tcp`
# (so every connection a test opens, mysqltest's own `connect`s and the $MYSQL,
# $MYSQL_DUMP... clients included, is TCP, hence goes through the recorder):
#   1. directly against the server;
#   2. through `recorder --out CAPTURE --upstream SERVER`.
# --extern cannot restart servers, so the script does what mtr would: tests are grouped by
# the server options of their .opt/-master.opt files, each group starts a server with
# them on a fresh copy of the prepared datadir, and after a failing test the rest of its
# group continues on another fresh copy. Both runs go through the same steps. Tests that
# stop or restart the server themselves are left out (they would hang until timeout).
# It prints a table (passed / failed / skipped, directly and through the recorder), each
# test that passed directly but not through the recorder with mtr's reason (the diff or
# mysqltest's error), the tests that failed even directly (they need what --extern
# cannot give; not counted), and the capture's size and `replayer inspect` summary.
# Exit status 1 if a test passed directly but not through the recorder or the capture is
# unreadable, 2 on a setup error.
#
# Needs mariadb-server and the Debian package mariadb-test
# (scripts/apt-install.sh mariadb-test). Runs as root or not; writes only under a temp
# dir (mtr itself leaves *.reject files next to the results of failing tests).
#
# Usage:
#   recorder/transparency.sh                   # the default list: 88 tests of the main
#                                              # suite, about 4 minutes on 2 cores
#   recorder/transparency.sh ps sp-cursor      # these tests (of --suite, default main)
#   TESTS="ps loaddata" recorder/transparency.sh
#   recorder/transparency.sh --suite json --all   # every test of a suite
#   recorder/transparency.sh --ps-protocol ...    # other --options go to mariadb-test-run.pl
# Environment:
#   RECORDER=path  this recorder binary (default: cargo build --release, target/release)
#   REPLAYER=path  replayer for `inspect` of the capture (default: target/release)
#   MTR_DIR=dir    where mariadb-test-run.pl lives (default /usr/share/mysql/mysql-test)
#   TIMEOUT=min    per-test timeout in minutes (default 5)
#   KEEP=dir       copy the mtr logs, results, the capture and the recorder log there
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
# Interrupted: still stop the servers and the recorder and remove the scratch directory.
mtr_pid=
trap '[[ -n $mtr_pid ]] && kill -- -"$mtr_pid" 2>/dev/null; exit 130' INT TERM
PATH=$PATH:/usr/sbin

# A representative slice of the main suite: prepared statements (text and binary
# protocol, long data, cursors), multi-statements, stored procedures and cursors, LOAD
# DATA [LOCAL], big packets, the compressed protocol, charsets, change_user, KILL, the
# client programs, and
# mysql_client_test (the C API test: prepared statements, cursors, COM_STMT_SEND_LONG_DATA,
# COM_CHANGE_USER, COM_RESET_CONNECTION, multi-results...; with Debian's 10.11 it stops
# at its 207th case, test_mysql_insert_id, even directly, so it does not count, but a
# connection the recorder drops on the way shows in the recorder's warnings).
default_tests=(
  1st
  # prepared statements
  ps ps_1general ps_2myisam ps_4heap ps_5merge ps_10nestset ps_11bugs ps_ddl ps_ddl1
  ps_grant ps_missed_cmds ps_missed_cmds_bin_prot ps_max_subselect-5113
  ps_not_windows prepare mysqltest_ps
  # multi-statements, multi-results
  multi_statement
  # stored programs and cursors
  sp sp-error sp-cursor sp-vars sp-dynamic sp-code sp-fib sp-inout sp-row sp-for-loop
  sp-anchor-row-type-cursor sp-bugs sp-security sp_trans sp-prelocking sp-condition-handler
  sp-group sp-ucs2 sp-i_s_columns sp2 sp_notembedded
  # LOAD DATA [LOCAL] INFILE, LOAD XML
  loaddata loadxml loaddata_autocom_innodb gis-loaddata
  # packets and protocol
  packet compress mysql_client_test mysql_protocols change_user change_user_notembedded dirty_close
  mysqltest_tracking_info kill kill_processlist-6619 kill_query-6728 init_connect
  # character sets and unicode
  ctype_utf8mb4 ctype_utf8 ctype_ucs ctype_utf16 ctype_utf32 ctype_gbk ctype_sjis
  ctype_big5 ctype_binary ctype_latin1 ctype_recoding ctype_errors ctype_cp932 mysql_cp932
  ctype_ujis
  # the client programs through TCP
  mysql mysql_binary_mode mysql_binary_zero_insert mysqldump mysql_comments client
  # assorted SQL
  insert_returning delete_returning xa temp_table trigger dyncol func_json union
  show_check variables warnings errors
)

suite=main
tests=()
mtr_args=()
all=0
while (($#)); do
  case $1 in
    --suite) suite=$2; shift 2 ;;
    --suite=*) suite=${1#--suite=}; shift ;;
    --all) all=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --*) mtr_args+=("$1"); shift ;;
    *) tests+=("$1"); shift ;;
  esac
done
if ((${#tests[@]} == 0)) && [[ -n ${TESTS:-} ]]; then read -ra tests <<<"$TESTS"; fi
if ((${#tests[@]} == 0 && !all)); then
  if [[ $suite == main ]]; then tests=("${default_tests[@]}")
  else echo "transparency: name tests of suite $suite, or --all" >&2; exit 2; fi
fi

mtr_dir=${MTR_DIR:-/usr/share/mysql/mysql-test}
[[ -f $mtr_dir/mariadb-test-run.pl ]] || {
  echo "transparency: no $mtr_dir/mariadb-test-run.pl (scripts/apt-install.sh mariadb-test)" >&2
  exit 2
}
for tool in mariadbd mariadb-install-db mariadb perl; do
  command -v "$tool" >/dev/null || { echo "transparency: $tool missing" >&2; exit 2; }
done

if [[ -z ${RECORDER:-} ]]; then
  cargo build -q --release -p recorder -p replayer
  RECORDER=target/release/recorder
  REPLAYER=${REPLAYER:-target/release/replayer}
fi
recorder=$(realpath "$RECORDER")
replayer=${REPLAYER:-}
[[ -x $recorder ]] || { echo "transparency: no recorder at $RECORDER" >&2; exit 2; }

user_opt=()
[[ $(id -u) -eq 0 ]] && user_opt=(--user=root)
server_pid=

# The options mtr's include/default_mysqld.cnf gives its servers that test results
# depend on (charset, engine, sizes, statistics); the rest are mtr's defaults too.
base_opts=(
  --local-infile --character-set-server=latin1 --default-storage-engine=myisam
  --log-bin-trust-function-creators=1 --key-buffer-size=1M --sort-buffer-size=256K
  --max-heap-table-size=1M --loose-aria-pagecache-buffer-size=8M
  --innodb-buffer-pool-size=64M --innodb-log-file-size=10M
  --innodb-flush-log-at-trx-commit=2 --connect-timeout=60 --use-stat-tables=preferably
  --histogram-type=json_hb --plugin-maturity=unknown
  --binlog-direct-non-transactional-updates --slave-net-timeout=120
  --loose-enable-performance-schema --max-connections=300
  --open-files-limit=1024
)

# start_server DATADIR PORT VARDIR [OPTION...]: a private mariadbd (sets server_pid);
# false if it does not come up (e.g. options a test's .opt file wants that this build
# lacks). Laid out as mtr lays out its servers (VARDIR/mysqld.1/data, errors in
# VARDIR/log/mysqld.1.err, secure-file-priv VARDIR), so tests that reach files through
# ../../std_data or the error log find them. TZ: from an .opt file's --timezone.
start_server() {
  local datadir=$1 port=$2 vardir=$3
  shift 3
  mkdir -p "$vardir/log"
  local tz=()
  [[ -n ${server_tz:-} ]] && tz=(env TZ="$server_tz")
  "${tz[@]}" mariadbd --no-defaults --datadir="$datadir" --port="$port" \
    --bind-address=127.0.0.1 --log-basename=mysqld --socket="$datadir/../mysqld.sock" \
    --pid-file="$datadir/../mysqld.pid" "${user_opt[@]}" --log-error="$vardir/log/mysqld.1.err" \
    --secure-file-priv="$vardir" "${base_opts[@]}" "$@" 2>/dev/null &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 600); do
    if mariadb --no-defaults -uroot -h127.0.0.1 -P"$port" -e 'SELECT 1' >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  stop_server
  return 1
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

# mtr's bootstrap, done on a running server: no anonymous users, a latin1 `test`
# database, the `mtr` schema (warning suppressions, check_testcase) and the test time
# zones. mtr's .sql files use mysqltest's `delimiter X<old>` syntax; make it the client's.
mtr_sql() {
  perl -ne 'BEGIN { $d = ";" }
    if (/^delimiter (.*?)\s*$/i) { ($n = $1) =~ s/\Q$d\E$//; $d = $n; print "DELIMITER $n\n"; next }
    next if /^\s*--/;
    print;
    END { print "\nDELIMITER ;\n" }' "$1"
}
echo "transparency: preparing a private MariaDB ($(mariadbd --version | awk '{print $3}'))"
t0=$SECONDS
pristine=$work/pristine/var/mysqld.1/data
mkdir -p "$pristine"
mariadb-install-db --no-defaults --datadir="$pristine" --auth-root-authentication-method=normal \
  "${user_opt[@]}" >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; exit 2; }
port=$(free_port)
start_server "$pristine" "$port" "$work/pristine/var" || {
  echo "transparency: mariadbd did not start:" >&2
  tail -20 "$work/pristine/var/log/mysqld.1.err" >&2
  exit 2
}
{
  echo "DELETE FROM mysql.global_priv WHERE user = ''; FLUSH PRIVILEGES;"
  echo "DROP DATABASE IF EXISTS test;"
  echo "CREATE DATABASE test CHARACTER SET latin1 COLLATE latin1_swedish_ci;"
  echo "ALTER TABLE mysql.gtid_slave_pos ENGINE=Aria transactional=0;"
  echo "CREATE DATABASE mtr CHARSET=latin1; USE mtr;"
  mtr_sql "$mtr_dir/include/mtr_warnings.sql"
  mtr_sql "$mtr_dir/include/mtr_check.sql"
  echo "USE mysql;"
  if [[ -f /usr/share/mysql/mysql_test_data_timezone.sql ]]; then
    mtr_sql /usr/share/mysql/mysql_test_data_timezone.sql
  fi
} | mariadb --no-defaults -uroot -h127.0.0.1 -P"$port" || {
  echo "transparency: preparing the server failed" >&2
  exit 2
}
stop_server

# Tests grouped by the server options their .opt / -master.opt files ask for (mtr would
# restart its server for them; --extern cannot, so each group gets its own start of the
# server, in the same order in both runs). Output: "G<TAB>opt<US>opt..." then
# "T<TAB>test" lines ("U<TAB>test": no such test, "R<TAB>test": restarts the server). Options naming a variable other than the var/tmp/test dirs (plugin
# libraries) are dropped: those tests run on the plain server and fail or skip alike.
plan() {
  perl -I"$mtr_dir/lib" -e '
    use strict;
    my ($dir, $suite, $all, @tests) = @ARGV;
    my $tdir = $suite eq "main" ? "$dir/main" : (glob("$dir/{suite,plugin/*}/$suite/t"))[0]
      // (glob("$dir/{suite,plugin/*}/$suite"))[0];
    die "no suite $suite under $dir\n" unless $tdir && -d $tdir;
    @tests = map { s{.*/}{}; s/\.test$//; $_ } sort glob("$tdir/*.test") if $all;
    sub opts { my $f = shift; return () unless -f $f;
      open my $fh, "<", $f or die; local $/; my $t = <$fh>; $t =~ s/^\s+|\s+$//g;
      my @a; for (split /\n/, $t) {
        s/\x27([^\x27"]*)\x27/join "\x11", split m{ }, $1/ge; s/"([^\x27"]*)"/join "\x11", split m{ }, $1/ge;
        push @a, map { tr/\x11/ /; $_ } grep { length } split /[ \t]+/ } @a }
    my (%g, @order, @unknown, @restart);
    for my $t (@tests) {
      (my $name = $t) =~ s/^\Q$suite\E\.//;
      unless (-f "$tdir/$name.test") { push @unknown, $t; next }
      # Tests that stop or restart the server would wait for a restart --extern never
      # does (until the test times out): leave them out.
      open my $tf, "<", "$tdir/$name.test" or die; my $src = do { local $/; <$tf> };
      if ($src =~ /(restart|shutdown|kill|start)_mysqld|shutdown_server|expect_file_name|wait_until_disconnected/) {
        push @restart, $t; next
      }
      my @o = (opts("$tdir/suite.opt"), opts("$tdir/$name.opt"), opts("$tdir/$name-master.opt"));
      @o = grep { !/\$(?!MYSQLTEST_VARDIR|MYSQL_TMP_DIR|MYSQL_TEST_DIR)\w/ } @o;
      my $key = join "\x1f", @o;
      push @order, $key unless exists $g{$key};
      push @{$g{$key}}, "$suite.$name";  # mtr looks bare names up in main only
    }
    for my $k (@order) { print "G\t$k\n"; print "T\t$_\n" for @{$g{$k}} }
    print "U\t$_\n" for @unknown;
    print "R\t$_\n" for @restart;
  ' "$mtr_dir" "$suite" "$all" "${tests[@]}"
}
plan >"$work/plan" || exit 2
unknown=$(awk -F'\t' '$1 == "U" { printf "%s ", $2 }' "$work/plan")
[[ -n $unknown ]] && echo "transparency: no such test in suite $suite (ignored): $unknown" >&2
restarting=$(awk -F'\t' '$1 == "R" { printf "%s ", $2 }' "$work/plan")
[[ -n $restarting ]] && echo "transparency: left out, they restart the server: $restarting"
n_tests=$(grep -c '^T' "$work/plan")
n_groups=$(grep -c '^G' "$work/plan")

# run_mtr LABEL VARDIR PORT TEST...: the tests against 127.0.0.1:PORT, in this order,
# stopping at the first failure (as without --force); appends to $work/mtr-LABEL.log.
run_mtr() {
  local label=$1 vardir=$2 port=$3
  shift 3
  local args=(
    --extern host=127.0.0.1 --extern port="$port" --extern user=root
    --extern loose-protocol=tcp --extern socket="$work/no-such.sock"
    --vardir="$vardir" --retry=0 --no-reorder
    --testcase-timeout="${TIMEOUT:-5}" --suite="$suite" "${mtr_args[@]}" "$@"
  )
  # In its own process group (setsid), so an interrupt can stop mtr and its mysqltest.
  (cd "$mtr_dir" && exec setsid perl ./mariadb-test-run.pl "${args[@]}") >>"$work/mtr-$label.log" 2>&1 &
  mtr_pid=$!
  wait "$mtr_pid" || true
  mtr_pid=
}

# run_all LABEL PORT-FOR-MTR DB-PORT: every group; writes $work/LABEL.results ("suite.test status" lines).
run_all() {
  local label=$1 target=$2 db_port=$3
  local vardir=$work/$label/var
  # What mtr's setup_vardir does (it skips it when the vardir exists, as it must here:
  # the datadir lives inside it).
  mkdir -p "$vardir"/{log,run,tmp,mysqld.1}
  cp -r "$mtr_dir/std_data" "$vardir/std_data"
  : >"$work/mtr-$label.log"
  : >"$work/$label.unstarted"
  : >"$work/$label.noresult"
  local opts=() group=() line
  flush_group() {
    ((${#group[@]})) || return 0
    server_tz=
    local o srv=()
    for o in "${opts[@]}"; do
      o=${o//\$MYSQLTEST_VARDIR/$vardir}
      o=${o//\$MYSQL_TMP_DIR/$vardir/tmp}
      o=${o//\$MYSQL_TEST_DIR/$mtr_dir}
      case $o in
        --timezone=*) server_tz=${o#--timezone=} ;;
        --default-time-zone=*) server_tz=GMT-8; srv+=("$o") ;;
        *) srv+=("$o") ;;
      esac
    done
    # A failed test may leave tables, users, variables or a dead server behind, and
    # --extern cannot restart anything: each group starts on a fresh copy of the
    # prepared datadir, and after a failure the rest of the group continues on another
    # one (mtr restarts its server after a failure too).
    local rest=("${group[@]}") done_n i
    while ((${#rest[@]})); do
      rm -rf "$vardir/mysqld.1/data" "$vardir/tmp"
      mkdir -p "$vardir/tmp"
      cp -a "$pristine" "$vardir/mysqld.1/data"
      if ! start_server "$vardir/mysqld.1/data" "$db_port" "$vardir" "${srv[@]}"; then
        printf '%s\n' "${rest[@]}" >>"$work/$label.unstarted"
        break
      fi
      local log_at
      log_at=$(wc -l <"$work/mtr-$label.log")
      run_mtr "$label" "$vardir" "$target" "${rest[@]}"
      stop_server
      # How many of rest got a result (mtr runs them in order and stops after a failure).
      done_n=$(tail -n +"$((log_at + 1))" "$work/mtr-$label.log" |
        grep -cE '\[ (retry-)?(pass|fail|skipped|disabled) \]' || true)
      for ((i = 0; i < done_n; i++)); do unset 'rest[i]'; done
      rest=("${rest[@]}")
      if ((done_n == 0 && ${#rest[@]})); then
        # mtr gave no result for the next test at all (a name it cannot find, or mtr
        # itself failing): record it and go on without it.
        echo "${rest[0]}" >>"$work/$label.noresult"
        rest=("${rest[@]:1}")
      fi
    done
    group=()
  }
  while IFS=$'\t' read -r kind line; do
    if [[ $kind == U || $kind == R ]]; then
      continue
    elif [[ $kind == G ]]; then
      flush_group
      opts=()
      [[ -n $line ]] && IFS=$'\x1f' read -ra opts <<<"$line"
    else
      group+=("$line")
    fi
  done <"$work/plan"
  flush_group
  awk 'match($0, /\[ (retry-)?(pass|fail|skipped|disabled) \]/) && $1 ~ /^[A-Za-z0-9_-]+\.[^ ]+$/ {
         st = substr($0, RSTART + 2, RLENGTH - 4); sub(/^retry-/, "", st); s[$1] = st }
       END { for (t in s) print t, s[t] }' "$work/mtr-$label.log" | sort >"$work/$label.results"
}

# reason LABEL TEST: what mtr said about a failure (the diff or mysqltest's error).
reason() {
  awk -v t="$2" '
    index($0, t" ") == 1 && /\[ (retry-)?fail \]/ { on = 1; print; next }
    on && (/\[ (retry-)?(pass|fail|skipped|disabled) \]/ || /^ - saving/ || /^-{20,}$/) { exit }
    on { print }' "$work/mtr-$1.log" | head -"${REASON_LINES:-40}"
}

echo "transparency: $n_tests test(s) of suite $suite in $n_groups server configuration(s), directly..."
t1=$SECONDS
run_all direct "$port" "$port"
t_direct=$((SECONDS - t1))

rec_port=$(free_port)
capture=$work/transparency.sqlcap
"$recorder" --listen "127.0.0.1:$rec_port" --upstream "127.0.0.1:$port" --out "$capture" \
  --log warn >"$work/recorder.log" 2>&1 &
rec_pid=$!
pids+=("$rec_pid")
# Wait for it to listen without connecting (a connection would reach for the upstream,
# which starts with the first group).
for _ in $(seq 100); do
  [[ -n $(ss -Hltn "sport = :$rec_port" 2>/dev/null) ]] && break
  sleep 0.05
done
echo "transparency: ... and through the recorder (port $rec_port → $port, capture on)..."
t1=$SECONDS
run_all through "$rec_port" "$port"
t_through=$((SECONDS - t1))
kill -INT "$rec_pid"
rec_status=0
wait "$rec_pid" || rec_status=$?

count() { awk -v s="$2" '$2 == s' "$work/$1.results" | wc -l; }
printf '\n%-22s %6s %6s %6s %8s %9s %9s %6s\n' "$n_tests tests" pass fail skipped disabled \
  no-server no-result secs
for label in direct through; do
  secs=$t_direct name="directly"
  [[ $label == through ]] && secs=$t_through name="through the recorder"
  unstarted=$(grep -c . "$work/$label.unstarted" || true)
  noresult=$((n_tests - $(grep -c . "$work/$label.results" || true) - unstarted))
  printf '%-22s %6d %6d %6d %8d %9d %9d %6d\n' "$name" "$(count "$label" pass)" \
    "$(count "$label" fail)" "$(count "$label" skipped)" "$(count "$label" disabled)" \
    "$unstarted" "$noresult" "$secs"
done
echo "(no-server: the server would not start with the test's .opt options;"
echo " no-result: mtr reported nothing for the test, e.g. an unknown name)"
failed_direct=$(awk '$2 == "fail" { sub(/^[^.]*\./, "", $1); printf "%s ", $1 }' "$work/direct.results")
if [[ -n $failed_direct ]]; then
  echo "failed directly (need what --extern cannot give; not counted):"
  fold -s -w 88 <<<"$failed_direct" | sed 's/^/    /'
fi

# Passed directly, not through the recorder (a test missing from the second run counts).
broken=$(join -a1 -e missing -o 0,1.2,2.2 "$work/direct.results" "$work/through.results" |
  awk '$2 == "pass" && $3 != "pass" { print $1 }')
fixed=$(join -o 0,1.2,2.2 "$work/direct.results" "$work/through.results" |
  awk '$2 != "pass" && $3 == "pass" { print $1 }')
echo
if [[ -n $fixed ]]; then
  echo "passed only through the recorder (flaky or state-dependent):" $fixed
fi
for t in $broken; do
  echo "=== $t: passed directly, $(awk -v t="$t" '$1 == t { print $2 }' "$work/through.results" |
    grep . || echo missing) through the recorder"
  reason through "$t" | sed 's/^/    /'
done

echo
size=$(stat -c %s "$capture" 2>/dev/null || echo 0)
echo "capture: $size bytes; recorder exited with status $rec_status"
if [[ -n $replayer && -x $replayer ]]; then
  if "$replayer" inspect "$capture" >"$work/inspect.txt" 2>&1; then
    echo "capture readable (replayer inspect):"
    head -"${INSPECT_LINES:-25}" "$work/inspect.txt" | sed 's/^/    /'
  else
    echo "capture NOT readable by replayer inspect:"
    sed 's/^/    /' "$work/inspect.txt" | head -20
    rec_status=1
  fi
else
  echo "(no replayer binary to inspect it: set REPLAYER=path)"
fi
if [[ -s $work/recorder.log ]]; then
  echo "recorder log (warnings):"
  sed 's/\x1b\[[0-9;]*m//g; s/^/    /' "$work/recorder.log" | head -20
fi
if [[ -n ${KEEP:-} ]]; then
  mkdir -p "$KEEP"
  cp "$work"/mtr-*.log "$work"/*.results "$work/recorder.log" "$capture" "$KEEP"/ 2>/dev/null || true
  echo "logs and capture kept in $KEEP"
fi
echo "total time: $((SECONDS - t0)) s"

n_broken=$(wc -w <<<"$broken")
if ((n_broken > 0)); then
  echo "transparency: FAIL: $n_broken test(s) passed directly but not through the recorder"
  exit 1
fi
if ((rec_status != 0)); then
  echo "transparency: FAIL: the recorder did not stop cleanly or its capture is unreadable"
  exit 1
fi
echo "transparency: OK: every test that passed directly passed through the recorder"
