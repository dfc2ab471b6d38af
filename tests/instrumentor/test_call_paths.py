"""Every SDK call path yields exactly one span with the response's facts, sync and async, on both SDK majors."""

from __future__ import annotations

import anthropic
import pytest
from events import MODEL, message, stream_events
from scripted_server import Reply, ScriptedServer

SDK_MAJOR = int(anthropic.__version__.split(".")[0])


def sync_client(server: ScriptedServer, **kwargs: object) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0, **kwargs)


def async_client(server: ScriptedServer, **kwargs: object) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server.base_url, api_key="sk-test", max_retries=0, **kwargs)


ARGS = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def only_span(instrumented):  # type: ignore[no-untyped-def]
    spans = instrumented.call_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def assert_chat(span, *, output: int, stream: bool, complete: bool | None = None) -> None:  # type: ignore[no-untyped-def]
    attrs = span.attributes
    assert span.name == f"chat {MODEL}"
    assert span.kind.name == "CLIENT"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["gen_ai.request.max_tokens"] == 100
    assert attrs["gen_ai.request.stream"] is stream
    assert attrs["gen_ai.response.id"] == "msg_01"
    assert attrs["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert attrs["gen_ai.usage.output_tokens"] == output
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["otel_claude.cost_usd"] > 0
    assert "gen_ai.request.temperature" not in attrs  # never invented
    if stream:
        assert attrs["otel_claude.stream.complete"] is (True if complete is None else complete)
        assert attrs["gen_ai.response.time_to_first_chunk"] > 0


def test_create_sync(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.json(message(usage={"input_tokens": 12, "output_tokens": 5}))]) as server:
        result = sync_client(server).messages.create(**ARGS)
    assert type(result).__name__ == "Message"
    span = only_span(instrumented)
    assert_chat(span, output=5, stream=False)
    assert span.attributes["gen_ai.usage.input_tokens"] == 12
    assert span.attributes["anthropic.request.id"] == "req_test"
    # 12 input at $3/M + 5 output at $15/M
    assert span.attributes["otel_claude.cost_usd"] == pytest.approx((12 * 3 + 5 * 15) / 1e6)


async def test_create_async(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.json(message())]) as server:
        result = await async_client(server).messages.create(**ARGS)
    assert result.content[0].text == "Hello!"
    assert_chat(only_span(instrumented), output=5, stream=False)


def test_create_stream_sync(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.sse(stream_events(["Hel", "lo"], output_tokens=7))]) as server:
        stream = sync_client(server).messages.create(**ARGS, stream=True)
        assert type(stream).__name__ == "Stream"
        kinds = [event.type for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert_chat(only_span(instrumented), output=7, stream=True)


async def test_create_stream_async(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.sse(stream_events(["a", "b", "c"]))]) as server:
        stream = await async_client(server).messages.create(**ARGS, stream=True)
        assert type(stream).__name__ == "AsyncStream"
        kinds = [event.type async for event in stream]
    assert "content_block_delta" in kinds
    assert_chat(only_span(instrumented), output=3, stream=True)


def test_stream_helper_sync(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.sse(stream_events(["Hel", "lo"])), Reply.sse(stream_events(["x"]))]) as server:
        client = sync_client(server)
        manager = client.messages.stream(**ARGS)
        assert server.received == []  # no request until __enter__
        with manager as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert text == "Hello" and final.content[0].text == "Hello"
        with client.messages.stream(**ARGS) as stream:
            stream.until_done()
    spans = instrumented.call_spans()
    assert len(spans) == 2
    assert_chat(spans[0], output=2, stream=True)


async def test_stream_helper_async(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.sse(stream_events(["Hel", "lo"]))]) as server:
        async with async_client(server).messages.stream(**ARGS) as stream:
            text = "".join([t async for t in stream.text_stream])
            final = await stream.get_final_message()
    assert text == "Hello" and final.usage.output_tokens == 2
    assert_chat(only_span(instrumented), output=2, stream=True)


def test_beta_create_and_stream(instrumented) -> None:  # type: ignore[no-untyped-def]
    if not hasattr(anthropic.resources.beta.messages.Messages, "stream"):
        pytest.skip("this SDK has no beta.messages.stream")
    with ScriptedServer([Reply.json(message()), Reply.sse(stream_events(["z"]))]) as server:
        client = sync_client(server)
        client.beta.messages.create(**ARGS, betas=["context-management-2025-06-27"])
        with client.beta.messages.stream(**ARGS) as stream:
            stream.get_final_message()
    spans = instrumented.call_spans()
    assert [s.attributes["gen_ai.operation.name"] for s in spans] == ["chat", "chat"]
    assert spans[1].attributes["otel_claude.stream.complete"] is True


