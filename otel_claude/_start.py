"""Starting a call: what the request asks for, the policy's changes to it, and the span that records both."""

from __future__ import annotations

import dataclasses
from typing import Any

from . import semconv as sc
from ._attributes import content_attributes
from ._call import Call
from ._config import Config
from ._evaluation import ROLE_CALL, Evaluator, Pair
from ._policy_engine import PolicyEngine, PolicyOutcome
from ._request import RequestInfo, operation_of, summarize_request
from ._safety import report_failure
from ._task import current_task
from ._telemetry import Telemetry

__all__ = ["CallStarter", "merged_body"]

_PROVIDERS: dict[type, str] = {}


def _provider_name(client: Any) -> str:
    cls = type(client)
    name = _PROVIDERS.get(cls)
    if name is None:
        # SDKs >= 1.14 name their provider on the client class; older ones only in the class name.
        name = getattr(cls, "_gen_ai_provider_name", None)
        if not isinstance(name, str):
            name = "aws.bedrock" if "Bedrock" in cls.__name__ else "gcp.vertex_ai" if "Vertex" in cls.__name__ \
                else "anthropic"
        _PROVIDERS[cls] = name
    return name


def merged_body(options: Any) -> Any:
    """The body as it will be sent: `extra_body` keys override the named parameters."""
    extra = getattr(options, "extra_json", None)
    body = options.json_data
    if extra and isinstance(body, dict):
        return {**body, **extra}
    return body


class CallStarter:
    def __init__(
        self, telemetry: Telemetry, config: Config, policy: PolicyEngine | None, evaluator: Evaluator | None = None
    ) -> None:
        self.tel = telemetry
        self.config = config
        self.policy = policy
        self.evaluator = evaluator

    def begin(self, client: Any, options: Any, stream: bool, retry_of: Call | None = None) -> Call | None:
        """Start the span for a traced request (applying the policy first); None for untraced endpoints.

        `retry_of`: the policy's safety net is re-sending a truncated call with the caller's max_tokens; the policy
        is not applied again and the span says so.
        """
        try:
            operation = operation_of(options.method, options.url)
            if operation is None:
                return None
            body = merged_body(options)
            chat = operation == sc.CHAT_OPERATION
            info = summarize_request(body) if chat or operation == "count_tokens" else RequestInfo()
            role = ROLE_CALL.get()
            task = current_task() if role is None else role.task
            outcome: PolicyOutcome | None = None
            pair: Pair | None = None
            # A shadow or judge call (role set) goes out as the evaluation built it: no policy, no evaluation.
            if role is None and retry_of is not None:
                if retry_of.policy is not None:
                    # The retry records what the first attempt's policy did, with the caller's values now applied.
                    first = retry_of.policy
                    outcome = dataclasses.replace(
                        first, safety_retry=True, applied_max_tokens=info.max_tokens,
                        applied_model=info.model if first.applied_model is not None else None,
                    )
            elif role is None and self.policy is not None and chat:
                info, outcome = self.policy.apply(options, body, info, task, bool(stream))
            if outcome is not None and outcome.evaluate is not None and self.evaluator is not None:
                pair = self.evaluator.open_pair(client, options, merged_body(options), outcome, task, bool(stream),
                                                info.input_tokens_estimate)
            content = None
            if chat and self.config.capture_content:
                sent = merged_body(options)  # after the policy: what is actually sent
                if isinstance(sent, dict):
                    content = content_attributes(sent, self.config.encode)
            url = client.base_url
            server = (url.host, url.port or (443 if url.scheme == "https" else 80))
            return Call(self.tel, self.config, operation, info, provider=_provider_name(client), server=server,
                        task=task, streaming=bool(stream), policy=outcome, content=content, pair=pair,
                        role_call=role)
        except Exception:
            report_failure("starting a span")
            return None
