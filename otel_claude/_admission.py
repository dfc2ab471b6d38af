"""Admission under the policy's `limits`: which limiter a call waits at, the wait itself, and what the call's end
and its retried attempts tell the limiter.

One limiter per limit entry per process, found by the entry's id (its task and models), so a reload that keeps an
entry re-configures the same limiter, with its waiting calls, in place; an entry that disappears stops limiting and
lets its waiters go. Limits apply in `enforce` mode to chat calls, after routing (the model actually called), to
every call whatever `rollout_percent` says: limiting a share of the traffic would not keep the account in bounds.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from . import semconv as sc
from ._attributes import header_attributes
from ._errors import admission_timeout
from ._limiter import Limiter, LimiterState, Reading, Ticket
from ._safety import report_failure
from .catalog import resolve
from .policy import Limit, Policy

if TYPE_CHECKING:
    from ._call import Call

__all__ = ["Admission", "congestion", "release"]

_MEMO_LIMIT = 4096  # (task, model) pairs remembered per policy; task labels are free text
_CONGESTION = ("rate_limit_error", "overloaded_error")
_Match = tuple[Limit, Limiter]


class Admission:
    def __init__(self) -> None:
        # (entries in policy order, memo of (task, model) -> match): swapped as one, so a call never mixes policies.
        self._state: tuple[tuple[_Match, ...], dict[tuple[Any, Any], _Match | None]] = ((), {})
        self._limiters: dict[str, Limiter] = {}
        self._lock = threading.Lock()
        self.active = False
        _ADMISSIONS.add(self)

    # -- policy ------------------------------------------------------------------------------------------------------

    def update(self, policy: Policy | None) -> None:
        """Follow a (re)loaded policy; called by the policy source for every policy it accepts."""
        entries = policy.limits if policy is not None and policy.mode == "enforce" else ()
        with self._lock:
            table = []
            for limit in entries:
                limiter = self._limiters.get(limit.id)
                if limiter is None:
                    limiter = self._limiters[limit.id] = Limiter(limit.id, limit)
                else:
                    limiter.configure(limit)
                table.append((limit, limiter))
            kept = {limit.id for limit in entries}
            for name in [name for name in self._limiters if name not in kept]:
                self._limiters.pop(name).retire()
            self._state = (tuple(table), {})
            self.active = bool(table)

    def close(self) -> None:
        self.update(None)

    def states(self) -> list[tuple[str, LimiterState]]:
        with self._lock:
            limiters = list(self._limiters.values())
        return [(limiter.name, limiter.state()) for limiter in limiters]

    def match(self, task: str | None, model: str | None) -> _Match | None:
        table, memo = self._state
        key = (task, model)
        try:
            return memo[key]
        except KeyError:
            pass
        info = resolve(model)
        canonical = info.model if info is not None else model
        found = next((m for m in table if _selects(m[0], task, canonical)), None)
        if len(memo) < _MEMO_LIMIT:
            memo[key] = found
        return found

    # -- the call path -------------------------------------------------------------------------------------------------

    def admit_sync(self, call: Call, client: Any) -> None:
        """Wait (blocking this thread) until the call may go; raises AdmissionTimeoutError when the limit says so."""
        found = self._match_call(call)
        if found is None:
            return
        limit, limiter = found
        charge = _charge(call)
        start = time.monotonic()
        ticket = None
        try:
            ticket = limiter.acquire(charge, limit.max_wait)
        except Exception:
            report_failure("waiting for admission")
            return
        finally:  # a cancelled or interrupted wait is recorded too; a call admitted on arrival records nothing
            if ticket is None or ticket.queued:
                call.admission_limit = limit.id
                call.admission_wait = time.monotonic() - start
        if ticket is None:
            ticket = _timed_out(call, limit, limiter, charge, client)
        call.ticket = ticket

    async def admit_async(self, call: Call, client: Any) -> None:
        """As `admit_sync`, awaiting: other tasks of the loop run while this one waits."""
        found = self._match_call(call)
        if found is None:
            return
        limit, limiter = found
        charge = _charge(call)
        start = time.monotonic()
        ticket = None
        try:
            ticket = await limiter.acquire_async(charge, limit.max_wait)
        except Exception:
            report_failure("waiting for admission")
            return
        finally:  # a cancelled or interrupted wait is recorded too; a call admitted on arrival records nothing
            if ticket is None or ticket.queued:
                call.admission_limit = limit.id
                call.admission_wait = time.monotonic() - start
        if ticket is None:
            ticket = _timed_out(call, limit, limiter, charge, client)
        call.ticket = ticket

    def _match_call(self, call: Call) -> _Match | None:
        if call.operation != sc.CHAT_OPERATION:
            return None
        try:
            return self.match(call.task, call.request.model)
        except Exception:
            report_failure("matching a call to a limit")
            return None


def _selects(limit: Limit, task: str | None, model: str | None) -> bool:
    return (limit.task == "*" or limit.task == task) and (limit.models is None or model in limit.models)


def _charge(call: Call) -> tuple[float, float, float]:
    info = call.request
    return 1, info.input_tokens_estimate, info.max_tokens or 0


def _timed_out(call: Call, limit: Limit, limiter: Limiter, charge: tuple[float, float, float], client: Any) -> Ticket:
    """The wait reached `max_wait`: raise, or admit the call past the limits, as the limit says."""
    call.admission_timed_out = True
    # The safety net's re-send is never failed: the caller's call already succeeded (truncated) once.
    if limit.on_timeout == "fail" and not call.retry_of_policy:
        limiter.refuse()
        try:
            error = admission_timeout(limit.id, limit.max_wait, str(client.base_url))
        except Exception:  # never fail a call because the error could not be built: send it instead
            report_failure("building the admission timeout error")
        else:
            raise error
    return limiter.force(charge)


_READINGS = sc.RATELIMIT_READINGS


def readings(attrs: dict[str, Any]) -> tuple[Reading, ...] | None:
    """(limit, remaining) per limiter kind from a call's header attributes; None when there are none."""
    get = attrs.get
    (l0, r0), (l1, r1), (l2, r2) = _READINGS
    found = ((get(l0), get(r0)), (get(l1), get(r1)), (get(l2), get(r2)))
    if found == _NONE:
        return None
    return found


