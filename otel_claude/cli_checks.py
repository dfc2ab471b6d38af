"""Checks the command-line tools (`otel-claude tune`, `otel-claude workload`) make before doing any work.

A run that cannot write its result must say so at once, in one line, with exit status 2, not after the whole
analysis in a traceback (or, worse, having written half of what was asked).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["unwritable"]


def unwritable(path: str | os.PathLike[str], *, creates_directories: bool = False) -> str | None:
    """Why `path` cannot be written as an output file, or None when it can. Nothing is created.

    `creates_directories`: the writer makes missing parent directories itself, so the nearest existing ancestor
    must be a writable directory rather than the parent.
    """
    target = Path(path)
    if target.is_dir():
        return f"{target}: is a directory"
    if target.exists():
        return None if os.access(target, os.W_OK) else f"{target}: not writable"
    parent = target.parent
    if creates_directories:
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    if not parent.exists():
        return f"{target}: directory {parent} does not exist"
    if not parent.is_dir():
        return f"{target}: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{target}: directory {parent} is not writable"
    return None
