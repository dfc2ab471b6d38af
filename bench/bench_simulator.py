"""How fast the simulator serves, so it never limits a benchmark of the instrumentor.

Each server runs in its own process (no GIL sharing with the load generator); the load generator is a plain
aiohttp client with C concurrent requests for D seconds. The baseline, measured in the same run, is a trivial
aiohttp server that returns a fixed Message JSON: the ceiling for any aiohttp server on this machine.
Also reported: the unmodified SDK (sync client, threads) against the simulator, the rate a benchmark would see.

    python bench/bench_simulator.py [--seconds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import anthropic

ROOT = Path(__file__).resolve().parents[1]
TARGET_RPS = 300
REQUEST = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello there"}]}
HEADERS = {"x-api-key": "bench", "anthropic-version": "2023-06-01", "content-type": "application/json"}

TRIVIAL_SERVER = """
import json, sys
from aiohttp import web
body = json.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "hi " * 40}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 7, "output_tokens": 40}}).encode()
async def handle(request):
    await request.read()
    return web.Response(body=body, content_type="application/json")
async def main():
    app = web.Application(); app.router.add_post("/v1/messages", handle)
    runner = web.AppRunner(app, access_log=None); await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0); await site.start()
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    import asyncio; await asyncio.Event().wait()
import asyncio; asyncio.run(main())
"""

SIM_SERVER = "from claude_sim.cli import main; main(['--port', '0', '--latency-scale', '0'])"


def start(code: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    url = line.split("listening on ", 1)[1].split()[0]
    return process, url


async def load(url: str, seconds: float, concurrency: int, stream: bool) -> tuple[int, int]:
    body = json.dumps({**REQUEST, "stream": stream}).encode()
    done = errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                async with session.post(url + "/v1/messages", data=body, headers=HEADERS) as response:
                    await response.read()
                    done += response.status == 200
                    errors += response.status != 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, errors


def sdk_rate(url: str, seconds: float, threads: int) -> float:
    client = anthropic.Anthropic(base_url=url, api_key="bench", max_retries=0)
    count = 0
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            client.messages.create(**REQUEST)
            with lock:
                count += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    return count / (time.perf_counter() - started)


def measure(url: str, seconds: float, concurrency: int, stream: bool) -> float:
    asyncio.run(load(url, 0.5, concurrency, stream))  # warm-up: connections, caches
    started = time.perf_counter()
    done, errors = asyncio.run(load(url, seconds, concurrency, stream))
    if errors:
        raise SystemExit(f"{errors} errors against {url}")
    return done / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    trivial, trivial_url = start(TRIVIAL_SERVER)
    sim, sim_url = start(SIM_SERVER)
    try:
        baseline = measure(trivial_url, args.seconds, args.concurrency, stream=False)
        plain = measure(sim_url, args.seconds, args.concurrency, stream=False)
        streamed = measure(sim_url, args.seconds, args.concurrency, stream=True)
        via_sdk = sdk_rate(sim_url, args.seconds, threads=8)
    finally:
        for process in (trivial, sim):
            process.terminate()
            process.wait(timeout=10)
    print(f"trivial aiohttp server (baseline): {baseline:8.0f} req/s")
    print(f"simulator, non-streaming:          {plain:8.0f} req/s  ({plain / baseline:.2f}x baseline)")
    print(f"simulator, streaming (SSE):        {streamed:8.0f} req/s  ({streamed / baseline:.2f}x baseline)")
    print(f"simulator via the anthropic SDK:   {via_sdk:8.0f} req/s  (sync client, 8 threads)")
    verdict = "OK" if plain >= TARGET_RPS else "BELOW TARGET"
    print(f"target >= {TARGET_RPS} non-streaming req/s with latency off: {verdict}")
    return 0 if plain >= TARGET_RPS else 1


if __name__ == "__main__":
    sys.exit(main())
