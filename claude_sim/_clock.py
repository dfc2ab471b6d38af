"""Scenario time: one clock that the simulator and the workload driver share.

A scenario says when calls arrive (arrival rates, bursts, a daily cycle, user think time, feedback delays) in
*scenario seconds*. Everything time-dependent reads this clock: the simulator's cache TTLs and rate-limit buckets,
the driver's schedule, and the start times of the spans the driver exports (so the reuse gaps and feedback delays a
tuner reads from spans are the scenario's, not the run's).

    scenario time = start + skipped + (wall - wall0) * speed

- `speed` maps wall time to scenario time: 1 is a live run with real waits; 3600 runs a scenario hour per second.
- `fast_forward`: when the driver asks for a time that has not come yet, the clock jumps there (`skipped` grows)
  instead of making it wait, so idle time costs nothing and a scenario day runs as fast as the calls can be made.
  With `speed=0` time moves *only* by jumps: a discrete-event clock whose readings do not depend on how fast the
  machine is (tests, and the runs the oracle is checked against).
- `epoch` is the unix time of scenario time 0: by default UTC midnight of the day the clock is made, so scenario
  hour-of-day is the UTC hour (a daily cycle peaks at the hour it says). `start` is the scenario time at creation:
  by default, for a real-time clock, the time of day (scenario time is then the wall time itself at `speed=1`); for
  a fast-forward clock, noon of the day before, so the driver's first run (which starts at the first scenario
  midnight at least an hour after the clock's reading: every cache entry of earlier traffic has expired) starts
  at the epoch, today at 00:00 UTC.
- The simulator converts a wait it asks a client for (a 429's `retry-after`) with `wall_seconds`, so the SDK's real
  retry sleep lasts the scenario wait.
- Durations are never rescaled: a call's duration and time to first token are what the simulator's latency model
  made them (at its own `latency_scale`); only start times are mapped (`unix_ns`).

Jumps are kept as a history, so a wall time read before a later jump still maps to the scenario time it had then
(spans are exported in batches, after the clock has moved on).

Concurrent runs stay on time because each call carries its planned time (`x-sim-time`): a simulator stamps a call
with it (cache, rate limits) instead of reading the clock, and one sharing the driver's clock (in-process) takes the
calls in plan order (`Sequencer`, `x-sim-seq`), whatever order their threads reach it in; replies (latency,
streams) still overlap. A repeated call (an SDK retry, a safety-net retry, a shadow call with the same headers) is
stamped at its planned time or the clock's, whichever is later. Spans carry the planned time of the call they
belong to (see `_span_time`).
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from bisect import bisect_right
from collections.abc import Callable

__all__ = ["DAY", "RUN_GAP", "ScenarioClock", "Sequencer", "next_day", "run_start"]

DAY = 86_400.0
RUN_GAP = 3600.0  # the longest cache TTL: a run this long after earlier traffic finds nothing of it cached
_HISTORY = 100_000  # jumps remembered for mapping past wall times


def next_day(t: float) -> float:
    """The first scenario midnight at or after `t`."""
    return math.ceil(t / DAY) * DAY


def run_start(clock: ScenarioClock) -> float:
    """Where a driver's run begins: now on a real-time clock; on a fast-forward clock the first midnight at least
    `RUN_GAP` later, so runs are independent and start at the same phase of a daily cycle."""
    return next_day(clock() + RUN_GAP) if clock.fast_forward else clock()


class ScenarioClock:
    """A thread-safe scenario clock; calling it returns the current scenario time in seconds."""

    def __init__(self, speed: float = 1.0, *, fast_forward: bool = True, wall: Callable[[], float] = time.time,
                 epoch: float | None = None, start: float | None = None) -> None:
        if not math.isfinite(speed) or speed < 0 or (speed == 0 and not fast_forward):
            raise ValueError(f"speed must be > 0 (or 0 with fast_forward), got {speed!r}")
        self.speed = float(speed)
        self.fast_forward = fast_forward
        self._wall = wall
        self._wall0 = wall()
        # Unix seconds of scenario time 0: midnight (UTC) of the day the clock was made, unless given.
        self.epoch = float(epoch) if epoch is not None else math.floor(self._wall0 / DAY) * DAY
        if start is None:
            start = -DAY / 2 if fast_forward else self._wall0 - self.epoch
        self._start = float(start)
        self._lock = threading.Lock()
        self._jump_walls: list[float] = []
        self._jump_totals: list[float] = []  # skipped seconds in total after each jump
        self._forgotten = 0.0  # the total after the last jump dropped from the history
        self.sequence = Sequencer()

    def __call__(self) -> float:
        return self.at_wall(self._wall())

    def at_wall(self, wall: float) -> float:
        """The scenario time the clock read (or will read, barring jumps) at a wall time in unix seconds."""
        with self._lock:
            index = bisect_right(self._jump_walls, wall)
            skipped = self._jump_totals[index - 1] if index else self._forgotten
        return self._start + skipped + (wall - self._wall0) * self.speed

    def advance_to(self, t: float) -> float:
        """Ask for scenario time `t`: the wall seconds still to wait (0 once it has come, or after a jump)."""
        with self._lock:
            wall = max(self._wall(), self._jump_walls[-1] if self._jump_walls else -math.inf)
            skipped = self._jump_totals[-1] if self._jump_totals else 0.0
            ahead = t - (self._start + skipped + (wall - self._wall0) * self.speed)
            if ahead <= 0:
                return 0.0
            if not self.fast_forward:
                return ahead / self.speed
            self._jump_walls.append(wall)
            self._jump_totals.append(skipped + ahead)
            if len(self._jump_walls) > 2 * _HISTORY:
                # Bounded for a long-lived simulator: spans are mapped seconds after they end, not days.
                self._forgotten = self._jump_totals[-_HISTORY - 1]
                del self._jump_walls[:-_HISTORY], self._jump_totals[:-_HISTORY]
            return 0.0

    def wall_seconds(self, scenario_seconds: float) -> float:
        """How long a client really waits for `scenario_seconds` to pass (0 on a clock that only jumps)."""
        return scenario_seconds / self.speed if self.speed > 0 else 0.0

    def unix_ns(self, wall_ns: int) -> int:
        """A wall timestamp (as OpenTelemetry records it) as the unix time of the scenario moment it belongs to."""
        return round((self.epoch + self.at_wall(wall_ns / 1e9)) * 1e9)


class Sequencer:
    """Turns for calls sent concurrently: call n meets the clock only after every call numbered below n has."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(6)  # names it in `x-sim-seq`, so only a simulator sharing it waits
        self._lock = threading.Lock()
        self._issued = 0
        self._low = 1  # every ticket below this is done
        self._done: set[int] = set()
        self._waiters: dict[int, list[Callable[[], None]]] = {}

    def ticket(self) -> int:
        with self._lock:
            self._issued += 1
            return self._issued

    def done(self, ticket: int) -> None:
        """The call has met the clock, or ended without reaching it; twice is harmless."""
        with self._lock:
            if ticket >= self._low:
                self._done.add(ticket)
            while self._low in self._done:
                self._done.remove(self._low)
                self._low += 1
            due = [n for n in self._waiters if n <= self._low]
            callbacks = [callback for n in due for callback in self._waiters.pop(n)]
        for callback in callbacks:
            callback()

    def is_done(self, ticket: int) -> bool:
        with self._lock:
            return ticket < self._low or ticket in self._done

    def is_due(self, ticket: int) -> bool:
        """Every call numbered below `ticket` is done."""
        with self._lock:
            return ticket <= self._low

    def when_due(self, ticket: int, callback: Callable[[], None]) -> None:
        """Call `callback` (now, or from whichever thread finishes the last earlier call) once every earlier call
        is done."""
        with self._lock:
            if ticket > self._low:
                self._waiters.setdefault(ticket, []).append(callback)
                return
        callback()
