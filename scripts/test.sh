#!/usr/bin/env bash
# The whole test suite, set-up included: lint, then pytest against the newest anthropic 2.x and a late 0.x.
# Safe to rerun: virtual environments are reused when their inputs did not change.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
SDK2="anthropic[bedrock,vertex]>=2,<3"
SDK0="anthropic[bedrock,vertex]==0.125.0"

make_env() {  # make_env DIR SDK_SPEC
  local dir="$1" sdk="$2" stamp
  stamp="$(cat pyproject.toml | sha1sum | cut -c1-12)-$sdk"
  if [ ! -f "$dir/.stamp" ] || [ "$(cat "$dir/.stamp")" != "$stamp" ]; then
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    # pip's output goes to a log shown only on failure: it is long and its index warnings are noise here.
    if ! "$dir/bin/pip" install --disable-pip-version-check -e ".[dev]" "$sdk" >"$dir.install.log" 2>&1; then
      tail -n 40 "$dir.install.log"
      return 1
    fi
    echo "$stamp" > "$dir/.stamp"
  fi
}

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
echo "=== anthropic $(.venv-sdk2/bin/python -c 'import anthropic; print(anthropic.__version__)') ==="
.venv-sdk2/bin/python -m pytest -q -p no:cacheprovider "$@" || status=1
echo "=== anthropic $(.venv-sdk0/bin/python -c 'import anthropic; print(anthropic.__version__)') ==="
.venv-sdk0/bin/python -m pytest -q -p no:cacheprovider "$@" || status=1
exit "$status"
