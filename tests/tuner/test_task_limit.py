"""Free-text task labels cannot grow the tuner's memory without bound: labels past the limit are folded."""

from __future__ import annotations

from pathlib import Path

import pytest

import tuner._records as records
import tuner.synthetic as syn
from tuner._ingest import load_dataset
from tuner._tune import TuneOptions, decide_all


def test_labels_past_the_limit_are_folded_and_not_tuned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records, "MAX_TASKS", 40)
    t = 1_800_000_000 * 10**9
    spans = [syn.call(start_ns=t + i * 10**9, model="claude-sonnet-4-6", output_tokens=50, task=f"user-{i}")
             for i in range(300)]
    dataset, _ = load_dataset([str(syn.write_otlp(tmp_path / "labels.jsonl", spans))])
    tasks = dataset.tasks()
    assert len(tasks) == 41 and records.UNTRACKED in tasks  # 40 labels kept, the rest share one bucket
    assert sum(m.calls for m in dataset.for_task(records.UNTRACKED)) == 300 - 40
    decided = {d.task for d in decide_all(dataset, TuneOptions())}
    assert records.UNTRACKED not in decided and len(decided) == 40
