"""Policy limits end to end: the real SDK over HTTP to the simulator, a real OpenTelemetry SDK, policy files on
disk. Threads, asyncio tasks, several event loops, cancellation, fork, reload while calls wait, failing fast and
proceeding at the bound; spans and metrics.

A call holds its admission until it ends, so an open stream holds a slot for as long as a test needs it; waiting is
observed through the limiter's own metrics. Assertions are about order and counts, never elapsed time.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
import yaml

import otel_claude
from claude_sim import Fault, SimServer

SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"
GUARD_S = 60.0  # a deadlock guard only
_base = importlib.import_module("anthropic._base_client")
httpx = getattr(_base, "httpx2", None) or _base.httpx


def limits_policy(*limits: dict[str, Any], version: str = "l1", **top: Any) -> dict[str, Any]:
    return {"schema_version": 1, "version": version, "rules": [], "limits": list(limits), **top}


def one(**limit: Any) -> dict[str, Any]:
    return limits_policy({"models": [SONNET], **limit})


def ask(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": SONNET, "max_tokens": 50, "messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(seed=3) as server:
        yield server


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[SimServer]:
    """Calls take tens of milliseconds, so unlimited ones overlap."""
    with SimServer(seed=3, latency_scale=0.02) as server:
        yield server


@pytest.fixture
def limited(telemetry: Any) -> Iterator[Callable[..., None]]:
    started: list[bool] = []

    def start(policy: Any, **options: Any) -> None:
        otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                               policy=policy, policy_options=options)
        started.append(True)

    yield start
    if started:
        otel_claude.uninstrument()


def metric(telemetry: Any, name: str, **labels: str) -> float:
    total = 0.0
    for point in telemetry.metric_points(name):
        if all(point.attributes.get(k) == v for k, v in labels.items()):
            total += point.value
    return total


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD_S
    while not condition():
        assert time.monotonic() < deadline, f"never reached: {what}"
        time.sleep(0.002)


async def await_until(condition: Callable[[], bool], what: str) -> int:
    """Spin the loop until `condition`; returns how many times the loop ran meanwhile."""
    deadline = time.monotonic() + GUARD_S
    spins = 0
    while not condition():
        assert time.monotonic() < deadline, f"never reached: {what}"
        spins += 1
        await asyncio.sleep(0)
    return spins


def queued(telemetry: Any) -> float:
    return metric(telemetry, "otel_claude.limiter.queued")


class Counting:
    """Requests in flight at the HTTP layer, as the SDK's own transport sends them."""

    def __init__(self) -> None:
        self.now = self.most = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1

    def sync_client(self, sim: SimServer) -> anthropic.Anthropic:
        counter = self

        class Transport(httpx.HTTPTransport):  # type: ignore[misc, name-defined]
            def handle_request(self, request: Any) -> Any:
                counter.enter()
                try:
                    response = super().handle_request(request)
                    response.read()
                    return response
                finally:
                    counter.leave()

        return anthropic.Anthropic(base_url=sim.base_url, api_key="k", max_retries=0,
                                   http_client=httpx.Client(transport=Transport()))

    def async_client(self, sim: SimServer) -> anthropic.AsyncAnthropic:
        counter = self

        class Transport(httpx.AsyncHTTPTransport):  # type: ignore[misc, name-defined]
            async def handle_async_request(self, request: Any) -> Any:
                counter.enter()
                try:
                    response = await super().handle_async_request(request)
                    await response.aread()
                    return response
                finally:
                    counter.leave()

        return anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="k", max_retries=0,
                                        http_client=httpx.AsyncClient(transport=Transport()))


def client_for(sim: SimServer, max_retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.base_url, api_key="k", max_retries=max_retries, timeout=GUARD_S)


def async_client_for(sim: SimServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="k", max_retries=0, timeout=GUARD_S)


def contents(sim: SimServer) -> list[str]:
    return [r["json"]["messages"][0]["content"] for r in sim.received if r["path"] == "/v1/messages"]


# --------------------------------------------------------------------------------------------------- threads