def test_count_tokens(instrumented) -> None:  # type: ignore[no-untyped-def]
    if not hasattr(anthropic.resources.messages.Messages, "count_tokens"):
        pytest.skip("this SDK has no messages.count_tokens")
    with ScriptedServer([Reply.json({"input_tokens": 42})]) as server:
        result = sync_client(server).messages.count_tokens(model=MODEL, messages=ARGS["messages"])
    assert result.input_tokens == 42
    span = only_span(instrumented)
    assert span.name == f"count_tokens {MODEL}"
    assert span.attributes["gen_ai.usage.input_tokens"] == 42
    assert "otel_claude.cost_usd" not in span.attributes


def test_batches(instrumented) -> None:  # type: ignore[no-untyped-def]
    if not hasattr(anthropic.resources.messages.Messages, "batches"):
        pytest.skip("this SDK has no messages.batches")
    batch = {"id": "msgbatch_1", "type": "message_batch", "processing_status": "in_progress",
             "request_counts": {"processing": 1, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
             "created_at": "2026-11-23T00:00:00Z", "expires_at": "2026-11-24T00:00:00Z",
             "ended_at": None, "cancel_initiated_at": None, "archived_at": None, "results_url": None}
    with ScriptedServer([Reply.json(batch), Reply.json({**batch, "processing_status": "ended"})]) as server:
        client = sync_client(server)
        client.messages.batches.create(requests=[{"custom_id": "a", "params": ARGS}])
        client.messages.batches.retrieve("msgbatch_1")
    spans = instrumented.call_spans()
    assert [s.name for s in spans] == ["create_batch", "retrieve_batch"]
    assert spans[1].attributes["otel_claude.batch.status"] == "ended"


def test_with_raw_response(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.json(message(), headers={"anthropic-ratelimit-requests-remaining": "49"})]) as server:
        raw = sync_client(server).messages.with_raw_response.create(**ARGS)
        assert raw.headers["request-id"] == "req_test"
        parsed = raw.parse()
    assert parsed.id == "msg_01"
    span = only_span(instrumented)
    assert_chat(span, output=5, stream=False)
    assert span.attributes["anthropic.ratelimit.requests.remaining"] == 49


def test_with_streaming_response(instrumented) -> None:  # type: ignore[no-untyped-def]
    with (
        ScriptedServer([Reply.sse(stream_events(["a", "b"]))]) as server,
        sync_client(server).messages.with_streaming_response.create(**ARGS, stream=True) as response,
    ):
        assert instrumented.call_spans() == []  # body not read yet: the call is still running
        events = list(response.parse())
    assert events[-1].type == "message_stop"
    assert_chat(only_span(instrumented), output=2, stream=True)


def test_streaming_response_never_parsed_ends_when_dropped(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.json(message())]) as server:
        with sync_client(server).messages.with_streaming_response.create(**ARGS) as response:
            assert response.headers["request-id"] == "req_test"
        assert instrumented.call_spans() == []
        del response  # by reference counting alone: no garbage-collector pass
        span = only_span(instrumented)
    assert span.attributes["gen_ai.request.model"] == MODEL
    assert "gen_ai.response.id" not in span.attributes  # the body was never read


def test_streaming_response_parsed_twice_is_one_call(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.json(message())]) as server:
        with sync_client(server).messages.with_streaming_response.create(**ARGS) as response:
            first, second = response.parse(), response.parse()
    assert first.id == second.id == "msg_01"
    assert_chat(only_span(instrumented), output=5, stream=False)


def test_parse_helper(instrumented) -> None:  # type: ignore[no-untyped-def]
    if not hasattr(anthropic.resources.messages.Messages, "parse"):
        pytest.skip("messages.parse needs a newer SDK")
    with ScriptedServer([Reply.json(message(text='{"answer": 4}'))]) as server:
        result = sync_client(server).messages.parse(**ARGS)
    assert result.id == "msg_01"
    assert_chat(only_span(instrumented), output=5, stream=False)


