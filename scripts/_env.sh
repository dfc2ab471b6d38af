# Sourced by scripts/test.sh and scripts/demo.sh: a virtual environment per anthropic SDK major, rebuilt only when
# pyproject.toml or the SDK pin changes.
PYTHON="${PYTHON:-python3}"
SDK2="anthropic[bedrock,vertex]>=2,<3"
SDK0="anthropic[bedrock,vertex]==0.125.0"

make_env() {  # make_env DIR SDK_SPEC
  local dir="$1" sdk="$2" stamp
  stamp="$(sha1sum pyproject.toml | cut -c1-12)-$sdk"
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
