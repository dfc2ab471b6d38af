"""Paired evaluation of a candidate model on a sampled call, after the caller has its answer.

A `Pair` is opened when the policy samples a call (and the task's budget admits one). When the caller's call ends
with a complete answer, a job sends the same request to the candidate (never streamed), grades the two answers
in-process (`_graders`), asks the LLM judge twice with the answers swapped when nothing else settled them (`_judge`),
and records one verdict span, a child of the caller's call. The calls it makes go through the SDK like any other,
marked by `ROLE_CALL` so they are traced as shadow or judge calls (children of the caller's call, never
policy-rewritten or evaluated again) and their cost counts as evaluation spend.

The steps are written once, as a generator that yields the requests it needs and is sent their results; a thread
driver and an event-loop driver run it for sync and async clients.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Generator, Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from anthropic import NotGiven
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanKind

from . import semconv as sc
from ._answers import StreamCollector, answer_of
from ._background import Background
from ._evaluation_spend import PairSpend
from ._graders import grade
from ._judge import combine, judge_request, parse_verdict
from ._safety import report_failure
from .catalog import Usage, cost_usd, resolve
from .grading import Answer
from .policy import Evaluate, Judge, parse_judge

if TYPE_CHECKING:
    from ._call import Call
    from ._policy_engine import PolicyEngine, PolicyOutcome
    from ._telemetry import Telemetry

__all__ = ["ROLE_CALL", "EvaluationOptions", "Evaluator", "Pair", "RoleCall", "evaluation_options"]

_OPTION_KEYS = ("enabled", "judge", "workers", "max_pending")


@dataclasses.dataclass(frozen=True)
class EvaluationOptions:
    """`instrument(evaluation_options={...})`: `enabled` (False switches paired evaluation off whatever the policy
    says), `judge` (a default judge `{model, rubric}` for rules that name none), `workers` (threads for sync
    clients), `max_pending` (jobs waiting or running, per kind of client, before new ones are dropped)."""

    enabled: bool = True
    judge: Judge | None = None
    workers: int = 2
    max_pending: int = 64


def evaluation_options(options: Mapping[str, Any] | None) -> EvaluationOptions:
    if not options:
        return EvaluationOptions()
    unknown = set(options) - set(_OPTION_KEYS)
    if unknown:
        raise TypeError(f"otel_claude.instrument(): unknown evaluation_options: {', '.join(sorted(unknown))}")
    judge = options.get("judge")
    workers, pending = options.get("workers", 2), options.get("max_pending", 64)
    for name, value in (("workers", workers), ("max_pending", pending)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"otel_claude.instrument(): evaluation_options[{name!r}] must be an integer >= 1")
    return EvaluationOptions(
        enabled=bool(options.get("enabled", True)),
        judge=parse_judge(judge, "evaluation_options") if judge is not None else None,
        workers=workers,
        max_pending=pending,
    )


@dataclasses.dataclass(frozen=True)
class RoleCall:
    """Set around a call the pipeline makes: what it is, whose child it is, and the task it is for."""

    role: str
    parent: Context
    task: str | None
    spend: PairSpend  # the pair's budget entry, which its calls' cost goes to


ROLE_CALL: ContextVar[RoleCall | None] = ContextVar("otel_claude_role_call", default=None)
_STRIPPED_HEADERS = ("x-stainless", "____stainless")  # the SDK's response-mode markers (raw, streamed raw)


def _final_request_options() -> Any:
    return importlib.import_module("anthropic._models").FinalRequestOptions


class Evaluator:
    def __init__(self, tel: Telemetry, options: EvaluationOptions, policy: PolicyEngine | None) -> None:
        self.tel = tel
        self.default_judge = options.judge
        self.background = Background(options.workers, options.max_pending)
        self._policy = policy
        self.options_class = _final_request_options()

    def open_pair(
        self, client: Any, options: Any, body: Any, outcome: PolicyOutcome, task: str | None, streaming: bool,
        input_tokens: int,
    ) -> Pair | None:
        """A pair for a sampled call, or None when the task's evaluation budget is spent."""
        evaluate = outcome.evaluate
        if evaluate is None or not isinstance(body, dict):
            return None
        spend = self.tel.evaluation
        # Before this process has seen a pair finish: the tuner's estimate, or else the least the candidate's copy
        # can cost (its input, uncached).
        prior = evaluate.pair_cost if evaluate.pair_cost is not None else _input_cost(evaluate.model, input_tokens)
        entry = spend.admit(task, evaluate.budget, self.tel.totals.cost_of_task(task), prior)
        if entry is None:
            spend.skip(task, "budget")
            return None
        return Pair(self, client, options, body, evaluate, outcome.evaluate_max_tokens, task, streaming, entry)

    def will_retry(self, call: Call) -> bool:
        """The policy's safety net is about to re-send this call: the retry, not this answer, is what to grade."""
        policy = self._policy
        return policy is not None and policy.safety_retry(call.policy, call.finish_reason, call.streaming) is not None

    def close(self) -> None:
        for job in self.background.close():
            job.give_up("shutdown")


