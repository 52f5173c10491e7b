#!/usr/bin/env bash
# The main job. Today only the capture format and the test harness exist, so this runs
# those and says so; it grows into record → replay → compare as those parts land.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "sqlreplay demo: recorder, replayer, shop and Vitess are not built yet."
echo "Running what exists: the capture format benchmark and a private MariaDB round trip."
echo
bench/captures.sh 500000
echo
cargo test -q -p testkit --test mariadb -- a_private_server_answers_over_tcp_and_vanishes_on_drop
