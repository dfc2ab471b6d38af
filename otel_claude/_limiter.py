"""One admission limiter: bounded in-flight calls and paced requests / input tokens / output tokens, shared by every
thread and every asyncio task (of any event loop) of the process.

Design, and why:
- One lock guards all state and is held for microseconds only (never across a wait), so the async path may take it
  without blocking its loop in any way that matters. It is re-entrant because a call can end inside it: an
  allocation there may run the garbage collector, whose finalizer of an abandoned stream ends that stream's call
  and releases its admission on the same thread. Every step under the lock only adds to counters and levels, so a
  release landing in the middle of another step leaves both correct.
- Waiters queue FIFO and take capacity themselves, under the lock, only when they are at the head: nobody hands a
  slot to a waiter that may already be gone, so a cancelled or timed-out waiter never holds anything, and a new
  caller never overtakes a queued one (no starvation). Whoever changes what fits (an admission, a release, a
  reload, a departing head) wakes the head; the head alone sleeps until its tokens refill.
- Threads wait on their own `threading.Event`; asyncio tasks await a future of their own loop, woken with
  `call_soon_threadsafe`, so a release in any thread or loop wakes them without blocking anyone.
- Token buckets model the API's limits: they refill continuously, a call is charged at admission (output tokens
  at its `max_tokens`, as the API does) and corrected when it ends. A bucket starts with one second of capacity and
  grows to what the server's `remaining` headers show it holds, so bursts pass only as far as the server would
  let them. Each response's `remaining`, aged to the present, also sets the bucket's level, so processes sharing
  an account stay in step and a bucket that just grew is as full as the server's; when adaptive, headers supply
  the limit itself where the policy gives none.
- Adaptive concurrency is AIMD: +1/window per call that succeeded while latency held (only while the window is in
  use), x0.5 once per congestion event (429/529, a retried call, or little headroom left on a limit no bucket
  paces). A decrease answers only calls admitted since the previous one, so one burst of 429s halves once.
- Fork: the child gets fresh locks and forgets the parent's in-flight calls and other threads' waiters; tickets
  from before the fork are ignored when released.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

from .policy import Limit

__all__ = ["KINDS", "Limiter", "LimiterState", "Reading", "Ticket"]

KINDS = ("requests", "input_tokens", "output_tokens")
REQUESTS, INPUT, OUTPUT = range(3)
Charge = tuple[float, float, float]
# (per-minute limit, remaining) of one kind, from response headers; None where a header was absent.
Reading = tuple["int | None", "int | None"]

_UNBOUNDED = 1_000_000
_FIRST_BURST_S = 1.0  # a bucket's capacity, in seconds of its rate, until the server shows it holds more
_DECREASE = 0.5
_LOW_HEADROOM = 0.05  # remaining / limit below this, on a limit no bucket paces, counts as congestion
_LATENCY_HOLD = 1.5  # no increase while recent latency is this far above its long-run level
_FAST, _SLOW = 0.2, 0.02  # EWMA weights of recent and long-run latency
_RETIRED = Limit(adaptive=False, max_wait=0.0)  # what a limiter becomes when its policy entry goes away

_monotonic = time.monotonic
_generation = 0  # fork count: tickets taken before a fork are not released in the child
_LIMITERS: weakref.WeakSet[Limiter] = weakref.WeakSet()


class _Bucket:
    __slots__ = ("capacity", "level", "net", "per_minute", "rate", "updated")

    def __init__(self, per_minute: float, now: float) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(self.rate * _FIRST_BURST_S, 1.0)
        self.level = self.capacity
        self.updated = now
        self.net = 0.0  # charges minus corrections so far: ages a response's `remaining` to the present

    def set_rate(self, per_minute: float, now: float) -> None:
        self.refill(now)
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(min(self.capacity, per_minute), self.rate * _FIRST_BURST_S, 1.0)
        self.level = min(self.level, self.capacity)

    def refill(self, now: float) -> None:
        if now > self.updated:
            level = self.level + (now - self.updated) * self.rate
            self.level = level if level < self.capacity else self.capacity
            self.updated = now


class Ticket:
    """One admitted call's claim: what it was charged, from which buckets, and when."""

    __slots__ = ("admitted", "buckets", "charge", "epoch", "generation", "limiter", "marks", "queued", "released")

    def __init__(self, limiter: Limiter, charge: Charge, admitted: float, buckets: tuple[_Bucket | None, ...],
                 marks: list[float], epoch: int, queued: bool) -> None:
        self.limiter = limiter
        self.queued = queued  # False: admitted on arrival, without waiting
        self.charge = charge
        self.admitted = admitted
        self.buckets = buckets
        self.marks = marks  # each bucket's `net` just after this call was charged
        self.epoch = epoch
        self.generation = _generation
        self.released = False


