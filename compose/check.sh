#!/usr/bin/env bash
# Checks compose/ as far as a machine without a Docker engine can:
#   1. `docker compose config --quiet` when the compose plugin is installed (the real
#      parser: interpolation, profiles, depends_on, every key's type);
#   2. always: the YAML parses, every service has an image or a build, every file or
#      folder bind-mounted from this repository exists, the build context and Dockerfile
#      exist, and every service named in depends_on is defined.
# Nothing here starts a container: whether the images run is only known where Docker is.
# Usage: compose/check.sh
set -euo pipefail
cd "$(dirname "$0")"
file=docker-compose.yml
if docker compose version >/dev/null 2>&1; then
  docker compose -f "$file" --profile drive --profile tools config --quiet
  echo "compose/check: docker compose config: ok ($(docker compose version --short 2>/dev/null || echo plugin))"
else
  echo "compose/check: no docker compose plugin here; structural checks only"
fi
python3 - "$file" <<'PY'
import os, sys, yaml
path = sys.argv[1]
doc = yaml.safe_load(open(path))
services = doc.get("services") or {}
problems = []
for name, svc in services.items():
    if "image" not in svc and "build" not in svc:
        problems.append(f"{name}: neither image nor build")
    build = svc.get("build")
    if isinstance(build, dict):
        ctx = build.get("context", ".")
        if not os.path.isdir(ctx):
            problems.append(f"{name}: build context {ctx} missing")
        dockerfile = os.path.join(ctx, build.get("dockerfile", "Dockerfile"))
        if not os.path.isfile(dockerfile):
            problems.append(f"{name}: {dockerfile} missing")
    for vol in svc.get("volumes") or []:
        src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
        if src.startswith((".", "/")) and not os.path.exists(src):
            problems.append(f"{name}: mounts {src}, which does not exist")
    deps = svc.get("depends_on") or []
    for dep in deps if isinstance(deps, list) else deps.keys():
        if dep not in services:
            problems.append(f"{name}: depends on undefined service {dep}")
if problems:
    sys.exit("compose/check: " + "; ".join(problems))
print(f"compose/check: {len(services)} services, mounts, builds and dependencies: ok")
PY
