"""The caller's latency with paired evaluation on against off, through the real SDK and the simulator with latency.

    python bench/bench_evaluation.py [--calls 40] [--rounds 3] [--latency-scale 0.1]

The simulator's delays are a deterministic function of the request, so the same case costs the same server time in
both modes: the difference per case is what evaluation adds on the caller's side. Modes alternate round by round
(off, on, off, on...) so drifting machine load hits both. "on" shadows half the calls (share 0.5: far above what a
tuner asks for, to load the background) to Haiku; "sampled" are the calls whose pair was started, whose latency
must not change. The simulator runs in this process, so shadow requests compete with the caller for the GIL and
the 2 cores here: a remote API would not; the figure is an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import anthropic

import otel_claude
from claude_sim import SimServer

SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"
RULE = {"task": "classify", "max_tokens": 2000}


def _policy(evaluate: bool) -> dict[str, Any]:
    rule = {**RULE, **({"evaluate": {"model": HAIKU, "share": 0.5, "budget": 1.0}} if evaluate else {})}
    return {"schema_version": 1, "version": "bench-eval" if evaluate else "bench-plain", "rules": [rule]}


def _args(case: int) -> dict[str, Any]:
    return {"model": SONNET, "max_tokens": 2000, "system": "You label support tickets. " * 40,
            "messages": [{"role": "user", "content": f"ticket {case}: the parcel never came"}],
            "extra_headers": {"x-sim-task": "classify", "x-sim-case": str(case)}}


def _sync_create(client: anthropic.Anthropic, case: int) -> None:
    client.messages.create(**_args(case))


def _sync_stream(client: anthropic.Anthropic, case: int) -> None:
    with client.messages.stream(**_args(case)) as stream:
        stream.get_final_message()


def _time_sync(sim: SimServer, calls: int, call: Callable[[anthropic.Anthropic, int], None]) -> list[float]:
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="sk-bench", max_retries=0, timeout=300)
    seconds = []
    with otel_claude.task("classify"):
        for case in range(calls):
            start = time.perf_counter()
            call(client, case)
            seconds.append(time.perf_counter() - start)
    otel_claude.wait_for_evaluations(timeout=300)
    return seconds


async def _time_async(sim: SimServer, calls: int) -> list[float]:
    client = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="sk-bench", max_retries=0, timeout=300)
    seconds = []
    with otel_claude.task("classify"):
        for case in range(calls):
            start = time.perf_counter()
            await client.messages.create(**_args(case))
            seconds.append(time.perf_counter() - start)
    await otel_claude.wait_for_evaluations_async()
    return seconds


def _run(sim: SimServer, path: str, calls: int, evaluate: bool) -> list[float]:
    otel_claude.instrument(policy=_policy(evaluate), policy_options={"reload_interval": 0}, setup_providers=False)
    try:
        if path == "async create":
            return asyncio.run(_time_async(sim, calls))
        return _time_sync(sim, calls, _sync_create if path == "sync create" else _sync_stream)
    finally:
        otel_claude.uninstrument()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-scale", type=float, default=0.1)
    args = parser.parse_args(argv)
    print(f"caller latency, evaluation on (share 0.5) vs off; {args.calls} calls x {args.rounds} rounds per mode")
    print(f"{'path':14} {'calls':>6} {'off median ms':>14} {'on-off median ms':>17} {'on-off p90 ms':>14} "
          f"{'sampled on/off':>15}")
    with SimServer(scenario="default", seed=7, latency_scale=args.latency_scale) as sim:
        for path in ("sync create", "sync stream", "async create"):
            off: list[list[float]] = []
            on: list[list[float]] = []
            for _ in range(args.rounds):
                off.append(_run(sim, path, args.calls, evaluate=False))
                on.append(_run(sim, path, args.calls, evaluate=True))
            # Per case, the fastest of its rounds: load only ever adds time.
            best_off = [min(r[case] for r in off) for case in range(args.calls)]
            best_on = [min(r[case] for r in on) for case in range(args.calls)]
            # With share 0.5 the counter samples the odd-numbered calls.
            sampled = [case for case in range(args.calls) if case % 2 == 1]
            deltas = [(best_on[c] - best_off[c]) * 1000 for c in sampled]
            ratio = sum(best_on[c] for c in sampled) / sum(best_off[c] for c in sampled)
            print(f"{path:14} {args.calls:>6} {statistics.median(best_off) * 1000:>14.1f} "
                  f"{statistics.median(deltas):>17.2f} {_pct(deltas, 0.9):>14.2f} {ratio:>15.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
