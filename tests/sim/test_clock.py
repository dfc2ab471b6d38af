"""The scenario clock, its plan-order sequencer, and the span processor that moves spans to scenario time."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from claude_sim import ScenarioClock
from claude_sim._clock import DAY, RUN_GAP, Sequencer, run_start
from claude_sim._span_time import ScenarioTimeSpanProcessor, scenario_moment

MIDNIGHT = 1_800_000_000 - 1_800_000_000 % 86_400  # a UTC midnight, as unix seconds


class Wall:
    """An injected wall clock (unix seconds) that moves only when told."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_real_time_clock_is_the_wall_time_at_speed_one_and_scales_waits() -> None:
    wall = Wall(MIDNIGHT + 5 * 3600.0)
    live = ScenarioClock(1.0, fast_forward=False, wall=wall)
    assert live.epoch == MIDNIGHT and live() == 5 * 3600.0  # scenario hour of day = UTC hour
    wall.now += 42.5
    assert live.unix_ns(round(wall.now * 1e9)) == round(wall.now * 1e9)
    fast = ScenarioClock(60.0, fast_forward=False, wall=wall)
    start = fast()
    wall.now += 2.0
    assert fast() == pytest.approx(start + 120.0)
    assert fast.advance_to(fast() + 600.0) == pytest.approx(10.0)  # wall seconds to wait; no jump
    assert fast() == pytest.approx(start + 120.0)
    assert fast.wall_seconds(30.0) == pytest.approx(0.5)


def test_fast_forward_jumps_never_go_back_and_remember_history() -> None:
    wall = Wall(MIDNIGHT + 100.0)
    clock = ScenarioClock(0, fast_forward=True, wall=wall)
    assert clock() == -DAY / 2  # noon the day before: a first run starts at the epoch
    assert run_start(clock) == 0.0
    assert clock.advance_to(1000.0) == 0.0 and clock() == 1000.0
    before = wall.now
    wall.now += 5.0  # speed 0: wall time alone does not move it
    assert clock() == 1000.0
    clock.advance_to(4000.0)
    assert clock.advance_to(2000.0) == 0.0 and clock() == 4000.0
    assert clock.at_wall(before) == 1000.0 and clock.at_wall(wall.now) == 4000.0
    assert run_start(clock) == DAY  # the next midnight at least RUN_GAP after the last traffic
    clock.advance_to(DAY - RUN_GAP + 1)
    assert run_start(clock) == 2 * DAY
    assert clock.wall_seconds(100.0) == 0.0


def test_speed_zero_needs_fast_forward() -> None:
    with pytest.raises(ValueError, match="speed"):
        ScenarioClock(0, fast_forward=False)


def test_sequencer_releases_each_ticket_once_everything_before_it_is_done() -> None:
    sequence = Sequencer()
    tickets = [sequence.ticket() for _ in range(4)]
    fired: list[int] = []
    for ticket in reversed(tickets):
        sequence.when_due(ticket, lambda ticket=ticket: fired.append(ticket))
    assert fired == [1]  # nothing before the first ticket
    sequence.done(3)  # out of order: 2 still holds 3 and 4 back
    assert fired == [1] and sequence.is_done(3) and not sequence.is_done(2)
    sequence.done(1)
    assert fired == [1, 2]
    sequence.done(2)
    assert sorted(fired) == [1, 2, 3, 4]
    sequence.done(2)  # twice is harmless
    assert sequence.is_done(4) is False and sequence.is_done(1)


def test_spans_take_the_scenario_time_of_their_moment_and_keep_durations() -> None:
    clock = ScenarioClock(0, fast_forward=True)  # the real wall clock: span timestamps are read from it
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(ScenarioTimeSpanProcessor(SimpleSpanProcessor(exported), clock))
    tracer = provider.get_tracer("test")
    with scenario_moment(7200.0):
        span = tracer.start_span("call")
        span.add_event("first token")
        span.end(end_time=span.start_time + 250_000_000)  # 250 ms
    clock.advance_to(9000.0)
    outside = tracer.start_span("outside")
    outside.end()
    call, other = exported.get_finished_spans()
    start = round((clock.epoch + 7200) * 1e9)
    assert start <= call.start_time < start + 10**9  # the moment, plus how long after it the span began
    assert call.end_time - call.start_time == 250_000_000
    assert call.events[0].timestamp - call.start_time < 10**9
    assert other.start_time == pytest.approx((clock.epoch + 9000) * 1e9, abs=10**6)  # the clock's reading
