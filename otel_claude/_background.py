"""Where evaluation work runs: never on the caller's path, never unbounded, never across a fork.

Sync clients: a few daemon worker threads, started on first use, fed from a bounded queue. Async clients: a task on
the caller's running loop. A task rather than a thread because an async client's connection pool belongs to its
loop: a worker thread would need its own loop and its own client, and work on the caller's loop is only awaiting
HTTP plus a grader's microseconds. In both cases a job that finds the bound reached is dropped and counted, never
queued without limit. After a fork the child starts with no workers, no queue and fresh locks
(`os.register_at_fork`); `close()` drops what waits, cancels async jobs and stops the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from ._safety import report_failure

__all__ = ["Background"]

_all: weakref.WeakSet[Background] = weakref.WeakSet()


class Background:
    def __init__(self, workers: int = 2, max_pending: int = 64) -> None:
        self._max_workers = workers
        self._max_pending = max_pending
        self._reset(closed=False)
        _all.add(self)

    def _reset(self, closed: bool) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Callable[[], None]] = deque()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._running = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = closed

    # -- submitting ------------------------------------------------------------------------------------------------

    def run_in_thread(self, job: Callable[[], None]) -> str | None:
        """Queue `job` for a worker thread; None, or why nothing was queued (`shutdown`, `queue_full`)."""
        with self._cond:
            if self.closed:
                return "shutdown"
            if len(self._queue) >= self._max_pending:
                return "queue_full"
            self._queue.append(job)
            if self._idle == 0 and len(self._threads) < self._max_workers:
                thread = threading.Thread(target=self._work, name="otel-claude-evaluation", daemon=True)
                self._threads.append(thread)
                thread.start()
            else:
                self._cond.notify()
        return None

    def run_on_loop(self, make: Callable[[], Coroutine[Any, Any, None]]) -> str | None:
        """Start `make()` as a task on the running loop; None, or why not (`shutdown`, `queue_full`, `no_loop`:
        an async client's call ended outside its loop, e.g. collected from another thread)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return "no_loop"
        with self._cond:
            if self.closed:
                return "shutdown"
            if len(self._tasks) >= self._max_pending:
                return "queue_full"
            task = loop.create_task(make())
            self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return None

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        with self._cond:
            self._tasks.discard(task)
            self._cond.notify_all()

    # -- waiting ---------------------------------------------------------------------------------------------------

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job waits or runs (False if `timeout` passed first). Not from a loop with jobs of its own:
        use `wait_idle_async` there."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._running and not self._tasks, timeout)

    async def wait_idle_async(self) -> None:
        """Await this loop's jobs, then wait (off the loop) for the rest."""
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                mine = [task for task in self._tasks if task.get_loop() is loop and task is not asyncio.current_task()]
            if not mine:
                break
            await asyncio.wait(mine)
        await asyncio.to_thread(self.wait_idle)

    # -- the workers -----------------------------------------------------------------------------------------------

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                while not self._queue and not self.closed:
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                if self.closed:
                    if me in self._threads:
                        self._threads.remove(me)
                    return
                job = self._queue.popleft()
                self._running += 1
            try:
                job()
            except Exception:
                report_failure("running an evaluation job")
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()

    # -- stopping --------------------------------------------------------------------------------------------------

    def close(self, timeout: float = 0.0) -> list[Callable[[], None]]:
        """Stop taking work, cancel async jobs, let the workers finish the job in hand and exit (waiting at most
        `timeout` for them; by default not at all: a shadow call in flight ends on its own, traced, and its job
        stops there); returns the jobs that never started."""
        with self._cond:
            self.closed = True
            dropped = list(self._queue)
            self._queue.clear()
            threads, tasks = list(self._threads), list(self._tasks)
            self._cond.notify_all()
        for task in tasks:
            with contextlib.suppress(RuntimeError):  # its loop is closed: the task is gone with it
                task.get_loop().call_soon_threadsafe(task.cancel)
        for thread in threads:
            if timeout > 0 and thread is not threading.current_thread():
                thread.join(timeout)
        return dropped

    def threads(self) -> list[threading.Thread]:
        with self._cond:
            return list(self._threads)


def _after_fork_in_child() -> None:
    # The parent's threads do not exist here, and a lock one of them held would stay held forever.
    for background in list(_all):
        background._reset(closed=background.closed)


os.register_at_fork(after_in_child=_after_fork_in_child)