class Pair:
    """A sampled call's evaluation: what to send the candidate, and the caller's answer once it is complete."""

    __slots__ = ("body", "client", "collector", "evaluate", "evaluator", "headers", "incumbent", "is_async",
                 "max_tokens", "spend", "task", "timeout", "url")

    def __init__(self, evaluator: Evaluator, client: Any, options: Any, body: dict[str, Any], evaluate: Evaluate,
                 max_tokens: int | None, task: str | None, streaming: bool, spend: PairSpend) -> None:
        self.evaluator = evaluator
        self.spend = spend
        self.client = client
        self.is_async = hasattr(type(client), "__aenter__")
        self.url = options.url
        headers = getattr(options, "headers", None)
        self.headers = {k: v for k, v in headers.items() if not k.lower().startswith(_STRIPPED_HEADERS)} \
            if isinstance(headers, Mapping) else {}
        self.timeout = getattr(options, "timeout", None)
        # The body as sent to the incumbent: the SDK built these dicts for this request, so the caller's own
        # objects (a conversation it goes on appending to) are not shared with the job that runs later.
        self.body = body
        self.evaluate = evaluate
        self.max_tokens = max_tokens
        self.task = task
        self.collector = StreamCollector() if streaming else None
        self.incumbent: Answer | None = None

    def read(self, message: Any) -> None:
        """The caller's non-streamed answer."""
        self.incumbent = answer_of(message)

    def release(self, reason: str | None, completed: bool = False) -> None:
        """The pair is over: counted as skipped for `reason` (None: not a skip), its budget reservation freed."""
        evaluation = self.evaluator.tel.evaluation
        if reason is not None:
            evaluation.skip(self.task, reason)
        evaluation.finish(self.spend, completed)

    def done(self, call: Call, error: BaseException | None) -> None:
        """The caller's call ended: start the job if it has a complete answer to compare."""
        try:
            if self.evaluator.will_retry(call):
                self.release(None)  # the retry opens its own pair
                return
            failed = error is not None or call.cancelled or (call.streaming and not call.complete)
            answer = self.collector.answer() if self.collector is not None else self.incumbent
            if failed or answer is None:
                self.release("incumbent_failed")
                return
            parent = trace.set_span_in_context(NonRecordingSpan(call.span.get_span_context()))
            job = _Job(self, answer, parent)
            background = self.evaluator.background
            refused = background.run_on_loop(job.run_async) if self.is_async else background.run_in_thread(job)
            if refused is not None:
                job.give_up(refused)
        except Exception:
            report_failure("starting a paired evaluation")

    def shadow_body(self) -> dict[str, Any]:
        body = {key: value for key, value in self.body.items() if key != "stream"}
        body["model"] = self.evaluate.model
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return body

    def request_options(self, body: dict[str, Any]) -> Any:
        values: dict[str, Any] = {"method": "post", "url": self.url, "json_data": body, "headers": self.headers,
                                  "max_retries": 0}  # a failed shadow is given up, not retried into rate limits
        if self.timeout is not None and not isinstance(self.timeout, NotGiven):
            values["timeout"] = self.timeout
        return self.evaluator.options_class.construct(**values)


def _input_cost(model: str, tokens: int) -> float:
    info = resolve(model)
    return cost_usd(info, Usage(input_tokens=tokens)) if info is not None else 0.0


def _judge_prior(pair: Pair, judge: Judge) -> float:
    """A judge call's price before this process has made one: the shadow call's cost at the judge's input rate (its
    prompt holds the request and both answers); the shadow's cost as it is when a model is not in the catalog."""
    mine, theirs = resolve(judge.model), resolve(pair.evaluate.model)
    ratio = mine.input / theirs.input if mine is not None and theirs is not None and theirs.input > 0 else 1.0
    return pair.spend.cost * ratio


@dataclasses.dataclass(frozen=True)
class _Ask:
    role: str
    body: dict[str, Any]


