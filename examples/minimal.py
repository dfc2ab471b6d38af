"""The smallest instrumented program: one line turns every Anthropic SDK call into a span and metrics.

With no OpenTelemetry set up by the application, `instrument()` installs providers that export over OTLP to
the address in the standard variables (default http://localhost:4318, the Collector of deploy/compose.yaml):

    OTEL_SERVICE_NAME=minimal python examples/minimal.py "Name three prime numbers."

The API key and base URL come from ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL, as for any SDK program.
"""

from __future__ import annotations

import sys

import anthropic

import otel_claude

otel_claude.instrument()


def main(argv: list[str]) -> int:
    question = " ".join(argv) or "Say hello."
    client = anthropic.Anthropic()
    message = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=256,
        messages=[{"role": "user", "content": question}],
    )
    print(message.content[0].text if message.content else "")
    # Spans and metrics are batched; the providers flush them when the interpreter exits.
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
