"""A short run of bench/soak.py (the full 20,000-call soak is the bench script): no span, thread, socket or file
descriptor outlives the calls that made it."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def load_soak():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # dataclasses resolve annotations through the module registry
    spec.loader.exec_module(module)
    return module


def test_short_soak_leaks_nothing() -> None:
    soak = load_soak()
    out = io.StringIO()
    result = soak.soak(calls=750, sample_every=250, out=out)
    soak.report(result, warmup=250, out=out)
    warm, end = result.samples[1], result.samples[-1]
    assert result.calls == 750 and result.failures == 0, out.getvalue()
    assert result.open_spans_end == 0, out.getvalue()
    assert result.exported == result.calls, out.getvalue()
    assert end.threads <= warm.threads, out.getvalue()
    assert end.sockets <= warm.sockets, out.getvalue()
    assert end.fds <= warm.fds, out.getvalue()
