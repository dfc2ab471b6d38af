"""`otel-claude tune` on spans that cannot be tuned says why on stderr, with the fix, instead of a silent result."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_claude._cli import main
from tuner import synthetic as syn

pytest.importorskip("numpy")

T0 = 1_763_900_000_000_000_000
SONNET = "claude-sonnet-4-6"


def tune(tmp_path: Path, spans: list[object], capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[str, str]:
    path = syn.write_otlp(tmp_path / "spans.jsonl", spans)
    assert main(["tune", str(path), "-o", str(tmp_path / "policy.yaml"), "--no-limits", *extra]) == 0
    out, err = capsys.readouterr()
    return out, err


def calls(n: int, task: str | None, offset: int = 0) -> list[object]:
    return [syn.call(start_ns=T0 + (offset + i) * 10**9, model=SONNET, task=task, output_tokens=40,
                     response_id=f"msg_{task}_{i}") for i in range(n)]


def test_no_task_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, err = tune(tmp_path, calls(60, None), capsys)
    assert "0 rules" in out
    assert "otel-claude tune: none of the 60 calls has a task label, so nothing is tuned" in err
    assert 'with otel_claude.task("classify")' in err


def test_some_calls_without_a_label(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, err = tune(tmp_path, calls(30, None) + calls(90, "classify", offset=30), capsys)
    assert "otel-claude tune: 30 of 120 calls (25%) have no task label and are left as they are" in err


def test_no_quality_evidence_points_at_paired_evaluation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def hint(*extra: str) -> str:
        _, err = tune(tmp_path, calls(120, "classify"), capsys, *extra)
        lines = [line for line in err.splitlines() if "no quality evidence" in line]
        assert len(lines) == 1, err
        assert "otel_claude.feedback(" in lines[0]
        return lines[0]

    assert "enforce this policy for a while" in hint("--candidates", "claude-haiku-4-5")
    assert "tune with --evaluate-share above 0" in hint("--candidates", "claude-haiku-4-5", "--evaluate-share", "0")
    assert f"the calls use {SONNET} only" in hint() and "--candidates MODEL,MODEL" in hint()


def test_no_hint_when_the_input_has_what_tuning_needs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spans = calls(120, "classify")
    spans += [syn.feedback(start_ns=T0 + i * 10**9 + 5, response_id=f"msg_classify_{i}", score=1.0)
              for i in range(120)]
    _, err = tune(tmp_path, spans, capsys)
    assert "otel-claude tune:" not in err
