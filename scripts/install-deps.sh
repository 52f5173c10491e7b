#!/usr/bin/env bash
# Installs what building, testing and the demo need on Debian 12, idempotently: a second
# run with everything present does nothing and takes well under a second.
#
#   scripts/install-deps.sh          # packages the tests need
#
# It never starts or configures the system's MariaDB service: tests and the demo run
# their own private servers on random ports.
set -euo pipefail

# Debian packages, each with the command that proves it is installed.
#   mariadb-server/-client: mariadbd + mariadb-install-db for private test servers, the CLI
#   percona-toolkit: pt-fingerprint, the reference our query classes are checked against
#   socat: the "plain TCP hop" anchor in the recorder benchmark
#   sysbench: an independent MySQL load generator for recorder tests and benchmarks
#   libmariadb-dev: headers mysqlclient (Python) builds against, for the recorder's tests
#   mariadb-test: MariaDB's own test suite, which recorder/transparency.sh runs through it
#   chromium: headless browser the dashboard test loads the live page in (and screenshots)
#   curl: vitess/reshard.sh writes its milestones to InfluxDB with it (dashboard markers)
declare -A PACKAGES=(
  [mariadb-test]=/usr/share/mysql/mysql-test/mariadb-test-run.pl
  [libmariadb-dev]=/usr/include/mariadb/mysql.h
  [mariadb-server]=/usr/sbin/mariadbd
  [mariadb-client]=/usr/bin/mariadb
  [percona-toolkit]=/usr/bin/pt-fingerprint
  [socat]=/usr/bin/socat
  [sysbench]=/usr/bin/sysbench
  [chromium]=/usr/bin/chromium
  [curl]=/usr/bin/curl
)

missing=()
for pkg in "${!PACKAGES[@]}"; do
  [[ -e "${PACKAGES[$pkg]}" ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  "$(dirname "$0")/apt-install.sh" "${missing[@]}"
fi

# Python's two MySQL drivers, which the recorder's tests run through it, in a virtualenv
# of their own (pinned: the tests judge the recorder, not driver upgrades).
PYCLIENTS=${XDG_CACHE_HOME:-$HOME/.cache}/sqlreplay/pyclients
if ! "$PYCLIENTS/bin/python" -c 'import pymysql, MySQLdb' 2>/dev/null; then
  echo "install-deps: installing PyMySQL and mysqlclient into $PYCLIENTS" >&2
  rm -rf "$PYCLIENTS"
  python3 -m venv "$PYCLIENTS"
  "$PYCLIENTS/bin/pip" install -q --disable-pip-version-check PyMySQL==1.2.4 mysqlclient==2.3.2
fi

# The metrics path (InfluxDB from Debian, Telegraf built once and cached).
"$(dirname "$0")/install-metrics.sh" >/dev/null
