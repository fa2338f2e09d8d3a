#!/usr/bin/env bash
# Collector gate: what the fleet collector needs beyond the test suite.
# The suite itself (run by .ci/run with LEAF_REQUIRE_BROWSER=1) covers the collector, sync and
# fault tests against throw-away PostgreSQL clusters, printing sent / stored / duplicates / lost
# for every scenario, the agronomist's page in Debian's chromium, and a real nginx in front. This
# gate adds the load benchmark (issue 11: slow and hostile clients), figures printed and written
# to var/collector-loadtest*.json:
#   - 500 slow connections (a header line every 3 s, never finishing, reopened when cut) held on
#     the public port, nginx with the shipped config in front, while 50 simulated devices sync
#     1,000 records each: every record stored once, batch p95 within 5 s, /healthz always answered;
#   - the same against the bare collector (waitress alone), the fallback shape.
# Run from the repository root as root with CI=true on Debian bookworm (network: PyPI and Debian
# mirrors only). The repo's .venv must exist with the app installed in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-true}" DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
source .ci/lib.sh

section "system packages: postgresql, chromium, chromium-driver, openssl, nginx"
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql chromium chromium-driver openssl nginx >/dev/null
ls /usr/lib/postgresql/*/bin/initdb
chromium --version 2>/dev/null
chromedriver --version
nginx -v
nginx -V 2>&1 | grep -q -- --with-http_auth_request_module || fail "this nginx lacks the auth_request module"
# 500 slow sockets, 50 devices and nginx's two ends of each: more than the usual 1,024 descriptors
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "open files limit: $(ulimit -n)"

section "python packages (the collector extra, and selenium for this gate)"
.venv/bin/pip install -q "psycopg[binary,pool]>=3.2,<4" "waitress>=3.0.2,<4" "selenium>=4.20,<5"
.venv/bin/python -c 'import appliance, psycopg, psycopg_pool, waitress; print("psycopg", psycopg.__version__, "| waitress ok")'

section "load benchmark: 500 slow connections held while 50 devices x 1,000 records sync through nginx"
mkdir -p var
timeout 420 .venv/bin/python -m leaf_collector.loadtest --through-nginx --slow-connections 500 --slow-interval 3 --slow-warmup 8 \
    --devices 50 --records 1000 --batch-size 100 --time-limit 300 --max-batch-p95-ms 5000 \
    --out var/collector-loadtest.json

section "load benchmark: the same against the bare collector (waitress alone)"
timeout 420 .venv/bin/python -m leaf_collector.loadtest --slow-connections 500 --slow-interval 3 --slow-warmup 8 \
    --devices 50 --records 1000 --batch-size 100 --time-limit 300 --max-batch-p95-ms 5000 \
    --out var/collector-loadtest-bare.json

section "done"
