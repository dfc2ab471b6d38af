"""Progress bars: tqdm's self-updating bar with rate and ETA when stderr is a terminal, nothing when it is not.

`otel-claude workload` runs in a real subprocess whose stderr is a pseudo-terminal (what a user's shell gives it)
or a pipe (what CI and log collectors give it).
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tqdm")
pytest.importorskip("aiohttp")

REPO = Path(__file__).resolve().parents[2]
WORKLOAD = [sys.executable, "-m", "otel_claude._cli", "workload", "--sim", "--calls", "40", "--workers", "2",
            "--latency-scale", "0"]


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**clean, "PYTHONPATH": str(REPO), "COLUMNS": "120"}


def run_with_terminal_stderr(args: list[str]) -> tuple[int, str]:
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=terminal)
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's other end closed: the process is done writing
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = process.wait(timeout=300)
    finally:
        os.close(controller)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_workload_shows_a_self_updating_bar_on_a_terminal() -> None:
    code, err = run_with_terminal_stderr(WORKLOAD)
    assert code == 0, err
    # Redrawn in place (carriage returns), ending at 40/40 with elapsed<remaining, a rate and the error count.
    assert err.count("\r") >= 2
    assert re.search(r"workload: 100%\|[^|]*\| 40/40 \[[\d:]+<[\d:]+, +[\d.]+(call/s|s/call), errors=0\]", err), err


def test_no_bar_when_stderr_is_not_a_terminal() -> None:
    result = subprocess.run(WORKLOAD, env=env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "%|" not in result.stderr
    assert "calls" in result.stdout  # the summary still prints
