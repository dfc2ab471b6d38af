"""Reading back what an OTLP JSON lines file holds (the file exporter's output), for tests that check it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def file_spans(path: Path) -> list[dict[str, Any]]:
    """Every span of every line, in file order."""
    return [span for line in path.read_text(encoding="utf-8").splitlines()
            for resource in json.loads(line)["resourceSpans"]
            for scope in resource["scopeSpans"] for span in scope["spans"]]


def span_attributes(span: dict[str, Any]) -> dict[str, Any]:
    """A span's attributes as plain values (`{"stringValue": "x"}` becomes "x")."""
    return {item["key"]: next(iter(item["value"].values())) for item in span["attributes"]}
