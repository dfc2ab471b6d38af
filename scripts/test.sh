#!/usr/bin/env bash
# The whole test suite, set-up included: lint, then pytest against the newest anthropic 2.x and a late 0.x.
# Safe to rerun: virtual environments are reused when their inputs did not change. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh

# Prometheus (Debian package) backs the live dashboard test; without root or apt that test skips with its reason.
if ! command -v prometheus >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  bash deploy/ci/prometheus.sh install >/tmp/otel-claude-prometheus-install.log 2>&1 \
    || echo "note: prometheus could not be installed (see /tmp/otel-claude-prometheus-install.log)"
fi

# The two environments install in parallel: on two cores that halves the set-up time.
make_env .venv-sdk2 "$SDK2" & pid2=$!
make_env .venv-sdk0 "$SDK0" & pid0=$!
wait "$pid2"
wait "$pid0"

.venv-sdk2/bin/ruff check .
status=0
for env in .venv-sdk2 .venv-sdk0; do
  echo "=== anthropic $("$env/bin/python" -c 'import anthropic; print(anthropic.__version__)') ==="
  "$env/bin/python" -m pytest -q -p no:cacheprovider "$@" || status=1
done
exit "$status"
