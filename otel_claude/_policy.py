"""Policy enforcement (placeholder until the policy engine lands)."""

from __future__ import annotations

from typing import Any


class PolicyEngine:
    @classmethod
    def from_source(cls, source: Any, **options: Any) -> PolicyEngine | None:
        return None
