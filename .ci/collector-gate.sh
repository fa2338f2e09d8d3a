#!/usr/bin/env bash
# Collector gate: what the fleet collector needs beyond the test suite.
# The suite itself (run by .ci/run with LEAF_REQUIRE_BROWSER=1) covers the collector, sync and
# fault tests against throw-away PostgreSQL clusters, printing sent / stored / duplicates / lost
# for every scenario, and the agronomist's page in Debian's chromium. This gate adds
#   - the load benchmark: 50 simulated devices x 1,000 records at once; figures printed and
#      written to var/collector-loadtest.json.
# Run from the repository root as root with CI=true on Debian bookworm (network: PyPI and Debian
# mirrors only). The repo's .venv must exist with the app installed in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-true}" DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
source .ci/lib.sh

section "system packages: postgresql, chromium, chromium-driver, openssl"
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql chromium chromium-driver openssl >/dev/null
ls /usr/lib/postgresql/*/bin/initdb
chromium --version 2>/dev/null
chromedriver --version

section "python packages (the collector extra, and selenium for this gate)"
.venv/bin/pip install -q "psycopg[binary,pool]>=3.2,<4" "waitress>=3.0.2,<4" "selenium>=4.20,<5"
.venv/bin/python -c 'import appliance, psycopg, psycopg_pool, waitress; print("psycopg", psycopg.__version__, "| waitress ok")'

section "load benchmark: 50 devices x 1,000 records, collector + PostgreSQL on loopback"
mkdir -p var
timeout 420 .venv/bin/python -m leaf_collector.loadtest \
    --devices 50 --records 1000 --batch-size 100 --time-limit 300 --out var/collector-loadtest.json

section "done"