def test_bedrock_and_vertex_clients(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.json(message()), Reply.json(message())]) as server:
        bedrock = anthropic.AnthropicBedrock(
            base_url=server.base_url, aws_access_key="AKIATEST", aws_secret_key="secret", aws_region="us-east-1",
            max_retries=0,
        )
        bedrock.messages.create(**ARGS)
        vertex = anthropic.AnthropicVertex(
            base_url=server.base_url, region="us-east5", project_id="proj", access_token="tok", max_retries=0
        )
        vertex.messages.create(**ARGS)
        paths = [r.path for r in server.received]
    spans = instrumented.call_spans()
    assert [s.attributes["gen_ai.provider.name"] for s in spans] == ["aws.bedrock", "gcp.vertex_ai"]
    assert all(s.attributes["gen_ai.request.model"] == MODEL for s in spans)
    assert all("/v1/messages" not in p for p in paths)  # the clouds' own URLs were used


def test_task_label_and_feedback(instrumented) -> None:  # type: ignore[no-untyped-def]
    import otel_claude

    with ScriptedServer([Reply.json(message())]) as server, otel_claude.task("classify"):
        result = sync_client(server).messages.create(**ARGS)
    otel_claude.feedback(result, 1.0, label="correct")
    spans = instrumented.spans()
    call = next(s for s in spans if s.name.startswith("chat"))
    fb = next(s for s in spans if s.name == "evaluation feedback")
    assert call.attributes["otel_claude.task"] == "classify"
    assert fb.attributes["gen_ai.response.id"] == "msg_01"
    assert fb.attributes["gen_ai.evaluation.score.value"] == 1.0
    assert fb.attributes["otel_claude.task"] == "classify"
    assert fb.links[0].context.span_id == call.context.span_id


NATIVE_PROBE = """
import json, sys
sys.path[:0] = {paths!r}
import anthropic
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import otel_claude
from events import message
from scripted_server import Reply, ScriptedServer

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)  # the SDK's own tracing turns itself on for a global provider
otel_claude.instrument(keep_native_spans={keep})
with ScriptedServer([Reply.json(message())]) as server:
    client = anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0)
    client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=[{{"role": "user", "content": "x"}}])
print(json.dumps([s.instrumentation_scope.name for s in exporter.get_finished_spans()]))
"""


@pytest.mark.parametrize("keep", [False, True])
def test_native_sdk_span_suppressed_unless_kept(keep: bool) -> None:
    """With a global provider the SDK (>= 1.14) traces itself: by default the call still has exactly one span."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    if SDK_MAJOR < 1:
        pytest.skip("SDK 0.x has no tracing of its own")
    here = Path(__file__).parent
    code = NATIVE_PROBE.format(paths=[str(here), str(here.parent)], keep=keep)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    scopes = json.loads(out.stdout.strip().splitlines()[-1])
    if keep:
        assert sorted(scopes) == ["com.anthropic.sdk.python", "otel_claude"]
    else:
        assert scopes == ["otel_claude"]


def test_metrics_recorded(instrumented) -> None:  # type: ignore[no-untyped-def]
    import otel_claude

    with ScriptedServer([Reply.sse(stream_events(["a", "b"]))]) as server, otel_claude.task("summarize"):
        for _ in sync_client(server).messages.create(**ARGS, stream=True):
            pass
    duration = instrumented.metric_points("gen_ai.client.operation.duration")
    assert len(duration) == 1 and duration[0].count == 1
    assert duration[0].attributes["otel_claude.task"] == "summarize"
    ttft = instrumented.metric_points("gen_ai.client.operation.time_to_first_chunk")
    assert ttft[0].count == 1
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in instrumented.metric_points("gen_ai.client.token.usage")}
    assert tokens == {"input": 20, "output": 2}
    calls = instrumented.metric_points("otel_claude.calls")
    assert calls[0].attributes["gen_ai.response.finish_reason"] == "end_turn" and calls[0].value == 1
    assert instrumented.metric_points("otel_claude.cost")[0].value > 0


def test_batched_histogram_records_carry_no_exemplar_of_another_trace(instrumented) -> None:  # type: ignore[no-untyped-def]
    """Histograms are recorded when metrics are collected: whatever span is current then is not the call's."""
    with ScriptedServer([Reply.json(message("ok"))]) as server:
        sync_client(server).messages.create(**ARGS)
    unrelated = instrumented.tracer_provider.get_tracer("test").start_span("collector's own work")
    from opentelemetry import trace

    with trace.use_span(unrelated, end_on_exit=True):
        points = instrumented.metric_points("gen_ai.client.operation.duration")
    assert len(points) == 1 and points[0].count == 1
    assert points[0].exemplars == []
