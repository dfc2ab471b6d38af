"""Each injected fault reaches the SDK as the same exception and retry behaviour as on the real API."""

from __future__ import annotations

import anthropic
import pytest
from sim_helpers import user

from claude_sim import Fault, SimServer

# anthropic 0.x before OverloadedError existed maps 529 to InternalServerError (its base class later).
OVERLOADED = getattr(anthropic, "OverloadedError", anthropic.InternalServerError)


def create(sim: SimServer, retries: int = 2, **options: float) -> anthropic.types.Message:
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=retries, **options)
    return client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=user())


def retry_counts(sim: SimServer) -> list[str | None]:
    return [entry["headers"].get("x-stainless-retry-count") for entry in sim.received]


@pytest.mark.parametrize(("kind", "error", "status"), [
    ("rate_limit", anthropic.RateLimitError, 429),
    ("overloaded", OVERLOADED, 529),
    ("api_error", anthropic.InternalServerError, 500),
])
def test_status_faults_raise_after_sdk_retries(sim: SimServer, kind: str, error: type, status: int) -> None:
    sim.clear_received()
    sim.set_faults([Fault(kind, count=3, retry_after=0.01)])
    with pytest.raises(error) as caught:
        create(sim)
    assert caught.value.status_code == status
    assert caught.value.response.headers["x-should-retry"] == "true"
    assert caught.value.response.headers["request-id"].startswith("req_")
    assert retry_counts(sim) == ["0", "1", "2"]


def test_retry_after_header_on_429_and_recovery(sim: SimServer) -> None:
    sim.clear_received()
    sim.set_faults([Fault("rate_limit", count=2, retry_after=0.02)])
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=2)
    raw = client.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=20, messages=user())
    assert raw.parse().type == "message"
    assert retry_counts(sim) == ["0", "1", "2"]
    sim.set_faults([Fault("rate_limit", count=1, retry_after=7)])
    with pytest.raises(anthropic.RateLimitError) as caught:
        create(sim, retries=0)
    assert caught.value.response.headers["retry-after"] == "7"
    assert "retry-after-ms" not in caught.value.response.headers


def test_dropped_connection_is_a_retried_connection_error(sim: SimServer) -> None:
    sim.clear_received()
    sim.set_faults([Fault("drop", count=2)])
    with pytest.raises(anthropic.APIConnectionError):
        create(sim, retries=1)
    assert retry_counts(sim) == ["0", "1"]
    sim.set_faults([])


def test_stall_times_out_and_retries(sim: SimServer) -> None:
    sim.clear_received()
    sim.set_faults([Fault("stall", count=1, seconds=2.0)])
    message = create(sim, retries=1, timeout=0.3)
    assert message.type == "message"
    assert retry_counts(sim) == ["0", "1"]


def test_mid_stream_error_event_is_not_retried(sim: SimServer) -> None:
    sim.clear_received()
    sim.set_faults([Fault("stream_error", count=1, after_events=4)])
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=2)
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:  # raised while iterating
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=200, messages=user()) as stream:
            seen.extend(event.type for event in stream)
    assert caught.value.status_code == 200  # the status of the already open stream
    assert "overloaded" in str(caught.value.body or caught.value.message).lower()
    assert len(sim.received) == 1


def test_mid_stream_drop_raises_from_the_iterator(sim: SimServer) -> None:
    sim.set_faults([Fault("drop", count=1, after_events=5, stream=True)])
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=2)
    stream = client.messages.create(model="claude-haiku-4-5", max_tokens=200, messages=user(), stream=True)
    received = []
    with pytest.raises(Exception) as caught:  # httpx or httpx2, per SDK major
        for event in stream:
            received.append(event.type)
    assert "Protocol" in type(caught.value).__name__ or isinstance(caught.value, anthropic.APIConnectionError)
    assert 0 < len(received) < 8


def test_stream_only_faults_wait_for_a_stream(sim: SimServer) -> None:
    sim.set_faults([Fault("stream_error", count=1, after_events=2)])
    assert create(sim, retries=0).type == "message"
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
    with pytest.raises(anthropic.APIStatusError):
        list(client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=user(), stream=True))


def test_probabilistic_faults_are_deterministic() -> None:
    outcomes = []
    for _ in range(2):
        with SimServer(seed=9, faults=[Fault("api_error", count=None, probability=0.3)]) as sim:
            client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
            run = []
            for _ in range(40):
                try:
                    client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=user())
                    run.append(True)
                except anthropic.InternalServerError:
                    run.append(False)
            outcomes.append(run)
    assert outcomes[0] == outcomes[1]
    assert 4 <= outcomes[0].count(False) <= 20


def test_enforced_rate_limit_model() -> None:
    from claude_sim import RateLimits

    limits = RateLimits(requests_per_minute=3, enforce=True)
    with SimServer(rate_limits=limits) as sim:
        for _ in range(3):
            create(sim, retries=0)
        with pytest.raises(anthropic.RateLimitError) as caught:
            create(sim, retries=0)
    headers = caught.value.response.headers
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert int(headers["retry-after"]) >= 1


def test_bad_fault_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="fault kind 'boom'"):
        Fault("boom")