_NONE = ((None, None), (None, None), (None, None))


def release(call: Call, attrs: dict[str, Any] | None, duration: float | None) -> None:
    """The call ended: give back its slot and correct its charge; tell an adaptive limiter how it went."""
    ticket, call.ticket = call.ticket, None
    if ticket is None:
        return
    try:
        congested = call.error_type in _CONGESTION or bool(call.retries)
        # A cancelled call or a client error says nothing about the limits or the service's latency.
        outcome = call.error_type is None and not call.cancelled
        latency = None
        if outcome:
            wait = call.admission_wait or 0.0
            if call.streaming:
                latency = (call.first_token_ns - call.start_ns) / 1e9 - wait if call.first_token_ns else None
            elif duration is not None:
                latency = duration - wait
        usage = call.usage
        used_in = used_out = None
        if usage is not None:
            if usage.input is not None:
                used_in = usage.input + (usage.cache_write or 0)  # cache reads do not count against input limits
            if not call.streaming or call.complete:
                used_out = usage.output
        ticket.limiter.release(ticket, congested=congested, latency=latency, used=(used_in, used_out),
                               readings=readings(attrs) if attrs else None, outcome=outcome)
    except Exception:
        report_failure("releasing an admission")


def congestion(call: Call, response: Any) -> None:
    """A 429/529 on one attempt of an admitted call, seen before the SDK retries it."""
    ticket = call.ticket
    if ticket is None:
        return
    try:
        status = response.status_code
        if status != 429 and status != 529:
            return
        headers = response.headers
        attrs: dict[str, Any] = {}
        header_attributes(headers, attrs)
        ticket.limiter.congestion(ticket, status, readings(attrs), _retry_after(headers))
    except Exception:
        report_failure("reading a rate-limited attempt")


def _retry_after(headers: Any) -> float | None:
    """The server's requested wait, as the SDK reads it: `retry-after-ms`, then `retry-after` in seconds."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                continue
    return None


_ADMISSIONS: weakref.WeakSet[Admission] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for admission in list(_ADMISSIONS):
        admission._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
