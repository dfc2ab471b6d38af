"""The workload driver end to end: instrumented SDK, spans in an OTLP JSON lines file, feedback, summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from otlp_spans import file_spans as spans
from otlp_spans import span_attributes as attributes

from claude_sim import SimServer, load_scenario
from claude_sim.workload import main, plan_jobs, run_workload


@pytest.fixture(scope="module")
def sim():
    with SimServer(scenario="default", seed=0, record=False) as server:
        yield server


@pytest.mark.parametrize("use_async", [False, True])
def test_run_writes_spans_with_tasks_and_feedback(sim: SimServer, tmp_path: Path, use_async: bool) -> None:
    out = tmp_path / "spans.jsonl"
    summary = run_workload(sim.base_url, "default", calls=60, workers=4, out=str(out), use_async=use_async,
                           stream_share=0.5, seed=1)
    assert summary.overall.calls == 60 and summary.overall.errors == 0
    records = summary.records
    assert any(r.stream for r in records) and not all(r.stream for r in records)
    assert all(r.ttft_s is not None for r in records if r.stream)
    all_spans = spans(out)
    calls = [attributes(s) for s in all_spans if s["name"].startswith("chat ")]
    feedback = [attributes(s) for s in all_spans if s["name"] == "evaluation feedback"]
    assert len(calls) == 60
    by_task = {name: sum(1 for c in calls if c.get("otel_claude.task") == name) for name in summary.per_task}
    assert by_task == {name: stats.calls for name, stats in summary.per_task.items()}
    # Only the calls a user scores get feedback (a few percent on the default scenario), each with its score.
    scored = [job for job in plan_jobs(load_scenario(), 60, seed=1, stream_share=0.5) if job.feedback is not None]
    assert len(feedback) == len(scored) < 60
    answered = {c["gen_ai.response.id"]: c["otel_claude.task"] for c in calls}
    assert all(answered[f["gen_ai.response.id"]] == f["otel_claude.task"] for f in feedback)
    cost = sum(float(c["otel_claude.cost_usd"]) for c in calls)
    assert cost == pytest.approx(summary.overall.cost_usd, rel=1e-6)


def test_same_seed_same_run(sim: SimServer) -> None:
    first = run_workload(sim.base_url, "default", calls=30, workers=3, seed=7, instrument=False)
    second = run_workload(sim.base_url, "default", calls=30, workers=3, seed=7, instrument=False)
    key = [(r.task, r.output_tokens, r.correct) for r in first.records]
    assert key == [(r.task, r.output_tokens, r.correct) for r in second.records]


def test_jobs_follow_shares_and_baseline() -> None:
    scenario = load_scenario()
    jobs = plan_jobs(scenario, 2000, seed=0, stream_share=0.3)
    share = sum(job.task == "classify" for job in jobs) / len(jobs)
    assert abs(share - scenario.tasks["classify"].share) < 0.04
    first_turns = [job for job in jobs if job.turn == 1]
    assert all(job.body["model"] == "claude-sonnet-4-6" and job.body["max_tokens"] == 4096 for job in first_turns)
    assert all(job.body is None for job in jobs if job.turn > 1)  # built from the conversation when sent
    assert not any("cache_control" in json.dumps(job.body) for job in first_turns[:50])
    assert 0.25 < sum(job.stream for job in jobs) / len(jobs) < 0.35
    assert [job.at for job in jobs] == sorted(job.at for job in jobs)


def test_a_failed_turn_ends_its_session(tmp_path: Path) -> None:
    scenario = load_scenario("chat")
    faults = [{"kind": "api_error", "probability": 0.1, "count": None}]
    with SimServer(scenario=scenario, seed=0, record=False, faults=faults) as sim:
        summary = run_workload(sim.base_url, scenario, calls=200, workers=4, seed=0, max_retries=0,
                               instrument=False)
    errors = [r for r in summary.records if r.error]
    assert errors and summary.overall.calls < 200  # the turns after a failed one were never sent


def test_cli_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.jsonl"
    assert main(["--sim", "--latency-scale", "0", "--calls", "20", "--workers", "2", "--out", str(out), "--json",
                 "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["overall"]["calls"] == 20
    assert out.stat().st_size > 0


def test_cli_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--sim", "--stream-share", "2"])
    assert exit_info.value.code == 2
    assert "--stream-share: must be in [0, 1], got 2" in capsys.readouterr().err


def test_the_driver_grades_prose_pairs_by_their_answers(sim: SimServer, tmp_path: Path) -> None:
    """Paired evaluation of a prose task (summarize: the two models word their answers differently): the driver's
    user grader settles the pairs that give the same answer; without it, nothing cheaper than a judge would."""
    policy = {"schema_version": 1, "version": "eval", "rules": [
        {"task": "summarize", "evaluate": {"model": "claude-haiku-4-5", "share": 0.5, "budget": 1.0}}]}
    labels: dict[bool, dict[str, int]] = {}
    for graders in (True, False):
        out = tmp_path / f"spans-{graders}.jsonl"
        run_workload(sim.base_url, "default", calls=160, workers=4, out=str(out), seed=3, policy=policy,
                     graders=graders)
        found: dict[str, int] = {}
        for span in spans(out):
            if span["name"] == "evaluation pairwise":
                attrs = attributes(span)
                key = f"{attrs['gen_ai.evaluation.name']}:{attrs['gen_ai.evaluation.score.label']}"
                found[key] = found.get(key, 0) + 1
        labels[graders] = found
    assert labels[True].get("same_answer:agree", 0) > 0
    assert set(labels[True]) <= {"same_answer:agree", "same_answer:unsettled", "exact:agree"}
    assert "same_answer:agree" not in labels[False] and labels[False].get("exact:unsettled", 0) > 0
