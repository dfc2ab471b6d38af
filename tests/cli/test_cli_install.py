"""A bare `pip install otel-claude`: options and help work; a command needing an extra says which, in one line.

The extras' libraries are made missing in a real subprocess by a meta-path finder that refuses to import them
(what Python does when they are not installed); nothing else about the process is changed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BARE = """
import importlib.abc, sys
MISSING = {missing!r}

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in MISSING:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
from otel_claude._cli import main
sys.exit(main(sys.argv[1:]))
"""
EXTRAS = ("numpy", "sklearn", "scipy", "zstandard", "matplotlib", "tqdm", "aiohttp", "chdb", "clickhouse_connect")


def bare(*args: str, missing: tuple[str, ...] = EXTRAS) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", BARE.format(missing=set(missing)), *args], env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize(
    ("args", "extra", "libraries"),
    [
        (["tune", "spans.jsonl"], "tuner", "numpy, sklearn"),
        (["sim", "--port", "0"], "sim", "aiohttp"),
        (["workload", "--sim", "--calls", "3"], "sim", "aiohttp"),
        (["demo"], "all", "aiohttp, numpy, sklearn"),
    ],
)
def test_each_command_names_its_extra(args: list[str], extra: str, libraries: str) -> None:
    result = bare(*args)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"otel-claude {args[0]}: needs the '{extra}' extra ({libraries} not installed): "
        f'pip install "otel-claude[{extra}]"'
    ]


def test_options_and_help_need_no_extra() -> None:
    helped = bare("tune", "--help")
    assert helped.returncode == 0 and "--quality-margin" in helped.stdout
    wrong = bare("workload", "--sim", "--stream-share", "7")
    assert wrong.returncode == 2 and "--stream-share: must be in [0, 1]" in wrong.stderr


def test_check_runs_on_a_bare_install(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("schema_version: 1\nversion: v1\nrules: []\n")
    result = bare("check", str(policy))
    assert result.returncode == 0, result.stderr
    assert "valid: policy v1" in result.stdout


def test_a_library_only_some_inputs_need_is_named_with_its_extra(tmp_path: Path) -> None:
    # The tuner's extra is there, ClickHouse's is not: a chdb: input says which extra reads it.
    result = bare("tune", f"chdb:{tmp_path}", "-o", str(tmp_path / "p.yaml"), missing=("chdb", "clickhouse_connect"))
    assert result.returncode in (1, 2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "clickhouse" in lines[0] and "Traceback" not in result.stderr
