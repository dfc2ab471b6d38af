"""claude_sim: a local Anthropic-compatible API simulator and a workload driver.

The unmodified `anthropic` SDK talks to it through `base_url`:

    with SimServer(scenario="default", seed=0, latency_scale=0.0) as sim:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="test")

Scenario protocol: a request belongs to a scenario task and case when it carries the headers `x-sim-task: NAME`
and `x-sim-case: INT` (the workload driver sends them with the SDK's `extra_headers`), or, where headers cannot be
set (message batches), `metadata.user_id = "sim:NAME:INT"`. Such a request is answered by the scenario's ground
truth for the requested model: its output length, and an answer line `ANSWER: label-NNN` in the text (or an
`answer` field in the first tool's input) that is right or wrong as the scenario's quality says. Other requests
get generic text. Every answer is a deterministic function of (seed, request).
"""

from claude_sim._clock import ScenarioClock
from claude_sim._faults import Fault
from claude_sim._ratelimit import RateLimits
from claude_sim._scenario import Scenario
from claude_sim._scenario_file import ScenarioError, load_scenario
from claude_sim._server import SimServer

__all__ = ["Fault", "RateLimits", "Scenario", "ScenarioClock", "ScenarioError", "SimServer", "load_scenario"]
