#!/usr/bin/env bash
# The whole test suite, set-up included: lint, then pytest against the newest anthropic 2.x and a late 0.x.
# Safe to rerun: virtual environments are reused when their inputs did not change. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh

# Prometheus (Debian package) backs the live dashboard test; without it that test skips with its reason.
# Run as root, this installs a SYSTEM package with apt-get; OTEL_CLAUDE_NO_SYSTEM_PACKAGES=1 opts out.
if ! command -v prometheus >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  if [ "${OTEL_CLAUDE_NO_SYSTEM_PACKAGES:-}" = "1" ]; then
    echo "note: OTEL_CLAUDE_NO_SYSTEM_PACKAGES=1: not installing prometheus; the live dashboard test will skip"
  else
    echo "installing the Debian package prometheus with apt-get (system-wide, for the live dashboard test;" \
         "OTEL_CLAUDE_NO_SYSTEM_PACKAGES=1 skips this)"
    bash deploy/ci/prometheus.sh install >/tmp/otel-claude-prometheus-install.log 2>&1 \
      || echo "note: prometheus could not be installed (see /tmp/otel-claude-prometheus-install.log)"
  fi
fi

# The two environments install in parallel: on two cores that halves the set-up time.
make_env .venv-sdk2 "$SDK2" quiet & pid2=$!
make_env .venv-sdk0 "$SDK0" quiet & pid0=$!
wait "$pid2"
wait "$pid0"

.venv-sdk2/bin/ruff check .
status=0
for env in .venv-sdk2 .venv-sdk0; do
  echo "=== anthropic $("$env/bin/python" -c 'import anthropic; print(anthropic.__version__)') ==="
  "$env/bin/python" -m pytest -q -p no:cacheprovider "$@" || status=1
done
exit "$status"
