"""A progress bar for the `otel-claude` commands (`tune`, `workload`, `demo`): tqdm's, with rate and ETA.

tqdm comes with the tuner and simulator extras, never with the instrumentor: this module imports it only when a bar
is shown, and shows none (doing nothing at all) when tqdm is missing or stderr is not a terminal, so logs and CI
output never fill with redrawn lines.

    with Progress(len(jobs), "workload", unit="call") as bar:
        for job in jobs:
            ...
            bar.update(1, errors=errors)
"""

from __future__ import annotations

import os
import sys
import threading
from types import TracebackType
from typing import Any

__all__ = ["Progress", "terminal"]


def terminal() -> bool:
    """Whether a bar would be seen: stderr is a terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def _terminal_sized() -> bool:
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return size.columns > 0 and size.lines > 0


class Progress:
    """A self-updating bar on stderr; thread-safe; a no-op when off.

    `enabled`: None (default) shows it when stderr is a terminal; False never; True whenever tqdm is installed.
    `unit_scale` shows 1.2M instead of 1234567 (for bytes). `delay` (s) hides a bar for work that ends sooner.
    """

    def __init__(self, total: float | None, description: str, *, unit: str = "it", unit_scale: bool = False,
                 enabled: bool | None = None, delay: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._bar: Any = None
        if enabled is None:
            enabled = terminal()
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        # A terminal that reports no size (some pseudo-terminals) gets no bar at all from tqdm: assume one.
        sized = _terminal_sized()
        self._bar = tqdm(total=total, desc=description, unit=unit, unit_scale=unit_scale, file=sys.stderr,
                         delay=delay, dynamic_ncols=sized, ncols=None if sized else 100,
                         nrows=None if sized else 20, leave=True)

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def update(self, n: float = 1, **fields: object) -> None:
        """Advance by `n`; `fields` (e.g. errors=3) are shown after the rate."""
        if self._bar is None:
            return
        with self._lock:
            if fields:
                self._bar.set_postfix(fields, refresh=False)
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is None:
            return
        with self._lock:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
