#!/usr/bin/env bash
# Prometheus for the dashboard test (tests/deploy/test_dashboard_live.py).
#   prometheus.sh install                       install Debian's prometheus package unless a binary is on PATH
#   prometheus.sh run CONFIG LISTEN DATA_DIR    run Prometheus in the foreground on LISTEN (e.g. 127.0.0.1:9391)
# `run` execs, so the caller's process id is Prometheus's own and it can stop it directly.
set -euo pipefail

cmd="${1:-}"
case "$cmd" in
  install)
    if command -v prometheus >/dev/null 2>&1; then
      echo "prometheus already installed: $(command -v prometheus)"
      exit 0
    fi
    # Debian's package pulls a systemd unit too; with no init system running it is simply never started.
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends prometheus
    prometheus --version | head -n 1
    ;;
  run)
    if [ "$#" -ne 4 ]; then
      echo "usage: $0 run CONFIG LISTEN DATA_DIR" >&2
      exit 2
    fi
    config="$2" listen="$3" data="$4"
    # Console templates are Debian paths; the API and UI need none of them.
    exec prometheus \
      --config.file="$config" \
      --web.listen-address="$listen" \
      --storage.tsdb.path="$data" \
      --storage.tsdb.retention.time=1h \
      --log.level=warn
    ;;
  *)
    echo "usage: $0 install | run CONFIG LISTEN DATA_DIR" >&2
    exit 2
    ;;
esac
