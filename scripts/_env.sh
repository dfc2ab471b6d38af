# Sourced by scripts/test.sh and scripts/demo.sh: a virtual environment per anthropic SDK major, rebuilt only when
# pyproject.toml or the SDK pin changes.
PYTHON="${PYTHON:-python3}"
SDK2="anthropic[bedrock,vertex]>=2,<3"
SDK0="anthropic[bedrock,vertex]==0.125.0"

make_env() {  # make_env DIR SDK_SPEC [quiet]: quiet prints no live status line (two builds share a terminal)
  local dir="$1" sdk="$2" quiet="${3:-}" stamp log pid status
  stamp="$(sha1sum pyproject.toml | cut -c1-12)-$sdk"
  if [ ! -f "$dir/.stamp" ] || [ "$(cat "$dir/.stamp")" != "$stamp" ]; then
    log="$dir.install.log"
    echo "setting up $dir ($sdk and the project's dependencies; a few minutes the first time, log: $log)"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    # pip's output goes to a log shown only on failure: it is long and its index warnings are noise here. On a
    # terminal, one line redrawn in place shows what pip is doing.
    "$dir/bin/pip" install --disable-pip-version-check -e ".[dev]" "$sdk" >"$log" 2>&1 &
    pid=$!
    if [ -z "$quiet" ] && [ -t 1 ]; then
      while kill -0 "$pid" 2>/dev/null; do
        status="$(grep -E '^ *(Collecting|Downloading|Processing|Obtaining|Preparing|Building|Installing)' "$log" 2>/dev/null | tail -n 1 \
          | sed "s/^ *//" | cut -c1-70)"
        printf '\r  %3d packages  %-70s' "$(grep -c '^Collecting\|^Processing' "$log" 2>/dev/null || true)" \
          "$status"
        sleep 1
      done
      printf '\r%100s\r' ''
    fi
    if ! wait "$pid"; then
      tail -n 40 "$log"
      return 1
    fi
    echo "$stamp" > "$dir/.stamp"
    echo "$dir ready"
  fi
}
