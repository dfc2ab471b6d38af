"""The data window: --since / --until as ISO 8601 or back from now, applied by span start to every input kind."""

from __future__ import annotations

from pathlib import Path

import pytest
from span_sets import T0, mixed_calls

from tuner import synthetic as syn
from tuner._ingest import load_dataset
from tuner._window import Window, parse_bound

S = 10**9


def test_bounds_parse_iso_times_and_spans_back_from_now() -> None:
    now = 1_800_000_000 * S
    assert parse_bound("7d", now) == now - 7 * 86_400 * S
    assert parse_bound("24h", now) == parse_bound("1d", now) == now - 86_400 * S
    assert parse_bound("90m", now) == now - 5400 * S and parse_bound("2w", now) == now - 14 * 86_400 * S
    assert parse_bound("2026-11-20T08:00:00Z") == parse_bound("2026-11-20T08:00:00+00:00") == 1_795_161_600 * S
    assert parse_bound("2026-11-20T09:00:00+01:00") == 1_795_161_600 * S
    assert parse_bound("2026-11-20") == 1_795_132_800 * S  # no zone: UTC
    assert parse_bound("2026-11-20T08:00:00.000001Z") == 1_795_161_600 * S + 1000
    with pytest.raises(ValueError, match="neither an ISO 8601 time"):
        parse_bound("last tuesday")
    with pytest.raises(ValueError, match="empty"):
        Window(10, 10)


def test_file_window_keeps_spans_starting_inside(tmp_path: Path) -> None:
    spans = mixed_calls(calls=300)
    path = syn.write_otlp(tmp_path / "t.jsonl", spans)
    since, until = T0 + 20 * 3600 * S, T0 + 40 * 3600 * S
    dataset, _ = load_dataset([str(path)], window=Window(since, until))
    inside = [s for s in spans if since <= s.start_ns < until]
    assert dataset.spans == len(inside)
    assert dataset.calls == sum(1 for s in inside if s.name.startswith("chat "))
    assert since <= dataset.start_ns <= dataset.end_ns < until
    assert 0 < dataset.calls < sum(1 for s in spans if s.name.startswith("chat "))


def test_cli_since_until_and_bad_values(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from otel_claude._cli import main as otel_claude

    path = syn.write_otlp(tmp_path / "t.jsonl", mixed_calls(calls=300))
    out = str(tmp_path / "p.yaml")
    assert otel_claude(["tune", str(path), "-o", out, "--since", "2025-11-24", "--until", "2025-11-25"]) == 0
    read = int(capsys.readouterr().out.split(" calls read")[0].rsplit(" ", 1)[-1])
    assert 0 < read < 300
    # Everything in the file is older than a week back from now: nothing to tune, said plainly.
    assert otel_claude(["tune", str(path), "-o", out, "--since", "7d"]) == 2
    assert "no call spans" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        otel_claude(["tune", str(path), "-o", out, "--since", "yesterday-ish"])
    assert "--since" in capsys.readouterr().err
    assert otel_claude(["tune", str(path), "-o", out, "--since", "2025-11-25", "--until", "2025-11-24"]) == 2
    assert "empty" in capsys.readouterr().err
