#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run lint, types and tests.
# Usage: scripts/test.sh [pytest arguments...]  (e.g. -n 0 to run on one process)
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: a real MQTT broker, a real InfluxDB-compatible server, a headless browser,
# and systemd-analyze for the unit file check.
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if ((${#need[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing system packages: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,dev]' -r docs/requirements.txt

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The manual: the generated reference pages are current, and the site builds without a warning
# (broken links between pages included). Not -q: mkdocs would drop the warnings --strict counts.
.venv/bin/python -m givtcp_async.docgen docs --check
site_dir="$(mktemp -d)"
trap 'rm -rf "$site_dir"' EXIT
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict -d "$site_dir"
# Two workers, an idle one taking tests queued for the other: most tests wait on sockets and
# subprocesses, and the two longest (the soak, schemathesis) then run side by side.
.venv/bin/pytest -n 2 --dist worksteal "$@"
