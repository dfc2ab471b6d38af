"""Policy enforcement through the real SDK against the simulator: what the simulator received, and the spans."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

import otel_claude
from claude_sim import SimServer

SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"
SYSTEM = "You are a support classifier. " * 50
TOOLS = [{"name": "lookup", "description": "look up an order", "input_schema": {"type": "object", "properties": {}}}]


def policy(rules: list[dict], **top: object) -> dict:
    return {"schema_version": 1, "version": top.pop("version", "p1"), "rules": rules, **top}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(seed=1) as server:
        yield server


@pytest.fixture
def run(sim, telemetry):  # type: ignore[no-untyped-def]
    """Instrument with a policy, make calls under a task, return (bodies received, call spans)."""
    started: list[bool] = []

    def go(pol: object, calls: int = 1, task: str = "classify", max_tokens: int = 1000, **call_kwargs: object):
        sim.clear_received()
        telemetry.exporter.clear()
        otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                               policy=pol, policy_options={"reload_interval": 0})
        started.append(True)
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0)
        with otel_claude.task(task):
            for _ in range(calls):
                client.messages.create(model=SONNET, max_tokens=max_tokens, system=SYSTEM, tools=TOOLS,
                                       messages=[{"role": "user", "content": "where is my order?"}], **call_kwargs)
        otel_claude.uninstrument()
        started.clear()
        return [r["json"] for r in sim.received], telemetry.call_spans()

    yield go
    if started:
        otel_claude.uninstrument()


def test_route_cap_and_cache(run) -> None:  # type: ignore[no-untyped-def]
    cache = {"ttl": "1h", "targets": ["tools", "system"]}
    rule = {"task": "classify", "model": HAIKU, "max_tokens": 300, "cache": cache}
    bodies, spans = run(policy([rule]))
    body = bodies[0]
    assert body["model"] == HAIKU
    assert body["max_tokens"] == 300
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert body["system"][-1]["text"] == SYSTEM
    attrs = spans[0].attributes
    assert attrs["gen_ai.request.model"] == HAIKU
    assert attrs["otel_claude.policy.version"] == "p1"
    assert attrs["otel_claude.policy.rule"] == "classify#0"
    assert attrs["otel_claude.policy.requested_model"] == SONNET
    assert attrs["otel_claude.policy.applied_model"] == HAIKU
    assert attrs["otel_claude.policy.requested_max_tokens"] == 1000
    assert attrs["otel_claude.policy.applied_max_tokens"] == 300
    assert attrs["otel_claude.policy.cache_breakpoints_added"] == 2
    assert TOOLS[-1].get("cache_control") is None  # the caller's objects are untouched


def test_other_tasks_untouched(run) -> None:  # type: ignore[no-untyped-def]
    bodies, spans = run(policy([{"task": "summarize", "model": HAIKU}]), task="classify")
    assert bodies[0]["model"] == SONNET and "cache_control" not in str(bodies[0])
    assert "otel_claude.policy.rule" not in spans[0].attributes
    assert spans[0].attributes["otel_claude.policy.version"] == "p1"


def test_cap_never_raises_the_callers_value(run) -> None:  # type: ignore[no-untyped-def]
    bodies, _ = run(policy([{"task": "classify", "max_tokens": 5000}]), max_tokens=200)
    assert bodies[0]["max_tokens"] == 200
    bodies, _ = run(policy([{"task": "classify", "max_tokens": 5000, "max_tokens_mode": "set"}]), max_tokens=200)
    assert bodies[0]["max_tokens"] == 5000


def test_breakpoint_limit_and_no_duplicates(run) -> None:  # type: ignore[no-untyped-def]
    marked = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    rule = {"task": "classify", "cache": {"ttl": "5m"}}
    bodies, spans = run(policy([rule]), extra_body={"system": marked})
    assert bodies[0]["system"] == marked  # the caller's own marker: not duplicated
    assert bodies[0]["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert spans[0].attributes["otel_claude.policy.cache_breakpoints_added"] == 1

    three = [{"role": "user", "content": [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
                                          for i in range(3)]}]
    bodies, spans = run(policy([rule]), extra_body={"system": marked, "messages": three})
    assert str(bodies[0]).count("cache_control") == 4  # the API's limit: nothing added
    assert "otel_claude.policy.cache_breakpoints_added" not in spans[0].attributes


def test_shadow_mode_records_without_changing(run) -> None:  # type: ignore[no-untyped-def]
    bodies, spans = run(policy([{"task": "classify", "model": HAIKU, "max_tokens": 100}], mode="shadow"))
    assert bodies[0]["model"] == SONNET and bodies[0]["max_tokens"] == 1000
    attrs = spans[0].attributes
    assert attrs["otel_claude.policy.mode"] == "shadow"
    assert attrs["otel_claude.policy.applied_model"] == HAIKU
    assert attrs["gen_ai.request.model"] == SONNET


def test_off_mode(run) -> None:  # type: ignore[no-untyped-def]
    bodies, spans = run(policy([{"task": "classify", "model": HAIKU}], mode="off"))
    assert bodies[0]["model"] == SONNET
    assert spans[0].attributes["otel_claude.policy.mode"] == "off"


def test_rollout_applies_to_exact_share(run) -> None:  # type: ignore[no-untyped-def]
    bodies, spans = run(policy([{"task": "classify", "model": HAIKU}], rollout_percent=25), calls=20)
    assert sum(b["model"] == HAIKU for b in bodies) == 5
    assert sum(s.attributes.get("otel_claude.policy.rollout") is False for s in spans) == 15


def test_exploration_share_is_reproducible(run) -> None:  # type: ignore[no-untyped-def]
    rule = {"task": "classify", "explore": {"model": HAIKU, "share": 0.1}}
    first, spans = run(policy([rule]), calls=30)
    second, _ = run(policy([rule]), calls=30)
    models = [b["model"] for b in first]
    assert models.count(HAIKU) == 3
    assert models == [b["model"] for b in second]
    assert sum(bool(s.attributes.get("otel_claude.policy.exploration")) for s in spans) == 3


def test_condition_on_input_size(run) -> None:  # type: ignore[no-untyped-def]
    rules = [{"task": "classify", "when": {"input_tokens_max": 10}, "model": HAIKU}]
    bodies, _ = run(policy(rules))
    assert bodies[0]["model"] == SONNET  # the request is larger than 10 tokens: no match


def test_safety_net_retries_truncated_call_with_callers_max_tokens(run) -> None:  # type: ignore[no-untyped-def]
    bodies, spans = run(policy([{"task": "classify", "max_tokens": 1}]), max_tokens=1000)
    assert [b["max_tokens"] for b in bodies] == [1, 1000]
    assert spans[0].attributes["gen_ai.response.finish_reasons"] == ("max_tokens",)
    assert spans[1].attributes["otel_claude.policy.safety_retry"] is True
    assert spans[1].attributes["gen_ai.request.max_tokens"] == 1000


def test_hot_reload_file(tmp_path: Path, sim, telemetry) -> None:  # type: ignore[no-untyped-def]
    import yaml

    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy([{"task": "classify", "model": HAIKU}], version="v1")))
    otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           policy=str(path), policy_options={"reload_interval": 0})
    try:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0)

        def model_sent() -> str:
            sim.clear_received()
            with otel_claude.task("classify"):
                client.messages.create(model=SONNET, max_tokens=10, messages=[{"role": "user", "content": "x"}])
            return sim.received[0]["json"]["model"]

        source = otel_claude.AnthropicInstrumentor._hooks.policy.source

        def rewrite(text: str, mtime: int) -> None:
            path.write_text(text)
            os.utime(path, (1, mtime))
            # A check that began before the write may have missed it; the next one sees it changed, and the one
            # after that finds it unchanged and puts it in force (a file is read only once it stops changing).
            assert source.wait_checked(source.generation + 2, timeout=30)

        assert model_sent() == HAIKU
        rewrite(yaml.safe_dump(policy([{"task": "classify", "model": "claude-opus-4-6"}], version="v2")), 2_000_000_000)
        assert model_sent() == "claude-opus-4-6"
        rewrite("rules: [this is not: a policy", 2_000_000_100)
        assert model_sent() == "claude-opus-4-6"  # bad update rejected, v2 stays
        assert "rules" in (source.last_error or "") or "policy" in (source.last_error or "")
        assert telemetry.call_spans()[-1].attributes["otel_claude.policy.version"] == "v2"
    finally:
        otel_claude.uninstrument()


@pytest.mark.parametrize(
    "content",
    ["- just\n- a list\n", "schema_version: 1\nversion: x\nrules: [{task: a, model: gpt-4}]\n",
     "schema_version: 1\nversion: x\nrules: [{task: a, max_tokens: -3}]\n",
     "schema_version: 1\nversion: x\nsurprise: 1\n", "x" * 2_000_000],
)
def test_malformed_policy_never_breaks_calls(tmp_path: Path, sim, telemetry, caplog, content: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           policy=str(path))
    try:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0)
        message = client.messages.create(model=SONNET, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    finally:
        otel_claude.uninstrument()
    assert message.model == SONNET
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(str(path) in e for e in errors), errors


def test_unreachable_url_and_missing_file_at_start(sim, telemetry, caplog) -> None:  # type: ignore[no-untyped-def]
    for source in ("http://127.0.0.1:9/policy.yaml", "/nonexistent/policy.yaml"):
        otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                               policy=source)
        try:
            client = anthropic.Anthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0)
            assert client.messages.create(model=SONNET, max_tokens=5, messages=[{"role": "user", "content": "x"}])
        finally:
            otel_claude.uninstrument()


def test_url_policy_with_etag_reload(sim, telemetry) -> None:  # type: ignore[no-untyped-def]
    import yaml

    state = {"body": yaml.safe_dump(policy([{"task": "classify", "model": HAIKU}], version="u1")), "etag": '"1"'}
    fetched = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.headers.get("If-None-Match") == state["etag"]:
                self.send_response(304)
                self.end_headers()
            else:
                data = state["body"].encode()
                self.send_response(200)
                self.send_header("ETag", state["etag"])
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            fetched.set()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    from otel_claude._policy_source import UrlSource

    source = UrlSource(f"http://127.0.0.1:{server.server_address[1]}/p.yaml", reload_interval=3600)
    try:
        source.refresh()
        assert source.current() is not None and source.current().version == "u1"
        source.refresh()  # 304: unchanged
        assert source.current().version == "u1"
        state.update(body=yaml.safe_dump(policy([{"task": "classify", "model": HAIKU}], version="u2")), etag='"2"')
        source.refresh()
        assert source.current().version == "u2"
        state.update(body="schema_version: 2", etag='"3"')
        source.refresh()
        assert source.current().version == "u2" and "schema_version" in (source.last_error or "")
    finally:
        source.close()
        server.shutdown()
        server.server_close()


def test_a_slow_reload_never_holds_a_call(tmp_path: Path, sim, telemetry, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Parsing happens on the poller thread: while it is stuck in a parse, calls go on with the last good policy."""
    import yaml

    from otel_claude import _policy_source

    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy([{"task": "classify", "model": HAIKU}], version="v1")))
    otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           policy=str(path), policy_options={"reload_interval": 0})
    entered, release = threading.Event(), threading.Event()
    real_load = _policy_source.load_policy_text

    def stuck_load(*args, **kwargs):  # type: ignore[no-untyped-def]
        entered.set()
        release.wait(30)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(_policy_source, "load_policy_text", stuck_load)
    try:
        path.write_text(yaml.safe_dump(policy([{"task": "classify", "model": "claude-opus-4-6"}], version="v2")))
        os.utime(path, (1, 2_000_000_000))
        assert entered.wait(300), "the poller did not pick up the change"
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0)
        sim.clear_received()
        with otel_claude.task("classify"):
            client.messages.create(model=SONNET, max_tokens=10, messages=[{"role": "user", "content": "x"}])
        assert not release.is_set()  # the call finished while the reload was still stuck
        assert sim.received[0]["json"]["model"] == HAIKU
    finally:
        release.set()
        otel_claude.uninstrument()


def test_exploration_uses_the_candidates_own_cap(run) -> None:  # type: ignore[no-untyped-def]
    rule = {"task": "classify", "max_tokens": 100, "explore": {"model": HAIKU, "share": 0.2, "max_tokens": 900}}
    bodies, spans = run(policy([rule]), calls=10, max_tokens=1000)
    sent = [(b["model"], b["max_tokens"]) for b in bodies if b["max_tokens"] in (100, 900)]
    assert sent.count((HAIKU, 900)) == 2
    assert sent.count((SONNET, 100)) == 8
    explored = [s for s in spans if s.attributes.get("otel_claude.policy.exploration")]
    assert [s.attributes["gen_ai.request.max_tokens"] for s in explored] == [900, 900]


def test_rules_per_requested_model(run) -> None:  # type: ignore[no-untyped-def]
    rules = [{"task": "classify", "when": {"models": [HAIKU]}, "max_tokens": 700},
             {"task": "classify", "max_tokens": 300}]
    bodies, spans = run(policy(rules))
    assert bodies[0]["max_tokens"] == 300  # the caller asked for Sonnet: the task's own rule
    assert spans[0].attributes["otel_claude.policy.rule"] == "classify#1"
