"""What the tuner carries from one tuning window to the next (`otel-claude tune --state FILE`).

Each window's spans are new evidence; the state holds what earlier windows established, so that
- quality evidence accumulates (anytime-valid sequences continue where they stood; see `_evidence`), and a
  candidate already shown worse is not evaluated again;
- a route the tuner proved is kept, with the bound that justified it (a later move must fit in what is left of
  the margin, so losses cannot compound beyond it);
- the cap in force is the one the last policy set, not the most common value in the data.

The file is JSON, written atomically (a temporary file renamed over the old one), with a schema number; a file
from another schema or a damaged one is refused with a one-line error naming it, never silently reset.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["STATE_SCHEMA", "StateError", "TaskMemory", "TunerState"]

STATE_SCHEMA = 1


class StateError(ValueError):
    """A state file that cannot be used; the message names it."""


@dataclass
class TaskMemory:
    """One task's carried decisions and evidence."""

    evidence: dict[str, Any] = field(default_factory=dict)  # TaskEvidence.state()
    route: str | None = None  # the model the last policy sends this task to (None: the callers' own)
    route_low: float | None = None  # the lower gap bound vs the callers' model that justified the route
    max_tokens: int | None = None  # the cap the last policy set
    rejected: list[str] = field(default_factory=list)  # candidates shown worse than the margin
    buckets: dict[str, Any] = field(default_factory=dict)  # input-size range -> its TaskEvidence.state()

    def to_json(self) -> dict[str, Any]:
        return {"evidence": self.evidence, "route": self.route, "route_low": self.route_low,
                "max_tokens": self.max_tokens, "rejected": sorted(self.rejected), "buckets": self.buckets}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskMemory:
        return cls(evidence=dict(data.get("evidence") or {}), route=data.get("route"),
                   route_low=data.get("route_low"), max_tokens=data.get("max_tokens"),
                   rejected=list(data.get("rejected") or []), buckets=dict(data.get("buckets") or {}))


@dataclass
class TunerState:
    tasks: dict[str, TaskMemory] = field(default_factory=dict)
    windows: int = 0  # tuning runs that fed this state
    policy_version: str | None = None  # the policy the last run wrote

    def task(self, name: str) -> TaskMemory:
        found = self.tasks.get(name)
        if found is None:
            found = self.tasks[name] = TaskMemory()
        return found

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TunerState:
        """The state at `path`, or a fresh one when the file does not exist yet (the first window)."""
        target = Path(path)
        if not target.exists():
            return cls()
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise StateError(f"{target}: cannot read tuner state: {err}") from None
        if not isinstance(data, dict) or data.get("schema") != STATE_SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise StateError(f"{target}: not a tuner state of schema {STATE_SCHEMA} (found {found!r})")
        try:
            tasks = {str(name): TaskMemory.from_json(value) for name, value in data.get("tasks", {}).items()}
            return cls(tasks=tasks, windows=int(data.get("windows", 0)), policy_version=data.get("policy_version"))
        except (TypeError, ValueError, AttributeError) as err:
            raise StateError(f"{target}: damaged tuner state: {err}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        target = Path(path)
        document = {
            "schema": STATE_SCHEMA,
            "windows": self.windows,
            "policy_version": self.policy_version,
            "tasks": {name: memory.to_json() for name, memory in sorted(self.tasks.items())},
        }
        text = json.dumps(document, separators=(",", ":"), sort_keys=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