class LimiterState(NamedTuple):
    """A consistent snapshot for metrics."""

    in_flight: int
    queued: int
    concurrency: int | None  # the window in force; None when unbounded
    per_minute: tuple[float | None, float | None, float | None]  # rates paced per kind, None when not paced
    admitted_now: int
    admitted_after_wait: int
    timeouts_proceeded: int
    timeouts_failed: int
    wait_seconds: float
    rate_limited: int  # 429s seen (each attempt)
    overloaded: int  # 529s seen (each attempt)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _ThreadWaiter:
    __slots__ = ("event", "thread")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.thread = threading.get_ident()

    def wake(self) -> None:
        self.event.set()


class _TaskWaiter:
    __slots__ = ("future", "loop", "thread")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] | None = None
        self.thread = threading.get_ident()

    def wake(self) -> None:
        future = self.future
        if future is not None and not future.done():
            self.loop.call_soon_threadsafe(_resolve, future)  # RuntimeError once the loop is closed


_Waiter = _ThreadWaiter | _TaskWaiter


class Limiter:
    def __init__(self, name: str, limit: Limit) -> None:
        self.name = name
        self._lock = threading.RLock()
        self._queue: deque[_Waiter] = deque()
        self._in_flight = 0
        self._window = float(_UNBOUNDED)
        self._allowed = _UNBOUNDED
        self._ceiling = _UNBOUNDED
        self._adaptive = False
        self._configured: tuple[int | None, ...] = (None, None, None)
        self._learned: list[int | None] = [None, None, None]
        # Replaced, never mutated: a ticket keeps the tuple it was charged from, without a copy per call.
        self._buckets: tuple[_Bucket | None, ...] = (None, None, None)
        self._paced: tuple[tuple[int, _Bucket], ...] = ()  # (kind, bucket) of the buckets in force
        self._epoch = 0
        self._hold_until = 0.0
        self._fast = self._slow = 0.0
        self._generation = _generation
        self._counts = [0, 0, 0, 0, 0, 0]  # now, after wait, timeout proceeded, timeout failed, 429, 529
        self._wait_seconds = 0.0
        _LIMITERS.add(self)
        self.configure(limit)

    # -- configuration -------------------------------------------------------------------------------------------

    def configure(self, limit: Limit) -> None:
        """Apply a (re)loaded policy entry; waiting calls are re-examined under the new limits at once."""
        with self._lock:
            # A window the limiter never had to lower follows the new ceiling, up or down; a lowered one keeps
            # what congestion taught it (under the new ceiling).
            untouched = self._window >= self._ceiling
            self._adaptive = limit.adaptive
            self._ceiling = limit.concurrency or _UNBOUNDED
            if not limit.adaptive or untouched or self._window > self._ceiling:
                self._set_window(float(self._ceiling))
            self._configured = limit.per_minute
            if limit is _RETIRED:
                self._learned = [None, None, None]
                self._hold_until = 0.0
            now = _monotonic()
            for kind in range(3):
                self._rebuild(kind, now)
            self._wake_head()

    def retire(self) -> None:
        """The policy no longer limits these calls: everything waiting goes now."""
        self.configure(_RETIRED)

    def _rebuild(self, kind: int, now: float) -> None:
        configured = self._configured[kind]
        learned = self._learned[kind] if (self._adaptive or configured is not None) else None
        rates = [r for r in (configured, learned) if r]
        per_minute = min(rates) if rates else None
        buckets = list(self._buckets)
        bucket = buckets[kind]
        if per_minute is None:
            buckets[kind] = None
        elif bucket is None:
            buckets[kind] = _Bucket(per_minute, now)
        elif bucket.per_minute != per_minute:
            bucket.set_rate(per_minute, now)
        self._buckets = tuple(buckets)
        self._paced = tuple((k, b) for k, b in enumerate(buckets) if b is not None)

    def _set_window(self, window: float) -> None:
        self._window = window
        self._allowed = max(1, int(window))

    # -- admission -------------------------------------------------------------------------------------------------

    def _ready(self, now: float, charge: Charge) -> float | None:
        """0.0 when `charge` may go now, else seconds until it may (None: only a release can make room)."""
        if self._in_flight >= self._allowed:
            return None
        wait = self._hold_until - now if now < self._hold_until else 0.0
        # Refill inlined: this loop runs for every admission. A call larger than a whole bucket goes when it is full.
        for kind, bucket in self._paced:
            capacity = bucket.capacity
            if now > bucket.updated:
                level = bucket.level + (now - bucket.updated) * bucket.rate
                bucket.level = level = level if level < capacity else capacity
                bucket.updated = now
            else:
                level = bucket.level
            need = charge[kind]
            if need > capacity:
                need = capacity
            if level < need and (need - level) / bucket.rate > wait:
                wait = (need - level) / bucket.rate
        return wait

    def _take(self, now: float, charge: Charge, queued: bool = True) -> Ticket:
        self._in_flight += 1
        marks = [0.0, 0.0, 0.0]
        for kind, bucket in self._paced:
            bucket.level -= charge[kind]
            bucket.net += charge[kind]
            marks[kind] = bucket.net
        return Ticket(self, charge, now, self._buckets, marks, self._epoch, queued)

    def _decide(self, waiter: _Waiter, charge: Charge, start: float, deadline: float
                ) -> tuple[Ticket | None, float | None]:
        """Under the lock: (ticket, 0) when `waiter` goes now; (None, seconds) to wait; (None, None) past the bound."""
        now = _monotonic()
        queue = self._queue
        head = bool(queue) and queue[0] is waiter
        if not head and waiter not in queue:  # dropped by a fork: wait in line again
            queue.append(waiter)
            head = queue[0] is waiter
        delay = None
        if head:
            delay = self._ready(now, charge)
            if delay == 0.0:
                queue.popleft()
                self._counts[1] += 1
                self._wait_seconds += now - start
                ticket = self._take(now, charge)
                self._wake_head()  # the next caller may fit as well
                return ticket, 0.0
        left = deadline - now
        if left <= 0:
            self._wait_seconds += now - start
            queue.remove(waiter)
            if head:
                self._wake_head()
            return None, None
        return None, (left if delay is None or delay > left else delay)

    def _wake_head(self) -> None:
        queue = self._queue
        while queue:
            try:
                queue[0].wake()
                return
            except RuntimeError:  # its event loop is closed: nobody will ever resume that waiter
                queue.popleft()

    def _leave(self, waiter: _Waiter) -> None:
        with self._lock:
            queue = self._queue
            if waiter in queue:
                head = queue[0] is waiter
                queue.remove(waiter)
                if head:
                    self._wake_head()

    def acquire(self, charge: Charge, max_wait: float) -> Ticket | None:
        """Block this thread until admitted (a ticket) or until `max_wait` seconds have passed (None)."""
        with self._lock:
            if not self._queue:
                now = _monotonic()
                if self._ready(now, charge) == 0.0:
                    self._counts[0] += 1
                    return self._take(now, charge, False)
            waiter = _ThreadWaiter()
            self._queue.append(waiter)
        start = _monotonic()
        deadline = start + max_wait
        try:
            while True:
                with self._lock:
                    ticket, timeout = self._decide(waiter, charge, start, deadline)
                    if timeout is None or ticket is not None:
                        return ticket
                    waiter.event.clear()
                waiter.event.wait(timeout)
        except BaseException:
            self._leave(waiter)
            raise

    async def acquire_async(self, charge: Charge, max_wait: float) -> Ticket | None:
        """As `acquire`, awaiting instead of blocking: the event loop runs on while the task waits."""
        with self._lock:
            if not self._queue:
                now = _monotonic()
                if self._ready(now, charge) == 0.0:
                    self._counts[0] += 1
                    return self._take(now, charge, False)
            loop = asyncio.get_running_loop()
            waiter = _TaskWaiter(loop)
            self._queue.append(waiter)
        start = _monotonic()
        deadline = start + max_wait
        try:
            while True:
                with self._lock:
                    ticket, timeout = self._decide(waiter, charge, start, deadline)
                    if timeout is None or ticket is not None:
                        return ticket
                    future = waiter.future = loop.create_future()
                timer = loop.call_later(timeout, _resolve, future)
                try:
                    await future
                finally:
                    timer.cancel()
        except BaseException:  # CancelledError included: leave the line holding nothing
            self._leave(waiter)
            raise

    def force(self, charge: Charge) -> Ticket:
        """Admit past the limits (the bound ran out and the policy says proceed): the call still counts."""
        with self._lock:
            self._counts[2] += 1
            return self._take(_monotonic(), charge)

    def refuse(self) -> None:
        """Count a call failed fast at the bound."""
        with self._lock:
            self._counts[3] += 1

    # -- feedback --------------------------------------------------------------------------------------------------

    def release(self, ticket: Ticket, *, congested: bool, latency: float | None,
                used: tuple[int | None, int | None], readings: Sequence[Reading] | None, outcome: bool) -> None:
        """The call ended. `used`: input and output tokens it really counted against the limits (None: unknown);
        `outcome`: False for a call whose ending says nothing about the limits (cancelled, a client error)."""
        if ticket.released or ticket.generation != self._generation or ticket.limiter is not self:
            return
        ticket.released = True
        now = _monotonic()
        with self._lock:
            self._in_flight -= 1
            try:
                if used[0] is not None or used[1] is not None:
                    self._correct(ticket, used)
                if readings:
                    # A retried call's reading is from a later admission than its ticket's: used as a 429's is.
                    congested = self._sync(ticket, readings, now, None if congested else ticket.admitted) or congested
                if self._adaptive and (outcome or congested):
                    self._adapt(ticket, congested, latency)
            finally:
                if self._queue:
                    self._wake_head()

    def congestion(self, ticket: Ticket, status: int, readings: Sequence[Reading] | None,
                   retry_after: float | None) -> None:
        """A 429 or 529 on one attempt of an admitted call (the SDK is about to retry it)."""
        if ticket.generation != self._generation or ticket.limiter is not self:
            return
        now = _monotonic()
        with self._lock:
            self._counts[4 if status == 429 else 5] += 1
            if readings:
                self._sync(ticket, readings, now, None)
            if status == 429 and retry_after and not self._paced:
                # Nothing paces this limit: hold new calls as long as the server asks this one to wait.
                self._hold_until = max(self._hold_until, now + min(retry_after, 60.0))
            if self._adaptive:
                self._decrease(ticket.epoch)

    def _correct(self, ticket: Ticket, used: tuple[int | None, int | None]) -> None:
        buckets = self._buckets
        for kind in (INPUT, OUTPUT):
            bucket = buckets[kind]
            actual = used[kind - 1]
            if bucket is None or actual is None or ticket.buckets[kind] is not bucket:
                continue
            # No refill first: adding before or after it gives the same capped level (to within the refill when a
            # full bucket is charged more than estimated).
            extra = ticket.charge[kind] - actual
            level = bucket.level + extra
            bucket.level = level if level < bucket.capacity else bucket.capacity
            bucket.net -= extra

    def _sync(self, ticket: Ticket, readings: Sequence[Reading], now: float, measured: float | None) -> bool:
        """Learn limits and bring buckets to the server's level; True when a limit without a bucket runs low.

        `measured`: when the server read its `remaining` (this call's admission), to age the reading to now; the
        bucket then follows it up or down. None: read just now on a 429, which only ever lowers a bucket.
        """
        low = False
        learned = self._learned
        buckets = self._buckets
        kind = -1
        for per_minute, remaining in readings:  # runs on every release with headers: kept lean
            kind += 1
            if per_minute and per_minute != learned[kind]:
                learned[kind] = per_minute
                self._rebuild(kind, now)
                buckets = self._buckets
            if remaining is None:
                continue
            bucket = buckets[kind]
            if bucket is None:
                low = low or bool(per_minute and remaining < per_minute * _LOW_HEADROOM)
                continue
            # The server held remaining + this call's charge just before admitting it: its bucket is that large.
            seen = remaining + ticket.charge[kind]
            if seen > bucket.capacity:
                bucket.capacity = seen if seen < bucket.per_minute else bucket.per_minute
            if measured is None:
                bucket.refill(now)
                if remaining < bucket.level:
                    bucket.level = remaining
                continue
            # Age the reading: refill since the server read it, less what this process admitted (net of what came
            # back) since. Other processes' use in that time is the error left, and the next response corrects it.
            estimate = remaining + bucket.rate * (now - measured if now > measured else 0.0)
            if ticket.buckets[kind] is bucket:
                estimate -= bucket.net - ticket.marks[kind]
            bucket.level = estimate if estimate < bucket.capacity else bucket.capacity
            if now > bucket.updated:  # the level is as of now: no refill owed for the time before
                bucket.updated = now
        return low

    def _adapt(self, ticket: Ticket, congested: bool, latency: float | None) -> None:
        if congested:
            self._decrease(ticket.epoch)
            return
        if latency is not None and latency >= 0:
            self._fast = latency if not self._fast else self._fast + _FAST * (latency - self._fast)
            self._slow = latency if not self._slow else self._slow + _SLOW * (latency - self._slow)
            if self._fast > self._slow * _LATENCY_HOLD:
                return
        # Grow only a window in use (this call was in flight with the others): idle capacity proves nothing.
        if self._window < self._ceiling and self._in_flight + 1 >= self._window / 2:
            self._set_window(min(float(self._ceiling), self._window + 1.0 / self._window))

    def _decrease(self, epoch: int) -> None:
        if epoch != self._epoch:  # admitted before the last decrease: that congestion was answered already
            return
        self._epoch += 1
        self._set_window(max(1.0, min(self._window, self._in_flight + 1) * _DECREASE))

    # -- observation and fork ----------------------------------------------------------------------------------------

    def state(self) -> LimiterState:
        with self._lock:
            counts = self._counts
            return LimiterState(
                self._in_flight,
                len(self._queue),
                self._allowed if self._allowed < _UNBOUNDED else None,
                tuple(b.per_minute if b is not None else None for b in self._buckets),  # type: ignore[arg-type]
                counts[0], counts[1], counts[2], counts[3], self._wait_seconds, counts[4], counts[5],
            )

    def _after_fork(self, thread: int) -> None:
        self._lock = threading.RLock()
        self._in_flight = 0
        self._generation = _generation
        self._queue = deque(w for w in self._queue if w.thread == thread)


def _after_fork_in_child() -> None:
    global _generation
    _generation += 1
    thread = threading.get_ident()
    for limiter in list(_LIMITERS):
        limiter._after_fork(thread)


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
