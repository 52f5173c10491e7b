#!/usr/bin/env bash
# The playground's metrics path: InfluxDB 1.x from Debian and a Telegraf built from its
# Go module with only the statsd input and the InfluxDB output (a ~30 MB binary that
# builds in about a minute, instead of the full 200+ plugin build).
# Idempotent: the Telegraf binary is cached; a second run only checks and exits.
# Prints the Telegraf binary's path on stdout.
set -euo pipefail

TELEGRAF_VERSION=${TELEGRAF_VERSION:-v1.37.2}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/sqlreplay/telegraf-$TELEGRAF_VERSION
TELEGRAF=$CACHE/bin/telegraf

if [[ ! -x /usr/bin/influxd ]]; then
  echo "install-metrics: installing influxdb (1.x, Debian)" >&2
  "$(dirname "$0")/apt-install.sh" influxdb influxdb-client
fi

if [[ ! -x $TELEGRAF ]]; then
  if ! command -v go >/dev/null; then
    echo "install-metrics: Go is needed to build Telegraf; install it from https://go.dev/dl/ (Go ≥ 1.25)" >&2
    exit 1
  fi
  echo "install-metrics: building telegraf $TELEGRAF_VERSION (statsd in, influxdb out; ~1 min)" >&2
  mkdir -p "$CACHE/bin"
  CGO_ENABLED=0 GOBIN=$CACHE/bin go install -tags custom,inputs.statsd,outputs.influxdb \
    "github.com/influxdata/telegraf/cmd/telegraf@$TELEGRAF_VERSION" >&2
fi
echo "$TELEGRAF"