class _Job:
    """One pair's work after the caller's call: shadow call, graders, judge, verdict."""

    __slots__ = ("done", "incumbent", "pair", "parent")

    def __init__(self, pair: Pair, incumbent: Answer, parent: Context) -> None:
        self.pair = pair
        self.incumbent = incumbent
        self.parent = parent
        self.done = False

    def give_up(self, reason: str) -> None:
        if not self.done:
            self.done = True
            self.pair.release(reason)

    def _steps(self) -> Generator[_Ask, Any, None]:
        """Yields each request to make and is sent its result (None: it failed). Stops before a request once
        evaluation is shut down; a reply already in hand is still graded."""
        pair, evaluator = self.pair, self.pair.evaluator
        background = evaluator.background
        if background.closed:
            return
        reply = yield _Ask(sc.ROLE_SHADOW, pair.shadow_body())
        if reply is None:
            self.give_up("shadow_failed")
            return
        candidate = answer_of(reply)
        graded = grade(pair.task, pair.body, self.incumbent, candidate)
        judge = pair.evaluate.judge or evaluator.default_judge
        spend, tel = evaluator.tel.evaluation, evaluator.tel
        if not graded.settled and judge is not None and not background.closed and spend.may_judge(
                pair.spend, pair.evaluate.budget, tel.totals.cost_of_task(pair.task), _judge_prior(pair, judge)):
            # Incumbent as A first; the second order only when the first reply could still make a win (a readable
            # reply other than a tie: after a tie, no second reply can make both orders agree on a winner).
            first = yield _Ask(sc.ROLE_JUDGE, judge_request(judge, pair.body, self.incumbent, candidate))
            incumbent_first = parse_verdict(first) if first is not None else None
            candidate_first = None
            if incumbent_first not in (None, "TIE") and not background.closed:
                second = yield _Ask(sc.ROLE_JUDGE, judge_request(judge, pair.body, candidate, self.incumbent))
                candidate_first = parse_verdict(second) if second is not None else None
            graded = combine(incumbent_first, candidate_first)
        self._record(graded.grader, graded.label, graded.score, candidate)
        self.done = True
        pair.release(None, completed=True)

    def _record(self, grader: str, label: str, score: float, candidate: Answer) -> None:
        pair = self.pair
        attrs: dict[str, Any] = {
            sc.GEN_AI_EVALUATION_NAME: grader,
            sc.GEN_AI_EVALUATION_SCORE_VALUE: score,
            sc.GEN_AI_EVALUATION_SCORE_LABEL: label,
            sc.EVALUATION_CANDIDATE_MODEL: pair.evaluate.model,
        }
        incumbent_model = pair.body.get("model")
        if isinstance(incumbent_model, str):
            attrs[sc.EVALUATION_INCUMBENT_MODEL] = incumbent_model
        if self.incumbent.response_id is not None:
            attrs[sc.GEN_AI_RESPONSE_ID] = self.incumbent.response_id
        if candidate.response_id is not None:
            attrs[sc.EVALUATION_CANDIDATE_RESPONSE_ID] = candidate.response_id
        if pair.task is not None:
            attrs[sc.TASK] = pair.task
        span = pair.evaluator.tel.tracer.start_span(
            sc.VERDICT_SPAN, context=self.parent, kind=SpanKind.INTERNAL, attributes=attrs
        )
        span.add_event(sc.EVALUATION_RESULT_EVENT, attributes={
            key: attrs[key] for key in (sc.GEN_AI_EVALUATION_NAME, sc.GEN_AI_EVALUATION_SCORE_VALUE,
                                        sc.GEN_AI_EVALUATION_SCORE_LABEL)
        })
        span.end()
        pair.evaluator.tel.quality.add_verdict(attrs.get(sc.EVALUATION_INCUMBENT_MODEL), pair.task,
                                               pair.evaluate.model, label)

    # -- drivers ---------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _running(self) -> Iterator[Generator[_Ask, Any, None]]:
        """The steps, with failures contained and the pair released however the driver stops (cancelled too)."""
        steps = self._steps()
        try:
            yield steps
        except StopIteration:
            pass
        except Exception:
            report_failure("running a paired evaluation")
        finally:
            steps.close()
            self.give_up("shutdown")  # a no-op unless the job stopped before its verdict

    @contextlib.contextmanager
    def _as(self, ask: _Ask) -> Iterator[Any]:
        """The request options for `ask`, sent with the role marker set (the hook traces the call as that role)."""
        token = ROLE_CALL.set(RoleCall(ask.role, self.parent, self.pair.task, self.pair.spend))
        try:
            yield self.pair.request_options(ask.body)
        finally:
            ROLE_CALL.reset(token)

    # The job on a worker thread (sync clients, `__call__`) and as a task on the caller's loop (async clients,
    # `run_async`): twins, kept equal by tests/instrumentor/test_twins.py.
    def __call__(self) -> None:
        with self._running() as steps:
            ask = next(steps)
            while True:
                with self._as(ask) as options:
                    try:
                        reply = self.pair.client.request(object, options, stream=False)
                    except Exception:
                        reply = None
                ask = steps.send(reply)

    async def run_async(self) -> None:
        with self._running() as steps:
            ask = next(steps)
            while True:
                with self._as(ask) as options:
                    try:
                        reply = await self.pair.client.request(object, options, stream=False)
                    except Exception:
                        reply = None
                ask = steps.send(reply)
