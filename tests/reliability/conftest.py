"""Fixtures of the reliability tests."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_support import LogCatcher

# The API-shaped event builders live with the instrumentor tests; reuse them rather than keep a twin.
sys.path.insert(0, str(Path(__file__).parent.parent / "instrumentor"))


@pytest.fixture
def log_catcher() -> Iterator[LogCatcher]:
    catcher = LogCatcher()
    ours, sdk = logging.getLogger("otel_claude"), logging.getLogger("opentelemetry")
    level = ours.level
    # report_failure() logs a site's repeats at debug: without this only the first failure would be seen.
    ours.setLevel(logging.DEBUG)
    ours.addHandler(catcher)
    sdk.addHandler(catcher)
    yield catcher
    ours.removeHandler(catcher)
    sdk.removeHandler(catcher)
    ours.setLevel(level)
