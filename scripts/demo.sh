#!/usr/bin/env bash
# The closed loop on the built-in simulator, set-up included (no API key needed). Arguments go to `otel-claude demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh
make_env .venv-sdk2 "$SDK2"
exec .venv-sdk2/bin/otel-claude demo "$@"
