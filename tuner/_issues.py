"""Skipped input: counted in full, with a bounded list of located examples for the report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class TraceInputError(ValueError):
    """Input that is not trace data at all (or cannot be opened); the message names the file."""


@dataclass
class Issues:
    limit: int = 20
    counts: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def skip(self, kind: str, where: str, reason: str) -> None:
        self.counts[kind] += 1
        if len(self.examples) < self.limit:
            self.examples.append(f"{where}: {reason}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def describe(err: Exception) -> str:
    """A skip reason from the exception a reader caught (a KeyError alone prints only the key)."""
    if isinstance(err, KeyError):
        return f"missing field {err}"
    return str(err) or type(err).__name__