def test_threads_stay_within_the_concurrency_limit(slow_sim: SimServer, telemetry: Any, limited: Any) -> None:
    def run(policy: Any) -> int:
        counting = Counting()
        client = counting.sync_client(slow_sim)
        if policy is not None:
            limited(policy)
        threads = [threading.Thread(target=client.messages.create, kwargs=ask()) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(GUARD_S)
        if policy is not None:
            otel_claude.uninstrument()
        return counting.most

    assert run(None) > 3  # the calls do overlap when nothing limits them
    assert run(one(concurrency=3, adaptive=False)) <= 3


def test_waiting_threads_go_in_arrival_order(sim: SimServer, telemetry: Any, limited: Any) -> None:
    limited(one(concurrency=1, adaptive=False))
    client = client_for(sim)
    held = client.messages.create(**ask("held"), stream=True)  # holds the only slot until closed
    sim.clear_received()
    threads = []
    for index in range(5):
        thread = threading.Thread(target=client.messages.create, kwargs=ask(f"job {index}"))
        thread.start()
        wait_until(lambda i=index: queued(telemetry) == i + 1, f"job {index} waiting")
        threads.append(thread)
    assert contents(sim) == []  # nothing was sent while the slot was held
    held.close()
    for thread in threads:
        thread.join(GUARD_S)
    assert contents(sim) == [f"job {i}" for i in range(5)]
    spans = [s for s in telemetry.call_spans() if s.attributes.get("otel_claude.admission.limit")]
    assert len(spans) == 5  # the waiting ones; the held call went at once and records nothing
    assert {s.attributes["otel_claude.admission.limit"] for s in spans} == {f"*/{SONNET}"}
    assert all(s.attributes["otel_claude.admission.wait"] > 0 for s in spans)
    assert metric(telemetry, "otel_claude.limiter.admissions", **{"otel_claude.admission.outcome": "waited"}) == 5
    assert metric(telemetry, "otel_claude.limiter.in_flight") == 0 and queued(telemetry) == 0


def test_fail_fast_raises_a_rate_limit_error_and_sends_nothing(sim: SimServer, telemetry: Any, limited: Any) -> None:
    limited(one(concurrency=1, adaptive=False, max_wait=0, on_timeout="fail"))
    client = client_for(sim)
    held = client.messages.create(**ask("held"), stream=True)
    sim.clear_received()
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(**ask("refused"))
    assert isinstance(caught.value, otel_claude.AdmissionTimeoutError)
    assert caught.value.status_code == 429 and "not sent" in str(caught.value)
    assert contents(sim) == []
    held.close()
    client.messages.create(**ask("after"))  # the slot is free again
    assert contents(sim) == ["after"]
    refused = next(s for s in telemetry.call_spans() if s.attributes.get("error.type"))
    assert refused.attributes["error.type"] == "admission_timeout"
    assert refused.attributes["otel_claude.admission.timed_out"] is True
    assert metric(telemetry, "otel_claude.limiter.admissions",
                  **{"otel_claude.admission.outcome": "timeout_failed"}) == 1


def test_proceed_sends_the_call_once_the_wait_reaches_its_bound(sim: SimServer, telemetry: Any,
                                                                limited: Any) -> None:
    limited(one(concurrency=1, adaptive=False, max_wait=0.05, on_timeout="proceed"))
    client = client_for(sim)
    held = client.messages.create(**ask("held"), stream=True)
    sim.clear_received()
    client.messages.create(**ask("went anyway"))  # returns while the slot is still held
    assert contents(sim) == ["went anyway"]
    span = next(s for s in telemetry.call_spans() if s.attributes.get("otel_claude.admission.timed_out"))
    assert span.attributes["otel_claude.admission.wait"] >= 0.05 and "error.type" not in span.attributes
    assert metric(telemetry, "otel_claude.limiter.admissions",
                  **{"otel_claude.admission.outcome": "timeout_proceeded"}) == 1
    held.close()


@pytest.mark.parametrize("change", ["raise the limit", "drop the limit"])
def test_a_reload_changes_the_limit_while_calls_wait(sim: SimServer, telemetry: Any, limited: Any, tmp_path: Path,
                                                     change: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(one(concurrency=1)))  # adaptive, the default
    limited(str(path), reload_interval=0.05)
    client = client_for(sim)
    held = client.messages.create(**ask("held"), stream=True)
    waiting = threading.Thread(target=client.messages.create, kwargs=ask("waiting"))
    waiting.start()
    wait_until(lambda: queued(telemetry) == 1, "a call waiting")
    new = one(concurrency=2) if change == "raise the limit" else limits_policy()
    new["version"] = "l2"
    path.write_text(yaml.safe_dump(new))
    waiting.join(GUARD_S)
    assert not waiting.is_alive()  # admitted by the reload: the held stream is still open
    held.close()


def test_uninstrument_lets_waiting_calls_go(sim: SimServer, telemetry: Any, limited: Any) -> None:
    limited(one(concurrency=1, adaptive=False))
    client = client_for(sim)
    held = client.messages.create(**ask("held"), stream=True)
    waiting = threading.Thread(target=client.messages.create, kwargs=ask("waiting"))
    waiting.start()
    wait_until(lambda: queued(telemetry) == 1, "a call waiting")
    otel_claude.uninstrument()
    waiting.join(GUARD_S)
    assert not waiting.is_alive()
    held.close()
    otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)


