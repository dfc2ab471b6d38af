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

# SYSTEM PACKAGE: Debian's Chromium (apt-get install chromium) backs the report's browser test, installed here only
# when running as root with apt, alongside the environments; OTEL_CLAUDE_NO_SYSTEM_PACKAGES=1 skips it. Without it
# that test skips with its reason.
install_chromium() {
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
    >/tmp/otel-claude-chromium-install.log 2>&1 \
    || echo "note: chromium could not be installed (see /tmp/otel-claude-chromium-install.log)"
}
pidc=""
if [ "${OTEL_CLAUDE_NO_SYSTEM_PACKAGES:-0}" != "1" ] && ! command -v chromium >/dev/null 2>&1 \
    && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing the system package chromium for the report's browser test (OTEL_CLAUDE_NO_SYSTEM_PACKAGES=1 skips)"
  install_chromium & pidc=$!
fi

# The two environments install in parallel: on two cores that halves the set-up time.
make_env .venv-sdk2 "$SDK2" quiet & pid2=$!
make_env .venv-sdk0 "$SDK0" quiet & pid0=$!
wait "$pid2"
wait "$pid0"
[ -z "$pidc" ] || wait "$pidc"

.venv-sdk2/bin/ruff check .
status=0
for env in .venv-sdk2 .venv-sdk0; do
  echo "=== anthropic $("$env/bin/python" -c 'import anthropic; print(anthropic.__version__)') ==="
  "$env/bin/python" -m pytest -q -p no:cacheprovider "$@" || status=1
done
exit "$status"
