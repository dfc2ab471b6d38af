"""Many concurrent streams complete, and nothing is left running afterwards."""

from __future__ import annotations

import asyncio
import threading

import anthropic
from sim_helpers import user

from claude_sim import SimServer


async def test_200_concurrent_streams_complete_without_leaks() -> None:
    with SimServer(seed=2, latency_scale=0.001) as sim:
        client = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="test", max_retries=0, timeout=300.0)

        async def one(index: int) -> tuple[str, int]:
            async with client.messages.stream(model="claude-haiku-4-5", max_tokens=300,
                                              messages=user(f"stream {index}")) as stream:
                text = "".join([piece async for piece in stream.text_stream])
                final = await stream.get_final_message()
            return text, final.usage.output_tokens

        results = await asyncio.gather(*(one(index) for index in range(200)))
        await client.close()
        assert len(results) == 200
        assert all(text and tokens >= 1 for text, tokens in results)
        assert sim.active_streams == 0
        assert len(sim.received) == 200
    # The client's loop keeps its DNS executor threads; the simulator's own thread must be gone.
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("claude-sim")]


def test_stop_is_idempotent_and_restartable() -> None:
    sim = SimServer()
    sim.start()
    port = sim.port
    sim.stop()
    sim.stop()
    assert port > 0
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("claude-sim")]
    with SimServer() as again:
        client = anthropic.Anthropic(base_url=again.base_url, api_key="test", max_retries=0)
        assert client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=user()).type == "message"