def test_limits_select_by_model_and_task_and_only_in_enforce_mode(sim: SimServer, telemetry: Any,
                                                                  limited: Any) -> None:
    policy = limits_policy({"models": [HAIKU], "concurrency": 1}, {"task": "batch", "concurrency": 1})
    limited(policy)
    client = client_for(sim)
    client.messages.create(**ask())  # sonnet, no task: no limit applies
    with otel_claude.task("batch"):
        client.messages.create(**ask())
    client.messages.create(**{**ask(), "model": "claude-haiku-4-5-20251001"})  # the snapshot shares the alias' limit
    admitted = {p.attributes["otel_claude.limit"]: p.value
                for p in telemetry.metric_points("otel_claude.limiter.admissions") if p.value}
    assert admitted == {"batch/*": 1, f"*/{HAIKU}": 1}
    otel_claude.uninstrument()
    telemetry.exporter.clear()
    limited({**one(concurrency=1), "mode": "shadow"})
    held = client.messages.create(**ask("held"), stream=True)
    client.messages.create(**ask())  # not held up: shadow mode does not limit
    held.close()
    assert not telemetry.metric_points("otel_claude.limiter.admissions")


def test_429_attempts_reach_the_limiter_before_the_sdk_retries(sim: SimServer, telemetry: Any,
                                                               limited: Any) -> None:
    limited(one(concurrency=8, adaptive=True))
    sim.set_faults([Fault("rate_limit", count=3, retry_after=0.01)])
    try:
        client = client_for(sim, max_retries=3)
        client.messages.create(**ask())
    finally:
        sim.set_faults([])
    span = telemetry.call_spans()[-1]
    assert span.attributes["otel_claude.retries"] == 3
    assert metric(telemetry, "otel_claude.limiter.congestion", **{"error.type": "rate_limit_error"}) == 3
    assert metric(telemetry, "otel_claude.limiter.concurrency") < 8  # backed off


def test_an_adaptive_limit_learns_the_account_limits_from_headers(sim: SimServer, telemetry: Any,
                                                                   limited: Any) -> None:
    limited(one(adaptive=True))
    client_for(sim).messages.create(**ask())
    rates = {p.attributes["otel_claude.limit.kind"]: p.value
             for p in telemetry.metric_points("otel_claude.limiter.rate")}
    assert rates == {"requests": 4000, "input_tokens": 2_000_000, "output_tokens": 400_000}  # the simulator's


# --------------------------------------------------------------------------------------------------- asyncio


async def test_async_tasks_stay_within_the_concurrency_limit(slow_sim: SimServer, telemetry: Any,
                                                             limited: Any) -> None:
    limited(one(concurrency=3, adaptive=False))
    counting = Counting()
    client = counting.async_client(slow_sim)
    await asyncio.gather(*(client.messages.create(**ask()) for _ in range(15)))
    assert counting.most <= 3
    assert len(telemetry.call_spans()) == 15


