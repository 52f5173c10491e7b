#!/usr/bin/env bash
# Installs what a local Vitess cluster needs, idempotently (v0.22.1: the module proxy
# reachable from here refuses v0.22.2 with "403 This module version is not available"):
#  - Vitess v22 binaries built from the Go module (v23+ cannot be `go install`ed: their
#    go.mod has an `exclude`), cached under ~/.cache/sqlreplay so the second run is instant;
#  - etcd (topology server) from Debian;
#  - an unprivileged `vitess` user when run as root (Vitess servers refuse to run as root).
# Prints the directory holding the Vitess binaries.
set -euo pipefail

VITESS_VERSION=${VITESS_VERSION:-v0.22.1}
# As root the binaries go where the unprivileged `vitess` user can run them (a root home
# directory is not traversable by other users).
if [[ $(id -u) -eq 0 && -z ${XDG_CACHE_HOME:-} ]]; then
  CACHE=/var/cache/sqlreplay/vitess-$VITESS_VERSION
else
  CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/sqlreplay/vitess-$VITESS_VERSION
fi
BIN=$CACHE/bin
TOOLS=(vtgate vttablet vtctld vtctldclient mysqlctl)


if [[ ! -x /usr/bin/etcd ]]; then
  echo "vitess/install: installing etcd (Debian)" >&2
  "$(dirname "$0")/../scripts/apt-install.sh" etcd-server etcd-client
fi

missing=()
for t in "${TOOLS[@]}"; do [[ -x $BIN/$t ]] || missing+=("$t"); done
if ((${#missing[@]})); then
  if ! command -v go >/dev/null; then
    echo "vitess/install: Go is needed to build Vitess; install Go ≥ 1.24 from https://go.dev/dl/" >&2
    exit 1
  fi
  echo "vitess/install: building Vitess $VITESS_VERSION: ${missing[*]} (first time: several minutes)" >&2
  mkdir -p "$BIN"
  pkgs=()
  for t in "${missing[@]}"; do pkgs+=("vitess.io/vitess/go/cmd/$t@$VITESS_VERSION"); done
  # Vitess v22.0.1 refuses to compile without Swiss maps as a *GOEXPERIMENT* tag, which
  # Go ≥ 1.26 no longer sets (they are simply on): build with the toolchain its go.mod
  # names, fetched through the module proxy like any module.
  GOTOOLCHAIN=${VITESS_GOTOOLCHAIN:-go1.24.4} CGO_ENABLED=0 GOBIN=$BIN go install "${pkgs[@]}" >&2
fi

if [[ $(id -u) -eq 0 ]] && ! id vitess >/dev/null 2>&1; then
  useradd --system --create-home --shell /usr/sbin/nologin vitess
fi
echo "$BIN"
