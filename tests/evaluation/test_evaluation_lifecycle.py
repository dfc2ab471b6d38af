"""The background side of paired evaluation: bounded queue, uninstrument while shadows are in flight, fork."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from typing import Any

import anthropic
from evaluation_support import HAIKU, SONNET, by_role, evaluate_policy, metric_total, verdicts
from scripted_server import Received, Reply, ScriptedServer

import otel_claude
from otel_claude import AnthropicInstrumentor

_ids = itertools.count()


def _message(model: str) -> Reply:
    return Reply.json({"id": f"msg_l{next(_ids):06d}", "type": "message", "role": "assistant", "model": model,
                       "content": [{"type": "text", "text": "Canberra"}], "stop_reason": "end_turn",
                       "stop_sequence": None, "usage": {"input_tokens": 30, "output_tokens": 3}})


class HeldShadows:
    """A server whose candidate replies wait until released; `arrived` counts candidate requests received."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.arrived = threading.Semaphore(0)
        self.server = ScriptedServer(self._reply)

    def _reply(self, request: Received) -> Reply:
        if request.body["model"] == HAIKU:
            self.arrived.release()
            reply = _message(HAIKU)
            reply.wait = self.release
            return reply
        return _message(SONNET)


def _instrument(telemetry: Any, **options: Any) -> None:
    otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           policy=evaluate_policy(share=0.5), policy_options={"reload_interval": 0}, **options)


def _call(client: anthropic.Anthropic) -> Any:
    with otel_claude.task("classify"):
        return client.messages.create(model=SONNET, max_tokens=50, messages=[{"role": "user", "content": "capital?"}])


def _client(server: ScriptedServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=120)


def test_full_queue_drops_and_counts(telemetry) -> None:  # type: ignore[no-untyped-def]
    held = HeldShadows()
    with held.server as server:
        _instrument(telemetry, evaluation_options={"workers": 1, "max_pending": 1})
        try:
            client = _client(server)
            _call(client), _call(client)  # the second is sampled: its shadow now holds the only worker
            assert held.arrived.acquire(timeout=60)
            replies = [_call(client) for _ in range(6)]  # three more sampled: one queues, two find it full
            assert all(r.content[0].text == "Canberra" for r in replies)
            held.release.set()
            assert otel_claude.wait_for_evaluations(timeout=120)
        finally:
            held.release.set()
            otel_claude.uninstrument()
    assert len(verdicts(telemetry.spans())) == 2
    assert metric_total(telemetry, "otel_claude.evaluation.skipped", **{
        "otel_claude.evaluation.skip_reason": "queue_full"}) == 2


def test_uninstrument_while_a_shadow_is_in_flight(telemetry) -> None:  # type: ignore[no-untyped-def]
    held = HeldShadows()
    with held.server as server:
        _instrument(telemetry, evaluation_options={"workers": 1, "max_pending": 4})
        try:
            client = _client(server)
            _call(client)
            answer = _call(client)
            assert held.arrived.acquire(timeout=60)  # its shadow is on the wire, held by the server
            _call(client), _call(client)  # the next sampled pair waits in the queue behind it
            background = AnthropicInstrumentor._hooks.evaluator.background  # type: ignore[union-attr]
            workers = background.threads()
        finally:
            otel_claude.uninstrument()  # returns at once: it does not wait for the call in flight
        assert answer.content[0].text == "Canberra"
        held.release.set()
        for worker in workers:
            worker.join(timeout=60)
            assert not worker.is_alive()  # the worker finished the job in hand and stopped
    spans = telemetry.spans()
    [shadow] = by_role(spans, "shadow")  # ended, exported: no leaked span
    assert shadow.end_time is not None
    assert len(verdicts(spans)) == 1  # the shadow answered, so its pair was graded; the queued one was dropped
    assert metric_total(telemetry, "otel_claude.evaluation.skipped", **{
        "otel_claude.evaluation.skip_reason": "shutdown"}) == 1
    assert len([r for r in server.received if r.body["model"] == HAIKU]) == 1


def test_fork_child_has_no_inherited_worker_or_lock(telemetry) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer(lambda request: _message(request.body["model"])) as server:
        _instrument(telemetry)
        try:
            client = _client(server)
            _call(client), _call(client)
            assert otel_claude.wait_for_evaluations(timeout=120)
            background = AnthropicInstrumentor._hooks.evaluator.background  # type: ignore[union-attr]
            assert background.threads()  # the parent has a worker
            # Another thread holds the queue's lock at the moment of the fork.
            holding, fork_done = threading.Event(), threading.Event()

            def hold() -> None:
                with background._cond:
                    holding.set()
                    fork_done.wait(timeout=60)

            holder = threading.Thread(target=hold)
            holder.start()
            assert holding.wait(timeout=60)
            pid = os.fork()
            if pid == 0:  # the child: must evaluate with a worker of its own, not deadlock on the held lock
                code = 1
                try:
                    telemetry.exporter.clear()
                    if not background.threads():
                        child_client = _client(server)
                        _call(child_client), _call(child_client)
                        if otel_claude.wait_for_evaluations(timeout=60) and len(verdicts(telemetry.spans())) == 1:
                            code = 0
                finally:
                    os._exit(code)
            fork_done.set()
            holder.join()
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
        finally:
            otel_claude.uninstrument()


async def test_uninstrument_cancels_async_shadows_in_flight(telemetry) -> None:  # type: ignore[no-untyped-def]
    held = HeldShadows()
    with held.server as server:
        _instrument(telemetry)
        try:
            client = anthropic.AsyncAnthropic(base_url=server.base_url, api_key="sk-test", max_retries=0,
                                              timeout=120)
            with otel_claude.task("classify"):
                for _ in range(2):
                    answer = await client.messages.create(model=SONNET, max_tokens=50,
                                                          messages=[{"role": "user", "content": "capital?"}])
            # The shadow task runs on this loop: wait for its request off the loop.
            assert await asyncio.to_thread(held.arrived.acquire, True, 60)
            background = AnthropicInstrumentor._hooks.evaluator.background  # type: ignore[union-attr]
            tasks = list(background._tasks)
        finally:
            otel_claude.uninstrument()
        assert answer.content[0].text == "Canberra"
        await asyncio.gather(*tasks, return_exceptions=True)
        assert all(task.cancelled() for task in tasks)
        held.release.set()
        await client.close()
    spans = telemetry.spans()
    [shadow] = by_role(spans, "shadow")
    assert shadow.attributes["otel_claude.cancelled"] is True  # ended, not leaked
    assert not verdicts(spans)
    assert metric_total(telemetry, "otel_claude.evaluation.skipped", **{
        "otel_claude.evaluation.skip_reason": "shutdown"}) == 1