async def test_the_event_loop_keeps_running_while_50_calls_wait(sim: SimServer, telemetry: Any,
                                                                limited: Any) -> None:
    limited(one(concurrency=1, adaptive=False))
    client = async_client_for(sim)
    held = await client.messages.create(**ask("held"), stream=True)
    beats = 0

    async def heartbeat() -> None:
        nonlocal beats
        while True:
            beats += 1
            await asyncio.sleep(0)

    pulse = asyncio.create_task(heartbeat())
    calls = [asyncio.create_task(client.messages.create(**ask(f"job {i}"))) for i in range(50)]
    await await_until(lambda: queued(telemetry) == 50, "50 calls waiting")
    before = beats
    await await_until(lambda: beats >= before + 100, "100 heartbeats")
    assert not any(c.done() for c in calls)
    await held.close()
    await asyncio.wait_for(asyncio.gather(*calls), GUARD_S)
    pulse.cancel()
    assert metric(telemetry, "otel_claude.limiter.in_flight") == 0


async def test_cancelling_a_waiting_call_releases_nothing_it_did_not_take(sim: SimServer, telemetry: Any,
                                                                           limited: Any) -> None:
    limited(one(concurrency=1, adaptive=False))
    client = async_client_for(sim)
    held = await client.messages.create(**ask("held"), stream=True)
    first = asyncio.create_task(client.messages.create(**ask("cancelled")))
    second = asyncio.create_task(client.messages.create(**ask("second")))
    await await_until(lambda: queued(telemetry) == 2, "two calls waiting")
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert queued(telemetry) == 1 and metric(telemetry, "otel_claude.limiter.in_flight") == 1
    assert not second.done()  # the cancelled call's exit freed no slot that was not its own
    await held.close()
    await asyncio.wait_for(second, GUARD_S)
    cancelled = next(s for s in telemetry.call_spans() if s.attributes.get("otel_claude.cancelled"))
    assert cancelled.attributes["otel_claude.admission.wait"] > 0 and "error.type" not in cancelled.attributes
    assert metric(telemetry, "otel_claude.limiter.in_flight") == 0
    assert metric(telemetry, "otel_claude.limiter.admissions", **{"otel_claude.admission.outcome": "waited"}) == 1


def test_calls_in_different_event_loops_share_one_limit(sim: SimServer, telemetry: Any, limited: Any) -> None:
    limited(one(concurrency=1, adaptive=False))
    opened, close, done = threading.Event(), threading.Event(), threading.Event()

    async def holder() -> None:
        held = await async_client_for(sim).messages.create(**ask("held"), stream=True)
        opened.set()
        while not close.is_set():
            await asyncio.sleep(0.001)
        await held.close()

    async def waiter() -> None:
        await async_client_for(sim).messages.create(**ask("other loop"))
        done.set()

    first = threading.Thread(target=asyncio.run, args=(holder(),))
    first.start()
    assert opened.wait(GUARD_S)
    second = threading.Thread(target=asyncio.run, args=(waiter(),))
    second.start()
    wait_until(lambda: queued(telemetry) == 1, "the other loop's call waiting")
    assert not done.is_set()
    close.set()  # closed in the first loop: the second loop's call is woken
    second.join(GUARD_S)
    first.join(GUARD_S)
    assert done.is_set()


# --------------------------------------------------------------------------------------------------- fork


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_is_not_held_by_the_parents_calls(sim: SimServer, telemetry: Any, limited: Any) -> None:
    limited(one(concurrency=1, adaptive=False, max_wait=5, on_timeout="fail"))
    client = client_for(sim)
    held = client.messages.create(**ask("held"), stream=True)
    waiting = threading.Thread(target=client.messages.create, kwargs=ask("waiting"))
    waiting.start()
    wait_until(lambda: queued(telemetry) == 1, "a call waiting")
    pid = os.fork()
    if pid == 0:
        try:
            client_for(sim).messages.create(**ask("child"))  # the parent's slot and waiter are not the child's
            os._exit(0)
        except BaseException:
            os._exit(1)
    deadline = time.monotonic() + GUARD_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        assert time.monotonic() < deadline, "the forked child hung"
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    assert "child" in contents(sim)
    held.close()
    waiting.join(GUARD_S)
    assert not waiting.is_alive()
