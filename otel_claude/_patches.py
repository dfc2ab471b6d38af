"""Patch bookkeeping: set attributes on SDK classes and put back exactly what each class had."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Patches"]

_MISSING = object()


class Patches:
    """Patches sit on classes, so clients created before `instrument()` are covered, and cached `with_raw_response`
    bound methods reach them too."""

    def __init__(self) -> None:
        self._saved: list[tuple[type, str, Any]] = []

    def patch(self, cls: type, name: str, make: Callable[[Any], Any]) -> None:
        """Replace `cls.name` by `make(current)`; `current` may be inherited, so restoring deletes ours instead."""
        original = cls.__dict__.get(name, _MISSING)
        self._saved.append((cls, name, original))
        setattr(cls, name, make(getattr(cls, name)))

    def restore(self) -> None:
        for cls, name, original in reversed(self._saved):
            if original is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
        self._saved.clear()
