"""The limiter on its own, with real threads, event loops and a real fork: bounds, FIFO order, timeouts,
cancellation, reconfiguration while calls wait, buckets, header sync and AIMD. (End to end through the SDK:
test_admission.py.) Bucket arithmetic runs on a controlled clock; everything else on real time, asserting order and
counts, never elapsed seconds."""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from otel_claude import _limiter
from otel_claude._limiter import Limiter, Ticket
from otel_claude.policy import Limit

ONE = (1.0, 0.0, 0.0)  # a request with no tokens
GUARD_S = 60.0  # only a deadlock guard: never reached when the code works


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll for a state another thread reaches; the bound is a deadlock guard, not a timing assertion."""
    deadline = time.monotonic() + GUARD_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never reached: {what}")
        time.sleep(0.001)


def release(ticket: Ticket, *, congested: bool = False, used: tuple[int | None, int | None] = (None, None),
            readings: list[tuple[int | None, int | None]] | None = None, latency: float | None = 1.0) -> None:
    ticket.limiter.release(ticket, congested=congested, latency=latency, used=used, readings=readings, outcome=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock()
    monkeypatch.setattr(_limiter, "_monotonic", fake)
    yield fake


def _start_waiters(limiter: Limiter, count: int, out: queue.Queue, max_wait: float = GUARD_S) -> list[threading.Thread]:
    """Threads that each wait for admission, started one at a time so the queue order is their index order."""
    threads = []
    for index in range(count):
        before = limiter.state().queued
        thread = threading.Thread(target=lambda i=index: out.put((i, limiter.acquire(ONE, max_wait))), daemon=True)
        thread.start()
        wait_until(lambda b=before: limiter.state().queued == b + 1, f"waiter {index} queued")
        threads.append(thread)
    return threads


def test_threads_are_bounded_and_admitted_in_arrival_order() -> None:
    limiter = Limiter("t", Limit(concurrency=3, adaptive=False))
    held = [limiter.acquire(ONE, 0.0) for _ in range(3)]
    assert all(t is not None for t in held) and limiter.state().in_flight == 3
    admitted: queue.Queue = queue.Queue()
    threads = _start_waiters(limiter, 9, admitted)
    assert admitted.empty() and limiter.state().queued == 9
    order = []
    while len(order) < 9:
        release(held.pop(0))  # one slot frees: exactly the next in line goes
        index, ticket = admitted.get(timeout=GUARD_S)
        order.append(index)
        held.append(ticket)
        assert limiter.state().in_flight <= 3
    assert order == list(range(9))
    for thread in threads:
        thread.join(GUARD_S)
    state = limiter.state()
    assert state.queued == 0 and state.admitted_now == 3 and state.admitted_after_wait == 9


def test_a_wait_ends_at_its_bound_while_the_slot_is_still_held() -> None:
    limiter = Limiter("t", Limit(concurrency=1, adaptive=False))
    held = limiter.acquire(ONE, 0.0)
    assert limiter.acquire(ONE, 0.0) is None  # max_wait 0: never blocks
    assert limiter.acquire(ONE, 0.05) is None  # returns with the slot still taken: the bound, not a release, ended it
    assert limiter.state().in_flight == 1 and limiter.state().queued == 0
    forced = limiter.force(ONE)  # on_timeout: proceed still counts the call
    assert limiter.state().in_flight == 2
    release(forced)
    release(held)
    state = limiter.state()
    assert state.in_flight == 0 and state.timeouts_proceeded == 1 and state.wait_seconds > 0


def test_new_callers_do_not_overtake_a_waiting_one() -> None:
    limiter = Limiter("t", Limit(concurrency=1, adaptive=False))
    held = limiter.acquire(ONE, 0.0)
    admitted: queue.Queue = queue.Queue()
    _start_waiters(limiter, 1, admitted)
    release(held)
    _, first = admitted.get(timeout=GUARD_S)
    assert first is not None
    release(first)
    # Free again, nobody waiting: a new caller goes at once.
    assert limiter.acquire(ONE, 0.0) is not None


async def test_async_waiters_do_not_block_the_loop_and_wake_from_another_thread() -> None:
    limiter = Limiter("t", Limit(concurrency=1, adaptive=False))
    held = limiter.acquire(ONE, 0.0)
    tasks = [asyncio.create_task(limiter.acquire_async(ONE, GUARD_S)) for _ in range(50)]
    ticks = 0
    while limiter.state().queued < 50:  # the loop keeps running while 50 tasks wait
        ticks += 1
        await asyncio.sleep(0)
    for _ in range(100):
        ticks += 1
        await asyncio.sleep(0)
    assert not any(t.done() for t in tasks) and ticks >= 100
    # Released from a thread that is not the loop's: the head task is woken through call_soon_threadsafe.
    thread = threading.Thread(target=release, args=(held,))
    thread.start()
    thread.join(GUARD_S)
    for index in range(50):
        ticket = await asyncio.wait_for(tasks[index], GUARD_S)
        assert ticket is not None
        assert all(not t.done() for t in tasks[index + 1:])  # one at a time, in order
        release(ticket)
    assert limiter.state().in_flight == 0


async def test_cancelled_waiters_hold_nothing_and_lose_no_wakeup() -> None:
    limiter = Limiter("t", Limit(concurrency=1, adaptive=False))
    held = limiter.acquire(ONE, 0.0)
    first = asyncio.create_task(limiter.acquire_async(ONE, GUARD_S))
    second = asyncio.create_task(limiter.acquire_async(ONE, GUARD_S))
    third = asyncio.create_task(limiter.acquire_async(ONE, GUARD_S))
    while limiter.state().queued < 3:
        await asyncio.sleep(0)
    second.cancel()  # in the middle of the line
    with pytest.raises(asyncio.CancelledError):
        await second
    assert limiter.state().queued == 2 and limiter.state().in_flight == 1
    # The head is woken by the release, then cancelled before it runs: its wake-up must pass to the next in line.
    release(held)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    ticket = await asyncio.wait_for(third, GUARD_S)
    state = limiter.state()
    assert ticket is not None and state.in_flight == 1 and state.queued == 0 and state.admitted_after_wait == 1
    release(ticket)


def test_a_release_from_inside_the_lock_does_not_deadlock() -> None:
    # What a garbage-collector finalizer does when it ends an abandoned stream's call during an allocation made
    # while this thread holds the limiter's lock.
    limiter = Limiter("t", Limit(concurrency=1, adaptive=True))
    held = limiter.acquire(ONE, 0.0)
    done = threading.Event()

    def nested() -> None:
        with limiter._lock:
            release(held)
        done.set()

    thread = threading.Thread(target=nested, daemon=True)
    thread.start()
    assert done.wait(GUARD_S), "a release inside the lock deadlocked"
    assert limiter.state().in_flight == 0


@pytest.mark.parametrize("adaptive", [False, True])
def test_reconfiguring_admits_waiting_calls_at_once(adaptive: bool) -> None:
    limiter = Limiter("t", Limit(concurrency=1, adaptive=adaptive))
    held = limiter.acquire(ONE, 0.0)
    admitted: queue.Queue = queue.Queue()
    _start_waiters(limiter, 2, admitted)
    limiter.configure(Limit(concurrency=2, adaptive=adaptive))
    index, ticket = admitted.get(timeout=GUARD_S)
    assert index == 0 and ticket is not None and limiter.state().queued == 1
    limiter.retire()  # the policy dropped the limit: nothing waits any more
    index, ticket = admitted.get(timeout=GUARD_S)
    assert index == 1 and ticket is not None and limiter.state().concurrency is None
    release(held)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_starts_with_fresh_state_even_if_the_lock_was_held() -> None:
    limiter = Limiter("t", Limit(concurrency=1, adaptive=False))
    held = limiter.acquire(ONE, 0.0)
    admitted: queue.Queue = queue.Queue()
    _start_waiters(limiter, 1, admitted)
    locked, unlock = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with limiter._lock:
            locked.set()
            unlock.wait(GUARD_S)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    locked.wait(GUARD_S)
    pid = os.fork()
    if pid == 0:  # the child: the parent's call and waiter are not its own; the lock is a new one
        try:
            state = limiter.state()
            ticket = limiter.acquire(ONE, 0.0)
            ok = state.in_flight == 0 and state.queued == 0 and ticket is not None
            release(held)  # a ticket from before the fork changes nothing here
            ok = ok and limiter.state().in_flight == 1
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    unlock.set()
    holder.join(GUARD_S)
    deadline = time.monotonic() + GUARD_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        assert time.monotonic() < deadline, "forked child deadlocked"
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    release(held)
    assert admitted.get(timeout=GUARD_S)[1] is not None


def test_requests_are_paced_by_the_bucket(clock: Clock) -> None:
    limiter = Limiter("t", Limit(requests_per_minute=60, adaptive=False))  # 1 per second, 1 s of capacity
    assert limiter.acquire(ONE, 0.0) is not None
    assert limiter.acquire(ONE, 0.0) is None
    clock.now += 0.5
    assert limiter.acquire(ONE, 0.0) is None
    clock.now += 0.5
    assert limiter.acquire(ONE, 0.0) is not None


def test_output_tokens_are_charged_at_max_tokens_and_corrected_at_the_end(clock: Clock) -> None:
    limiter = Limiter("t", Limit(output_tokens_per_minute=600, adaptive=False))  # 10 tokens/s, 10 of capacity
    ticket = limiter.acquire((1.0, 0.0, 10.0), 0.0)
    assert ticket is not None
    assert limiter.acquire((1.0, 0.0, 5.0), 0.0) is None  # the whole max_tokens is reserved
    release(ticket, used=(None, 2))  # only 2 were used: 8 come back
    assert limiter.acquire((1.0, 0.0, 5.0), 0.0) is not None


def test_a_call_larger_than_the_bucket_goes_when_the_bucket_is_full(clock: Clock) -> None:
    limiter = Limiter("t", Limit(input_tokens_per_minute=600, adaptive=False))  # 10 tokens/s, 10 of capacity
    assert limiter.acquire((1.0, 50.0, 0.0), 0.0) is not None  # never admissible otherwise
    assert limiter.acquire((1.0, 1.0, 0.0), 0.0) is None  # the debt is paid before the next
    clock.now += 4.0
    assert limiter.acquire((1.0, 1.0, 0.0), 0.0) is None
    clock.now += 1.1
    assert limiter.acquire((1.0, 1.0, 0.0), 0.0) is not None


def test_headers_supply_the_limit_and_pull_the_bucket_down(clock: Clock) -> None:
    limiter = Limiter("t", Limit(adaptive=True))
    ticket = limiter.acquire(ONE, 0.0)
    assert limiter.state().per_minute == (None, None, None)
    # The server says: 60 requests a minute, and nothing left (another process took it).
    release(ticket, readings=[(60, 0), (None, None), (None, None)])
    assert limiter.state().per_minute[0] == 60
    assert limiter.acquire(ONE, 0.0) is None
    clock.now += 1.0
    assert limiter.acquire(ONE, 0.0) is not None


def test_the_bucket_grows_to_what_the_server_shows_it_holds(clock: Clock) -> None:
    limiter = Limiter("t", Limit(requests_per_minute=600, adaptive=False))  # 10/s: 10 of capacity at first
    ticket = limiter.acquire(ONE, 0.0)
    release(ticket, readings=[(600, 39), (None, None), (None, None)])  # the server held 40 before this call
    admitted = 0
    while limiter.acquire(ONE, 0.0) is not None:  # at once: the bucket is as full as the server's
        admitted += 1
    assert admitted == 39
    clock.now += 10.0  # and it refills to all the server holds
    admitted = 0
    while limiter.acquire(ONE, 0.0) is not None:
        admitted += 1
    assert admitted == 40


def test_a_reading_is_aged_by_what_was_admitted_since(clock: Clock) -> None:
    limiter = Limiter("t", Limit(requests_per_minute=6000, adaptive=False))  # 100/s, 100 of capacity at first
    first = limiter.acquire(ONE, 0.0)
    others = [limiter.acquire(ONE, 0.0) for _ in range(5)]  # admitted after `first`, before its reading comes in
    assert all(others)
    clock.now += 1 / 64  # 1.56 requests' worth of refill (a binary fraction: no rounding in the arithmetic)
    release(first, readings=[(6000, 50), (None, None), (None, None)])
    # The server read 50 when it admitted `first`; 1.56 have refilled since and this process took 5 more.
    admitted = 0
    while limiter.acquire(ONE, 0.0) is not None:
        admitted += 1
    assert admitted == 46


def test_aimd_halves_once_per_congestion_event_and_grows_back(clock: Clock) -> None:
    limiter = Limiter("t", Limit(concurrency=8, adaptive=True))
    tickets = [limiter.acquire(ONE, 0.0) for _ in range(8)]
    assert limiter.state().concurrency == 8
    release(tickets.pop(), congested=True)
    assert limiter.state().concurrency == 4
    release(tickets.pop(), congested=True)  # admitted before the decrease: the same congestion, answered already
    assert limiter.state().concurrency == 4
    for ticket in tickets:
        release(ticket, latency=1.0)
    # Growth needs a window in use: fill it, then successes at steady latency add 1/window each.
    for _ in range(40):
        batch = [limiter.acquire(ONE, 0.0) for _ in range(limiter.state().concurrency or 0)]
        for ticket in batch:
            release(ticket, latency=1.0)
    assert limiter.state().concurrency == 8  # back to the ceiling, never past it


def test_a_lowered_window_keeps_its_lesson_when_the_ceiling_is_raised(clock: Clock) -> None:
    limiter = Limiter("t", Limit(concurrency=8, adaptive=True))
    tickets = [limiter.acquire(ONE, 0.0) for _ in range(8)]
    release(tickets.pop(), congested=True)
    assert limiter.state().concurrency == 4
    limiter.configure(Limit(concurrency=16, adaptive=True))
    assert limiter.state().concurrency == 4
    limiter.configure(Limit(concurrency=2, adaptive=True))
    assert limiter.state().concurrency == 2
    for ticket in tickets:
        release(ticket)


def test_aimd_holds_while_latency_climbs(clock: Clock) -> None:
    limiter = Limiter("t", Limit(concurrency=8, adaptive=True))
    tickets = [limiter.acquire(ONE, 0.0) for _ in range(8)]
    release(tickets.pop(), congested=True)
    for ticket in tickets:
        release(ticket, latency=1.0)
    latency = 1.0
    seen = []
    for _ in range(40):
        latency *= 1.3
        batch = [limiter.acquire(ONE, 0.0) for _ in range(limiter.state().concurrency or 0)]
        for ticket in batch:
            release(ticket, latency=latency)
        seen.append(limiter.state().concurrency)
    # Recent latency far above its long-run level: the window stops growing (steady latency regrows it to 8).
    assert seen[-1] < 8 and len(set(seen[-20:])) == 1


def test_a_429_attempt_decreases_and_holds_an_unpaced_limiter(clock: Clock) -> None:
    limiter = Limiter("t", Limit(concurrency=8, adaptive=True))
    tickets = [limiter.acquire(ONE, 0.0) for _ in range(4)]
    limiter.congestion(tickets[0], 429, None, 2.0)
    state = limiter.state()
    assert state.rate_limited == 1 and state.concurrency == 2  # min(window, in flight + 1) / 2
    for ticket in tickets:
        release(ticket, congested=True)
    assert limiter.acquire(ONE, 0.0) is None  # nothing paces this limit: new calls wait out the retry-after
    clock.now += 2.0
    assert limiter.acquire(ONE, 0.0) is not None
