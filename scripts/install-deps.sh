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
declare -A PACKAGES=(
  [mariadb-server]=/usr/sbin/mariadbd
  [mariadb-client]=/usr/bin/mariadb
  [percona-toolkit]=/usr/bin/pt-fingerprint
  [socat]=/usr/bin/socat
  [sysbench]=/usr/bin/sysbench
)

missing=()
for pkg in "${!PACKAGES[@]}"; do
  [[ -x "${PACKAGES[$pkg]}" ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  "$(dirname "$0")/apt-install.sh" "${missing[@]}"
fi

# The metrics path (InfluxDB from Debian, Telegraf built once and cached).
"$(dirname "$0")/install-metrics.sh" >/dev/null
