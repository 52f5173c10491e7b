#!/usr/bin/env bash
# Installs Debian packages without letting dpkg start their system services (MariaDB,
# InfluxDB, etcd): this project always runs its own private servers on free ports, and a
# system service would only hold port 3306/8086/2379 and memory. Used by the install
# scripts; `sudo` only when not root.
#   scripts/apt-install.sh PACKAGE...
set -euo pipefail
(($#)) || exit 0
sudo=()
if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exiting 101 tells invoke-rc.d "do not start anything".
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod +x "$policy"
  trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
