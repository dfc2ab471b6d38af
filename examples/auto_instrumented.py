"""A program with no OpenTelemetry code at all, instrumented from the outside by `opentelemetry-instrument`.

otel-claude registers an `opentelemetry_instrumentor` entry point under a name of its own, so with the package and
`opentelemetry-distro` installed:

    pip install otel-claude opentelemetry-distro
    OTEL_SERVICE_NAME=auto-example OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
        opentelemetry-instrument python examples/auto_instrumented.py

sends one span per call to the Collector at OTEL_EXPORTER_OTLP_ENDPOINT (default localhost:4318 for HTTP).
"""

from __future__ import annotations

import asyncio
import sys

import anthropic


async def ask_concurrently(questions: list[str]) -> list[str]:
    client = anthropic.AsyncAnthropic()
    replies = await asyncio.gather(
        *(
            client.messages.create(
                model="claude-haiku-4-5", max_tokens=128, messages=[{"role": "user", "content": question}]
            )
            for question in questions
        )
    )
    return [reply.content[0].text if reply.content else "" for reply in replies]


def main(argv: list[str]) -> int:
    questions = argv or ["What is OpenTelemetry?", "What is a span?"]
    for answer in asyncio.run(ask_concurrently(questions)):
        print(answer[:80])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
