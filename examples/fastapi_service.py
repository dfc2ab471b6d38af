"""A small web service calling Claude, instrumented the way a production service would be.

- OpenTelemetry providers set up once at start, exporting over OTLP (OTEL_EXPORTER_OTLP_ENDPOINT, default
  http://localhost:4318: the Collector of deploy/compose.yaml).
- Every endpoint labels its calls with a task, so the dashboard and the tuner can tell them apart.
- Sync, async and streaming endpoints; a feedback endpoint that scores an earlier answer.
- An optional tuning policy (`--policy`, a file written by `otel-claude tune`) applied to every call.
- On shutdown (Ctrl-C, SIGTERM) the providers flush what is still batched before the process exits.

Run it:
    pip install fastapi uvicorn
    OTEL_SERVICE_NAME=support-bot python examples/fastapi_service.py --port 8000 [--policy out/policy.yaml]
    curl -s localhost:8000/classify -H 'content-type: application/json' -d '{"text": "My invoice is wrong"}'
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from pydantic import BaseModel

import otel_claude

MODEL = "claude-sonnet-4-6"
LABELS = ["billing", "bug", "account", "other"]


class Text(BaseModel):
    text: str


class Chat(BaseModel):
    message: str


class Feedback(BaseModel):
    response_id: str
    score: float
    label: str | None = None


def setup_telemetry() -> tuple[TracerProvider, MeterProvider]:
    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
    resource = Resource.create()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]
    )
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    return tracer_provider, meter_provider


def create_app(policy: str | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tracer_provider, meter_provider = setup_telemetry()
        otel_claude.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, policy=policy)
        app.state.client = anthropic.Anthropic()
        app.state.async_client = anthropic.AsyncAnthropic()
        try:
            yield
        finally:
            await app.state.async_client.close()
            app.state.client.close()
            otel_claude.uninstrument()
            # shutdown() exports everything still batched: without it the last spans of a deploy are lost.
            tracer_provider.shutdown()
            meter_provider.shutdown()

    app = FastAPI(title="otel-claude example service", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/classify")
    async def classify(body: Text) -> dict[str, Any]:
        with otel_claude.task("classify"):
            message = await app.state.async_client.messages.create(
                model=MODEL,
                max_tokens=64,
                system=f"Classify the support ticket as one of: {', '.join(LABELS)}. Answer with the label only.",
                messages=[{"role": "user", "content": body.text}],
            )
        return {"label": _text(message), "response_id": message.id, "model": message.model}

    # A plain `def` endpoint runs in FastAPI's thread pool: the sync client is fine there.
    @app.post("/summarize")
    def summarize(body: Text) -> dict[str, Any]:
        with otel_claude.task("summarize"):
            message = app.state.client.messages.create(
                model=MODEL,
                max_tokens=300,
                messages=[{"role": "user", "content": f"Summarize in two sentences:\n\n{body.text}"}],
            )
        return {"summary": _text(message), "response_id": message.id, "stop_reason": message.stop_reason}

    @app.post("/chat/stream")
    async def chat_stream(body: Chat) -> StreamingResponse:
        async def tokens() -> AsyncIterator[str]:
            # The task label must be set where the call happens: inside the generator, not around its creation.
            with otel_claude.task("chat"):
                async with app.state.async_client.messages.stream(
                    model=MODEL, max_tokens=400, messages=[{"role": "user", "content": body.message}]
                ) as stream:
                    async for text in stream.text_stream:
                        yield text

        return StreamingResponse(tokens(), media_type="text/plain; charset=utf-8")

    @app.post("/feedback")
    async def feedback(body: Feedback) -> dict[str, str]:
        otel_claude.feedback(body.response_id, body.score, body.label)
        return {"status": "recorded"}

    return app


def _text(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text").strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--policy", help="policy file written by `otel-claude tune` (default: $OTEL_CLAUDE_POLICY)")
    args = parser.parse_args(argv)
    # uvicorn turns SIGINT/SIGTERM into a graceful shutdown, which runs the lifespan's flush.
    uvicorn.run(create_app(args.policy), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
