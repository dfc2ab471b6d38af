"""Command-line runs that cannot do what was asked exit non-zero with one clear line, before doing the work: never
a silent success, never a traceback after the whole analysis. (The library itself keeps never raising.)"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from otel_claude._cli import main as otel_claude
from tuner import synthetic as syn


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_workload_where_every_call_fails_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = otel_claude(["workload", "--base-url", f"http://127.0.0.1:{closed_port()}", "--calls", "3",
                        "--workers", "3", "--quiet"])
    assert code == 1
    assert one_line(capsys) == "otel-claude workload: all 3 calls failed (first: APIConnectionError)"


@pytest.mark.parametrize(("content", "fragment"), [
    (None, "cannot read (No such file or directory)"),
    ("schema_version: 1\nversion: x\nrules: [{task: a, model: gpt-4}]\n", "unknown model 'gpt-4'"),
    ("schema_version: 1\nversion: x\n", "field 'rules': is required"),
])
def test_workload_with_a_rejected_policy_exits_2_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 content: str | None, fragment: str) -> None:
    policy, out = tmp_path / "policy.yaml", tmp_path / "spans.jsonl"
    if content is not None:
        policy.write_text(content)
    code = otel_claude(["workload", "--sim", "--calls", "3", "--quiet", "--policy", str(policy), "--out", str(out)])
    assert code == 2
    line = one_line(capsys)
    assert line.startswith(f"otel-claude workload: --policy: {policy}") and fragment in line
    assert not out.exists(), "nothing ran"


def test_workload_with_a_missing_scenario_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = otel_claude(["workload", "--sim", "--calls", "3", "--quiet", "--scenario", str(tmp_path / "nosuch.yaml")])
    assert code == 2
    assert one_line(capsys).startswith(f"otel-claude workload: --scenario: {tmp_path / 'nosuch.yaml'}: cannot read")


def test_workload_with_an_unwritable_output_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = otel_claude(["workload", "--sim", "--calls", "3", "--quiet", "--out", str(blocker / "spans.jsonl")])
    assert code == 2
    assert one_line(capsys) == f"otel-claude workload: --out: cannot write {blocker / 'spans.jsonl'}: {blocker} is " \
                               "not a directory"


@pytest.fixture
def spans_file(tmp_path: Path) -> Path:
    start = 1_763_900_000_000_000_000
    calls = [syn.call(start_ns=start + i * 10**9, model="claude-sonnet-4-6", task="classify", input_tokens=500,
                      output_tokens=40, response_id=f"msg_{i}") for i in range(50)]
    return syn.write_otlp(tmp_path / "spans.jsonl", calls)


@pytest.mark.parametrize("where", ["output", "report"])
def test_tune_checks_its_outputs_before_the_analysis(tmp_path: Path, spans_file: Path,
                                                     capsys: pytest.CaptureFixture[str], where: str) -> None:
    policy, report = tmp_path / "policy.yaml", tmp_path / "report.html"
    missing = tmp_path / "nonexistent" / ("p.yaml" if where == "output" else "r.html")
    args = ["tune", str(spans_file), "-o", str(missing if where == "output" else policy),
            "--report", str(report), "--report", str(missing if where == "report" else report)]
    assert otel_claude(args) == 2
    assert one_line(capsys) == f"otel-claude tune: cannot write {missing}: directory {missing.parent} does not exist"
    assert not policy.exists() and not report.exists(), "nothing is written when an output cannot be"
