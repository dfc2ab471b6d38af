"""Ingest and tune N spans (default 1,000,000) from OTLP JSON lines; compare with a bare json.loads pass.

    python bench/bench_tune.py [--spans 1000000] [--file /tmp/otel-claude-bench.json]

Both measurements run in child processes of this script, one after the other, on the same file: wall time
(interpreter start and imports included for both), spans/s and peak RSS of each (from wait4). Target: the whole
tune within 4x of the bare parse, under 2 GB peak memory. The span file is generated once by the instrumentor's
own exporter encoding (tuner.synthetic) and reused when it already holds N spans.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuner import synthetic as syn  # noqa: E402

# The SDK's BatchSpanProcessor exports at most 512 spans per request: one line per request.
BATCH = 512
TASKS = [("classify", 3000, 80), ("summarize", 9000, 400), ("extract", 6000, 250), ("chat", 1500, 600)]
MODELS = ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6"]

BASELINE = """
import json, sys, time
start = time.perf_counter()
count = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                count += len(ss["spans"])
print(count, time.perf_counter() - start)
"""


def _spans(total: int, seed: int = 0) -> Iterator[syn.Span]:
    rng = random.Random(seed)
    t = 1_763_900_000_000_000_000
    made = 0
    number = 0
    while made < total:
        number += 1
        t += int(rng.expovariate(1 / 0.5) * 1e9)
        task, prefix_tokens, mean_out = TASKS[number % len(TASKS)]
        model = MODELS[0] if rng.random() < 0.7 else rng.choice(MODELS[1:])
        rid = f"msg_{number:012x}"
        yield syn.call(
            start_ns=t,
            model=model,
            task=task,
            input_tokens=prefix_tokens + rng.randint(100, 4000),
            output_tokens=int(rng.expovariate(1 / mean_out)) + 1,
            max_tokens=2048,
            response_id=rid,
            prefix=f"{task}-{rng.randint(0, 3)}",
            prefix_tokens=prefix_tokens,
            ttft=rng.uniform(0.2, 2.0),
        )
        made += 1
        if made < total and rng.random() < 0.25:
            yield syn.feedback(start_ns=t + 1000, response_id=rid, score=float(rng.random() < 0.9))
            made += 1


def _ensure_file(path: Path, spans: int) -> None:
    stamp = path.with_suffix(".count")
    if path.exists() and stamp.exists() and stamp.read_text() == str(spans):
        return
    start = time.perf_counter()
    syn.write_otlp(path, _spans(spans), batch=BATCH)
    stamp.write_text(str(spans))
    print(
        f"generated {spans} spans in {time.perf_counter() - start:.1f}s -> {path} ({path.stat().st_size / 1e6:.0f} MB)"
    )


def _run_measured(args: list[str]) -> tuple[float, float, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    # wait4 gives this child's own peak RSS; communicate() would reap it first and lose the rusage.
    out = child.stdout.read() if child.stdout else b""  # type: ignore[union-attr]
    err = child.stderr.read() if child.stderr else b""  # type: ignore[union-attr]
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"child failed ({child.returncode}): {' '.join(args)}\n{err.decode()}")
    return wall, usage.ru_maxrss / 1024, out.decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--file", type=Path, default=Path("/tmp/otel-claude-bench-spans.json"))
    args = parser.parse_args()
    _ensure_file(args.file, args.spans)
    size_mb = args.file.stat().st_size / 1e6

    base_wall, base_rss, base_out = _run_measured([sys.executable, "-c", BASELINE, str(args.file)])
    counted, parse_seconds = base_out.split()
    policy = args.file.with_suffix(".policy.yaml")
    cli = [sys.executable, "-m", "otel_claude._cli", "tune", str(args.file), "-o", str(policy), "--no-progress"]
    tune_wall, tune_rss, tune_out = _run_measured(cli)

    spans = int(counted)
    print(f"file: {size_mb:.0f} MB, {spans} spans in {spans // BATCH + 1} lines")
    print(
        f"bare json.loads pass : {base_wall:7.2f} s wall ({float(parse_seconds):.2f} s parsing), "
        f"{spans / base_wall:10.0f} spans/s, peak {base_rss:6.0f} MB"
    )
    print(f"otel-claude tune     : {tune_wall:7.2f} s wall, {spans / tune_wall:10.0f} spans/s, peak {tune_rss:6.0f} MB")
    ratio = tune_wall / base_wall
    print(f"ratio tune / bare parse: {ratio:.2f}x (target <= 4x); peak memory {tune_rss:.0f} MB (target < 2048 MB)")
    print("tune summary:\n" + tune_out)
    return 0 if ratio <= 4 and tune_rss < 2048 else 1


if __name__ == "__main__":
    sys.exit(main())
