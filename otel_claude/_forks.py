"""Fork safety: what a child forked from an instrumented process must re-create or reset.

`fork()` copies the memory of the whole process but only the thread that called it. A lock another thread held at
that moment stays held for ever in the child, a background thread (the policy poller) is simply gone, and in-process
sums carry the parent's totals. Pre-fork servers (gunicorn, uwsgi, celery prefork) instrument in the parent and
fork workers while other threads may be mid-call, so every lock on the call and export path, every thread and every
in-process total is rebuilt in the child, the way the OpenTelemetry SDK rebuilds its span processors.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Protocol

from ._safety import report_failure

__all__ = ["AfterFork", "on_fork_in_child", "register"]


class AfterFork(Protocol):
    def _after_fork_in_child(self) -> None: ...


# Objects are held weakly: os.register_at_fork cannot unregister, and an exporter or a policy source that the
# application dropped must not be kept alive (or revived in a child) by this registry.
_objects: weakref.WeakSet[AfterFork] = weakref.WeakSet()
_callbacks: list[Callable[[], None]] = []


def register(obj: AfterFork) -> None:
    """Run `obj._after_fork_in_child()` in every child forked while `obj` is alive."""
    _objects.add(obj)


def on_fork_in_child(callback: Callable[[], None]) -> None:
    """Run `callback()` in every child forked from now on (for module-level state, which lives for ever)."""
    _callbacks.append(callback)


def _in_child() -> None:
    # Module-level state first: instance hooks may take module-level locks.
    for callback in list(_callbacks):
        try:
            callback()
        except Exception:
            report_failure("re-initialising after fork")
    for obj in list(_objects):
        try:
            obj._after_fork_in_child()
        except Exception:
            report_failure("re-initialising after fork")


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_in_child)
