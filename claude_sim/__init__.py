"""claude_sim: a local Anthropic-compatible API simulator, its scenarios, a workload driver and an oracle.

The unmodified `anthropic` SDK talks to it through `base_url`:

    with SimServer(scenario="default", seed=0, latency_scale=0.0) as sim:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="test")

Scenario protocol: a request belongs to a scenario task, case and turn when it carries the headers `x-sim-task:
NAME`, `x-sim-case: INT` and optionally `x-sim-turn: INT` (the driver sends them with the SDK's `extra_headers`;
without a turn, the turn is the number of user messages), or, where headers cannot be set (message batches),
`metadata.user_id = "sim:NAME:INT[:TURN]"`. Such a request is answered by the scenario's ground truth for the
requested model and the request's input size: its output length, and an answer line `ANSWER: label-NNN` in the
text (or an `answer` field in the answer tool's input) that is right or wrong as the scenario's quality and error
correlation say; an agent's intermediate steps call lookup tools. A request whose last user message holds
`<answer_a>...</answer_a>` and `<answer_b>...</answer_b>` gets a judge's verdict (`VERDICT: A|B|TIE`, see
`_judge`). Other requests get generic text. Every answer is a deterministic function of (seed, request).

Time: cache TTLs and rate limits run on the simulator's clock (`ScenarioClock`, shared with an in-process driver);
`x-sim-time` / `x-sim-seq` carry a driven call's planned scenario time and place in the plan (see `_clock`).
Scenarios: `load_scenario(name_or_path)`, shipped ones in `SHIPPED`; the format is in `_scenario_file`. The
oracle (`claude_sim.oracle`) computes what any policy costs on a scenario and the best policy. `eval_set_grader`
grades paired answers against the scenario's labels, as a service's own grader with a labelled eval set would.
"""

from typing import TYPE_CHECKING, Any

from claude_sim._clock import ScenarioClock
from claude_sim._eval_grader import eval_set_grader
from claude_sim._faults import Fault
from claude_sim._latency import modelled_latency
from claude_sim._ratelimit import RateLimits
from claude_sim._scenario import Scenario
from claude_sim._scenario_file import SHIPPED, ScenarioError, load_scenario
from claude_sim._stats import CallRecord, Summary, TaskStats

if TYPE_CHECKING:
    from claude_sim._server import SimServer

__all__ = [
    "SHIPPED", "CallRecord", "Fault", "RateLimits", "Scenario", "ScenarioClock", "ScenarioError", "SimServer",
    "Summary", "TaskStats", "eval_set_grader", "load_scenario", "modelled_latency",
]


def __getattr__(name: str) -> Any:
    # The server needs aiohttp (the `sim` extra): loaded on first use, so the package's other parts (the
    # `otel-claude sim` / `workload` options, scenarios, the oracle) import without it.
    if name == "SimServer":
        from claude_sim._server import SimServer

        return SimServer
    raise AttributeError(f"module 'claude_sim' has no attribute {name!r}")
