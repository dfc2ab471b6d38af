"""Every benchmark script runs to its summary at a toy size.

The benchmarks are run by hand, far apart, so nothing else notices when a change to the code they drive breaks
them (a renamed function once left `bench_ratelimit.py --overhead-only` failing at import for days). These runs
check only that each script gets through its whole path and prints its summary; the numbers at these sizes mean
nothing, and a script that reports a missed target exits 1, which is allowed here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_HANG_GUARD_S = 900  # never reached by a working script; only stops a hung one from holding the suite

# (script, arguments with {tmp} for a scratch directory and {root} for this checkout, what its summary prints,
# whether exit 1 for a missed target is expected at this size)
CASES = [
    ("bench_ab.py", ["--baseline", "{root}", "--rounds", "2", "--calls", "3"], r"this tree - baseline: best [+-]"),
    ("bench_instrument.py", ["--rounds", "1", "--calls", "3", "--streams", "1"], r"policy step alone .*: [\d.]+ us"),
    ("bench_ratelimit.py", ["--overhead-only", "--overhead-calls", "5"],
     r"admission \+ release, response headers synced: [\d.]+ us"),
    ("bench_simulator.py", ["--seconds", "0.5"], r"simulator via the anthropic SDK: +\d+ req/s"),
    ("bench_tune.py", ["--spans", "2000", "--file", "{tmp}/spans.json"], r"ratio tune / bare parse: [\d.]+x"),
    ("soak.py", ["--calls", "300", "--sample-every", "100", "--warmup", "100"], r"RSS after warm-up .* MB"),
    ("bench_exporter_down.py", ["--calls", "5", "--rounds", "1"], r"export requests received: healthy \d+"),
    ("bench_false_moves.py", ["--seeds", "2", "--rounds", "2", "--calls", "200"],
     r"routed within 3 rounds: \d+%"),
    ("bench_evaluation.py", ["--calls", "2", "--rounds", "1"], r"async create +[\d.]+"),
    ("bench_clickhouse.py", ["--spans", "3000", "--dir", "{tmp}/ch"], r"policy \S+: \d+ rules"),
    ("bench_conversation.py", ["--calls", "60"], r"tuned / cheapest .*: [\d.]+"),
    ("bench_decisions.py", ["--scenario", "default", "--calls", "150", "150", "--validate", "150",
                            "--oracle-calls", "150", "--samples", "50", "--workdir", "{tmp}/decisions"],
     r"share of the achievable saving: [\d.]+%"),
]


@pytest.mark.parametrize(("script", "args", "summary"), CASES, ids=[case[0] for case in CASES])
def test_bench_script_runs_to_its_summary(script: str, args: list[str], summary: str, tmp_path: Path) -> None:
    if script == "bench_clickhouse.py":
        pytest.importorskip("chdb", reason="bench_clickhouse.py needs the clickhouse extra")
    argv = [a.format(tmp=tmp_path, root=ROOT) for a in args]
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=_HANG_GUARD_S)
    tail = (done.stdout[-3000:] + "\n" + done.stderr[-3000:]).strip()
    assert done.returncode in (0, 1), f"{script} exited {done.returncode}:\n{tail}"
    assert "Traceback" not in done.stderr, f"{script} raised:\n{tail}"
    assert re.search(summary, done.stdout), f"{script} printed no summary matching {summary!r}:\n{tail}"
