"""The policy file, schema version 1 (docs/policy.md): typed model, strict parsing, safe loading, deterministic dump.

This module runs inside services (the enforcement code loads policies with it), so it imports only the standard
library, PyYAML and the model catalog. Parsing is strict because a typo in a policy silently does nothing otherwise.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TypeVar

import yaml

from otel_claude.catalog import closest_model, resolve

__all__ = [
    "CACHE_TARGETS",
    "CACHE_TTLS",
    "DEFAULT_EVALUATION_BUDGET",
    "MAX_EVALUATE_SHARE",
    "MAX_EXPLORE_SHARE",
    "MAX_WAIT_SECONDS",
    "MODES",
    "ON_TIMEOUT",
    "SCHEMA_VERSION",
    "CacheAction",
    "Conditions",
    "Evaluate",
    "Explore",
    "Judge",
    "Limit",
    "Policy",
    "PolicyError",
    "Rule",
    "dump_policy",
    "json_schema",
    "limit_id",
    "load_policy_text",
    "parse_judge",
    "parse_policy",
]

SCHEMA_VERSION = 1
MODES = ("enforce", "shadow", "off")
MAX_TOKENS_MODES = ("cap", "set")
CACHE_TTLS = ("5m", "1h", "none")
CACHE_TARGETS = ("tools", "system")
ON_TIMEOUT = ("proceed", "fail")
# A call held longer than this has lost its caller; the bound also keeps a typo (3600 meant as ms) visible.
MAX_WAIT_SECONDS = 600.0
# Exploration sends real traffic to a model with unproven quality on the task; the bound keeps that risk small.
MAX_EXPLORE_SHARE = 0.2
# Paired evaluation serves nobody the candidate's answer, so it may sample more; it still doubles those calls' load.
MAX_EVALUATE_SHARE = 0.5
DEFAULT_EVALUATION_BUDGET = 0.05
_MAX_RUBRIC_CHARS = 8_000

# Limits for untrusted YAML: nesting depth and the node count after alias expansion (billion-laughs guard).
_MAX_DEPTH = 64
_MAX_NODES = 200_000


class PolicyError(ValueError):
    """A policy that cannot be used: `problems` lists every problem found, each naming the source, the rule and
    the field; the message is those lines."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems: tuple[str, ...] = (problems,) if isinstance(problems, str) else tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Conditions:
    models: tuple[str, ...] | None = None
    input_tokens_min: int | None = None
    input_tokens_max: int | None = None


@dataclass(frozen=True)
class CacheAction:
    ttl: str  # of the breakpoints on `targets` (the shared prefix)
    targets: tuple[str, ...] = CACHE_TARGETS
    # Of the breakpoint that follows the conversation's newest turn (and of an intermediate one where needed).
    conversation_ttl: str = "none"


@dataclass(frozen=True)
class Explore:
    model: str
    share: float
    max_tokens: int | None = None  # the candidate's own cap, where its output lengths differ from the rule's model


@dataclass(frozen=True)
class Judge:
    """An LLM judge for pairs the cheap graders cannot settle; `rubric` None: the built-in rubric."""

    model: str
    rubric: str | None = None


@dataclass(frozen=True)
class Evaluate:
    """Paired evaluation: a share of the rule's calls is also sent to `model` in the background and graded."""

    model: str
    share: float
    budget: float = DEFAULT_EVALUATION_BUDGET  # evaluation spend at most this share of the task's own spend
    max_tokens: int | None = None  # the candidate's own cap (always a cap)
    judge: Judge | None = None
    # Expected USD of one pair (the candidate's uncached copy, and judge calls where graders leave pairs open):
    # what the budget charges a pair until this process has seen what its own pairs cost. The tuner writes it.
    pair_cost: float | None = None


@dataclass(frozen=True)
class Rule:
    task: str
    id: str = ""
    when: Conditions | None = None
    model: str | None = None
    max_tokens: int | None = None
    max_tokens_mode: str = "cap"
    cache: CacheAction | None = None
    explore: Explore | None = None
    evaluate: Evaluate | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Limit:
    """Client-side admission limits for the calls of some models and/or one task, shared by the whole process.

    `id` names the limiter: calls matching the same entry share it, and a reload that keeps the entry's selector
    (task and models) changes the limits of the same limiter, waiting calls included.
    """

    task: str = "*"
    models: tuple[str, ...] | None = None  # canonical catalog names; None: any model
    id: str = ""
    concurrency: int | None = None
    requests_per_minute: int | None = None
    input_tokens_per_minute: int | None = None
    output_tokens_per_minute: int | None = None
    adaptive: bool = True
    max_wait: float = 60.0
    on_timeout: str = "proceed"
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def per_minute(self) -> tuple[int | None, int | None, int | None]:
        """(requests, input tokens, output tokens) per minute, in the limiter's order."""
        return self.requests_per_minute, self.input_tokens_per_minute, self.output_tokens_per_minute


@dataclass(frozen=True)
class Policy:
    version: str
    rules: tuple[Rule, ...] = ()
    mode: str = "enforce"
    rollout_percent: float = 100
    metadata: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    limits: tuple[Limit, ...] = ()


# --------------------------------------------------------------------------------------------------------- parsing


_T = TypeVar("_T")


class _Where:
    """Builds error messages that point at one place in the policy, and collects the problems of a whole document.

    A parser raises `fail(...)` for a field it cannot read; `attempt` records that and goes on with the next field,
    so one run of a validator lists every problem a file has, not only its first.
    """

    def __init__(self, source: str, path: str = "", problems: list[str] | None = None) -> None:
        self.source = source
        self.path = path
        self.problems: list[str] = [] if problems is None else problems

    def at(self, path: str) -> _Where:
        return _Where(self.source, path, self.problems)

    def fail(self, field_name: str, problem: str) -> PolicyError:
        where = f"{self.path}: " if self.path else ""
        return PolicyError(f"{self.source}: {where}field '{field_name}': {problem}")

    def note(self, field_name: str, problem: str) -> None:
        """A problem that does not stop the parsing of what follows."""
        self.problems.extend(self.fail(field_name, problem).problems)

    def attempt(self, parse: Callable[[], _T]) -> _T | None:
        """`parse()`, or None with its problem recorded."""
        try:
            return parse()
        except PolicyError as err:
            self.problems.extend(err.problems)
            return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)  # type: ignore[arg-type]


def _mapping(value: object, where: _Where, name: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.fail(name, f"must be a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str) or key not in allowed:
            # Noted, not raised: the known keys beside it are still checked.
            hint = _did_you_mean(key, allowed)
            where.note(f"{name}.{key}" if name else str(key), f"unknown key{hint} (allowed: {', '.join(allowed)})")
    return value


def _choice(value: object, where: _Where, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise where.fail(name, f"must be one of {', '.join(choices)}, got {value!r}{_did_you_mean(value, choices)}")
    return value


def _did_you_mean(value: object, choices: Iterable[str]) -> str:
    guess = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{guess[0]}'?" if guess else ""


def _known_model(value: object, where: _Where, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.fail(name, f"must be a model name, got {value!r}")
    if resolve(value) is None:
        guess = closest_model(value)
        hint = f"; did you mean '{guess}'?" if guess else ""
        raise where.fail(name, f"unknown model {value!r} (not in the model catalog{hint})")
    return value


def _int_in(value: object, where: _Where, name: str, low: int) -> int:
    if not _is_int(value) or value < low:  # type: ignore[operator]
        raise where.fail(name, f"must be an integer >= {low}, got {value!r}")
    return value  # type: ignore[return-value]


def _free_form(value: object, where: _Where, name: str, depth: int = 0) -> Any:
    """Metadata and evidence are free-form but must stay plain YAML data, so a dump round-trips them."""
    if depth > _MAX_DEPTH:
        raise where.fail(name, "nested too deeply")
    if value is None or isinstance(value, bool):
        return value
    # Subclasses (numpy scalars, str enums) become the plain type so a dump can represent them.
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise where.fail(name, f"must be a finite number, got {value!r}")
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_free_form(item, where, f"{name}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise where.fail(name, f"keys must be strings, got {key!r}")
            out[key] = _free_form(item, where, f"{name}.{key}", depth + 1)
        return out
    raise where.fail(name, f"must be plain data (string, number, list, mapping), got {type(value).__name__}")


def _parse_when(value: object, where: _Where) -> Conditions:
    data = _mapping(value, where, "when", ("models", "input_tokens_min", "input_tokens_max"))
    models = None
    if "models" in data:
        raw = data["models"]
        if not isinstance(raw, list) or not raw:
            raise where.fail("when.models", f"must be a non-empty list of model names, got {raw!r}")
        models = tuple(_known_model(m, where, f"when.models[{i}]") for i, m in enumerate(raw))
    low = _int_in(data["input_tokens_min"], where, "when.input_tokens_min", 0) if "input_tokens_min" in data else None
    high = _int_in(data["input_tokens_max"], where, "when.input_tokens_max", 1) if "input_tokens_max" in data else None
    if low is not None and high is not None and low >= high:
        raise where.fail("when.input_tokens_max", f"must be greater than input_tokens_min ({low}), got {high}")
    return Conditions(models=models, input_tokens_min=low, input_tokens_max=high)


def _parse_cache(value: object, where: _Where) -> CacheAction:
    data = _mapping(value, where, "cache", ("ttl", "targets", "conversation"))
    if "ttl" not in data and "conversation" not in data:
        raise where.fail("cache.ttl", "is required")
    ttl = _choice(data["ttl"], where, "cache.ttl", CACHE_TTLS) if "ttl" in data else "none"
    conversation = "none"
    if "conversation" in data:
        inner = _mapping(data["conversation"], where, "cache.conversation", ("ttl",))
        if "ttl" not in inner:
            raise where.fail("cache.conversation.ttl", "is required")
        conversation = _choice(inner["ttl"], where, "cache.conversation.ttl", CACHE_TTLS)
    if ttl == "5m" and conversation == "1h":
        # The conversation's breakpoints come after those on tools and system.
        raise where.fail("cache.conversation.ttl", "cannot be 1h when cache.ttl is 5m: the API needs every 1h "
                         "breakpoint before any 5m one (use 1h for both, or 5m for the conversation)")
    targets = CACHE_TARGETS
    if "targets" in data:
        raw = data["targets"]
        if not isinstance(raw, list) or not raw:
            raise where.fail("cache.targets", f"must be a non-empty list of {', '.join(CACHE_TARGETS)}, got {raw!r}")
        chosen = [_choice(t, where, f"cache.targets[{i}]", CACHE_TARGETS) for i, t in enumerate(raw)]
        if len(set(chosen)) != len(chosen):
            raise where.fail("cache.targets", f"lists a target twice: {raw!r}")
        targets = tuple(t for t in CACHE_TARGETS if t in chosen)
    return CacheAction(ttl=ttl, targets=targets, conversation_ttl=conversation)


def _parse_explore(value: object, where: _Where) -> Explore:
    data = _mapping(value, where, "explore", ("model", "share", "max_tokens"))
    for key in ("model", "share"):
        if key not in data:
            raise where.fail(f"explore.{key}", "is required")
    share = data["share"]
    if not _is_number(share) or not 0 < share <= MAX_EXPLORE_SHARE:
        raise where.fail("explore.share", f"must be a number in (0, {MAX_EXPLORE_SHARE}], got {share!r}")
    max_tokens = _int_in(data["max_tokens"], where, "explore.max_tokens", 1) if "max_tokens" in data else None
    return Explore(
        model=_known_model(data["model"], where, "explore.model"), share=float(share), max_tokens=max_tokens
    )


def _parse_judge(value: object, where: _Where, name: str) -> Judge:
    data = _mapping(value, where, name, ("model", "rubric"))
    if "model" not in data:
        raise where.fail(f"{name}.model", "is required")
    rubric = data.get("rubric")
    if rubric is not None and (not isinstance(rubric, str) or not rubric.strip() or len(rubric) > _MAX_RUBRIC_CHARS):
        raise where.fail(f"{name}.rubric", f"must be a non-empty string of at most {_MAX_RUBRIC_CHARS} characters")
    return Judge(model=_known_model(data["model"], where, f"{name}.model"), rubric=rubric)


def _parse_evaluate(value: object, where: _Where) -> Evaluate:
    data = _mapping(value, where, "evaluate", ("model", "share", "budget", "max_tokens", "judge", "pair_cost"))
    for key in ("model", "share"):
        if key not in data:
            raise where.fail(f"evaluate.{key}", "is required")
    share = data["share"]
    if not _is_number(share) or not 0 < share <= MAX_EVALUATE_SHARE:
        raise where.fail("evaluate.share", f"must be a number in (0, {MAX_EVALUATE_SHARE}], got {share!r}")
    budget = data.get("budget", DEFAULT_EVALUATION_BUDGET)
    if not _is_number(budget) or not 0 < budget <= 1:
        raise where.fail("evaluate.budget", f"must be a number in (0, 1], got {budget!r}")
    max_tokens = _int_in(data["max_tokens"], where, "evaluate.max_tokens", 1) if "max_tokens" in data else None
    pair_cost = data.get("pair_cost")
    if pair_cost is not None and (not _is_number(pair_cost) or pair_cost < 0):
        raise where.fail("evaluate.pair_cost", f"must be a finite number >= 0 (USD), got {pair_cost!r}")
    return Evaluate(
        model=_known_model(data["model"], where, "evaluate.model"),
        share=float(share),
        budget=float(budget),
        max_tokens=max_tokens,
        judge=_parse_judge(data["judge"], where, "evaluate.judge") if "judge" in data else None,
        pair_cost=None if pair_cost is None else float(pair_cost),
    )


_RULE_KEYS = (
    "task", "when", "model", "max_tokens", "max_tokens_mode", "cache", "explore", "evaluate", "evidence"
)


def _parse_rule(value: object, index: int, seen: dict[str, int], base: _Where) -> Rule:
    task = value.get("task") if isinstance(value, Mapping) else None
    label = f"rules[{index}]" + (f" (task {task!r})" if isinstance(task, str) else "")
    where = base.at(label)
    data = _mapping(value, where, "", _RULE_KEYS) if isinstance(value, Mapping) else None
    if data is None:
        raise where.fail("rules", f"each rule must be a mapping, got {type(value).__name__}")
    if not isinstance(task, str) or not task.strip():
        raise where.fail("task", f"is required and must be a non-empty string, got {task!r}")
    number = seen.get(task, 0)
    seen[task] = number + 1
    # Each field on its own: a problem in one is recorded and the others are still checked.
    parsers: dict[str, Callable[[Any], Any]] = {
        "when": lambda v: _parse_when(v, where),
        "model": lambda v: _known_model(v, where, "model"),
        "max_tokens": lambda v: _int_in(v, where, "max_tokens", 1),
        "max_tokens_mode": lambda v: _choice(v, where, "max_tokens_mode", MAX_TOKENS_MODES),
        "cache": lambda v: _parse_cache(v, where),
        "explore": lambda v: _parse_explore(v, where),
        "evaluate": lambda v: _parse_evaluate(v, where),
        "evidence": lambda v: _free_form(v, where, "evidence"),
    }
    fields = {key: where.attempt(lambda parse=parse, key=key: parse(data[key]))
              for key, parse in parsers.items() if key in data}
    return Rule(
        task=task,
        id=f"{task}#{number}",
        when=fields.get("when"),
        model=fields.get("model"),
        max_tokens=fields.get("max_tokens"),
        max_tokens_mode=fields.get("max_tokens_mode") or "cap",
        cache=fields.get("cache"),
        explore=fields.get("explore"),
        evaluate=fields.get("evaluate"),
        evidence=fields.get("evidence") or {},
    )


def parse_judge(data: object, source: str) -> Judge:
    """A judge given outside a policy (the `judge` option of `instrument()`), validated as a rule's judge is."""
    return _parse_judge(data, _Where(source), "judge")


_LIMIT_KEYS = (
    "task", "models", "concurrency", "requests_per_minute", "input_tokens_per_minute", "output_tokens_per_minute",
    "adaptive", "max_wait", "on_timeout", "evidence",
)
_LIMIT_VALUES = ("concurrency", "requests_per_minute", "input_tokens_per_minute", "output_tokens_per_minute")


def limit_id(task: str, models: tuple[str, ...] | None) -> str:
    """The name of a limit entry's limiter (metrics label, span attribute): `task/model+model`, `*` for any."""
    return f"{task}/{'+'.join(models) if models else '*'}"


def _parse_limit(value: object, index: int, seen: set[str], base: _Where) -> Limit:
    where = base.at(f"limits[{index}]")
    data = _mapping(value, where, "", _LIMIT_KEYS) if isinstance(value, Mapping) else None
    if data is None:
        raise where.fail("limits", f"each limit must be a mapping, got {type(value).__name__}")
    task = data.get("task", "*")
    if not isinstance(task, str) or not task.strip():
        raise where.fail("task", f"must be a non-empty string, got {task!r}")
    models = None
    if "models" in data:
        raw = data["models"]
        if not isinstance(raw, list) or not raw:
            raise where.fail("models", f"must be a non-empty list of model names, got {raw!r}")
        # Canonical names: an alias and its dated snapshot draw on the same account limit.
        named = [_known_model(m, where, f"models[{i}]") for i, m in enumerate(raw)]
        models = tuple(sorted({resolve(m).model for m in named}))  # type: ignore[union-attr]
    numbers = {key: where.attempt(lambda key=key: _int_in(data[key], where, key, 1))
               for key in _LIMIT_VALUES if key in data}
    adaptive = data.get("adaptive", True)
    if not isinstance(adaptive, bool):
        where.note("adaptive", f"must be true or false, got {adaptive!r}")
    elif not numbers and not adaptive:
        where.note("adaptive", "sets no limit: give a concurrency or a per-minute limit, or adaptive: true")
    max_wait = data.get("max_wait", 60.0)
    if not _is_number(max_wait) or not 0 <= max_wait <= MAX_WAIT_SECONDS:
        where.note("max_wait", f"must be a number of seconds in [0, {MAX_WAIT_SECONDS:g}], got {max_wait!r}")
        max_wait = 0.0
    on_timeout = where.attempt(lambda: _choice(data.get("on_timeout", "proceed"), where, "on_timeout", ON_TIMEOUT))
    evidence = where.attempt(lambda: _free_form(data.get("evidence", {}), where, "evidence"))
    name = limit_id(task, models)
    if name in seen:
        raise where.fail("models", f"repeats the selector of an earlier limit ({name}): the first would always win")
    seen.add(name)
    return Limit(
        task=task,
        models=models,
        id=name,
        adaptive=adaptive,
        max_wait=float(max_wait),
        on_timeout=on_timeout or "proceed",
        evidence=evidence or {},
        **numbers,  # type: ignore[arg-type]  # a None here came with a recorded problem: the policy is rejected
    )


_TOP_KEYS = ("schema_version", "version", "mode", "rollout_percent", "metadata", "rules", "limits")


def parse_policy(data: object, source: str) -> Policy:
    """Validate parsed YAML/JSON data as a schema-v1 policy; `source` names the file in error messages."""
    where = _Where(source)
    if not isinstance(data, Mapping):
        raise PolicyError(f"{source}: a policy must be a YAML mapping, got {type(data).__name__}")
    _mapping(data, where, "", _TOP_KEYS)
    if "schema_version" not in data:
        where.note("schema_version", "is required")
    elif data["schema_version"] != SCHEMA_VERSION or not _is_int(data["schema_version"]):
        # Another schema's fields mean other things: checking them against this one would only list noise.
        where.note("schema_version", f"must be {SCHEMA_VERSION}, got {data['schema_version']!r}")
        raise PolicyError(where.problems)
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        where.note("version", f"is required and must be a non-empty string, got {version!r}")
    rollout = data.get("rollout_percent", 100)
    if not _is_number(rollout) or not 0 <= rollout <= 100:
        where.note("rollout_percent", f"must be a number in [0, 100], got {rollout!r}")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, Mapping):
        where.note("metadata", f"must be a mapping, got {type(metadata).__name__}")
        metadata = {}
    mode = where.attempt(lambda: _choice(data.get("mode", "enforce"), where, "mode", MODES))
    rules = data.get("rules")
    if "rules" not in data:
        # Required, even empty: a file cut short after its header must not pass as a policy that changes nothing.
        where.note("rules", "is required (an empty list for a policy without rules)")
    elif not isinstance(rules, list):
        where.note("rules", f"must be a list, got {type(rules).__name__}")
    limits = data.get("limits", [])
    if not isinstance(limits, list):
        where.note("limits", f"must be a list, got {type(limits).__name__}")
    seen: dict[str, int] = {}
    limit_ids: set[str] = set()
    parsed_rules = [where.attempt(lambda i=i, rule=rule: _parse_rule(rule, i, seen, where))
                    for i, rule in enumerate(rules if isinstance(rules, list) else [])]
    parsed_limits = [where.attempt(lambda i=i, limit=limit: _parse_limit(limit, i, limit_ids, where))
                     for i, limit in enumerate(limits if isinstance(limits, list) else [])]
    parsed_metadata = where.attempt(lambda: _free_form(metadata, where, "metadata"))
    if where.problems:
        raise PolicyError(where.problems)
    return Policy(
        version=version,  # type: ignore[arg-type]  # checked above: no problem means each is valid
        rules=tuple(parsed_rules),  # type: ignore[arg-type]
        mode=mode,  # type: ignore[arg-type]
        rollout_percent=rollout,
        metadata=parsed_metadata,  # type: ignore[arg-type]
        limits=tuple(parsed_limits),  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------------------------------------- loading


class _GuardedLoader(yaml.SafeLoader):
    """A SafeLoader that bounds nesting depth and the size of the document after alias expansion."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._expanded: dict[int, int] = {}

    def _charge(self, count: int) -> None:
        self._nodes += count
        if self._nodes > _MAX_NODES:
            raise yaml.YAMLError(f"document expands to more than {_MAX_NODES} nodes (alias bomb?)")

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            # An alias re-uses a subtree: charge its expanded size so nested aliases cannot multiply unseen.
            self._charge(self._expanded.get(id(node), 1))
            return node
        self._depth += 1
        if self._depth > _MAX_DEPTH:
            raise yaml.YAMLError(f"document nests deeper than {_MAX_DEPTH} levels")
        before = self._nodes
        self._charge(1)
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._expanded[id(node)] = self._nodes - before
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        keys = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str) and key in keys:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            keys.add(key)
        return super().construct_mapping(node, deep=deep)


def load_policy_text(text: str, source: str, max_bytes: int = 1_000_000) -> Policy:
    """Parse and validate policy YAML from an untrusted source; oversized input is rejected before parsing."""
    # Characters never outnumber bytes, so the cheap length test rejects most oversized input before encoding it.
    size = len(text) if len(text) > max_bytes else len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise PolicyError(f"{source}: policy is {size} bytes, larger than the limit of {max_bytes}")
    try:
        data = yaml.load(text, Loader=_GuardedLoader)  # _GuardedLoader subclasses SafeLoader
    except yaml.YAMLError as err:
        raise PolicyError(f"{source}: not valid YAML: {err}") from None
    return parse_policy(data, source)


# --------------------------------------------------------------------------------------------------------- dumping


class _PlainDumper(yaml.SafeDumper):
    """Never writes anchors/aliases: a policy is read by people, and identical evidence dicts must not alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def _rule_data(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"task": rule.task}
    if rule.when is not None:
        when: dict[str, Any] = {}
        if rule.when.models is not None:
            when["models"] = list(rule.when.models)
        if rule.when.input_tokens_min is not None:
            when["input_tokens_min"] = rule.when.input_tokens_min
        if rule.when.input_tokens_max is not None:
            when["input_tokens_max"] = rule.when.input_tokens_max
        out["when"] = when
    if rule.model is not None:
        out["model"] = rule.model
    if rule.max_tokens is not None:
        out["max_tokens"] = rule.max_tokens
        out["max_tokens_mode"] = rule.max_tokens_mode
    if rule.cache is not None:
        out["cache"] = {"ttl": rule.cache.ttl, "targets": list(rule.cache.targets)}
        if rule.cache.conversation_ttl != "none":
            out["cache"]["conversation"] = {"ttl": rule.cache.conversation_ttl}
    if rule.explore is not None:
        out["explore"] = {"model": rule.explore.model, "share": rule.explore.share}
        if rule.explore.max_tokens is not None:
            out["explore"]["max_tokens"] = rule.explore.max_tokens
    if rule.evaluate is not None:
        out["evaluate"] = _evaluate_data(rule.evaluate)
    if rule.evidence:
        out["evidence"] = _sorted(rule.evidence)
    return out


def _evaluate_data(evaluate: Evaluate) -> dict[str, Any]:
    out: dict[str, Any] = {"model": evaluate.model, "share": evaluate.share, "budget": evaluate.budget}
    if evaluate.max_tokens is not None:
        out["max_tokens"] = evaluate.max_tokens
    if evaluate.judge is not None:
        out["judge"] = {"model": evaluate.judge.model}
        if evaluate.judge.rubric is not None:
            out["judge"]["rubric"] = evaluate.judge.rubric
    if evaluate.pair_cost is not None:
        out["pair_cost"] = evaluate.pair_cost
    return out


def _limit_data(limit: Limit) -> dict[str, Any]:
    out: dict[str, Any] = {"task": limit.task}
    if limit.models is not None:
        out["models"] = list(limit.models)
    for key in _LIMIT_VALUES:
        value = getattr(limit, key)
        if value is not None:
            out[key] = value
    out["adaptive"] = limit.adaptive
    out["max_wait"] = limit.max_wait
    out["on_timeout"] = limit.on_timeout
    if limit.evidence:
        out["evidence"] = _sorted(limit.evidence)
    return out


def dump_policy(policy: Policy) -> str:
    """Deterministic YAML for a policy (fixed key order, sorted free-form maps), validated by parsing it back."""
    data = {
        "schema_version": policy.schema_version,
        "version": policy.version,
        "mode": policy.mode,
        "rollout_percent": policy.rollout_percent,
        "metadata": _sorted(policy.metadata),
        "rules": [_rule_data(rule) for rule in policy.rules],
    }
    if policy.limits:
        data["limits"] = [_limit_data(limit) for limit in policy.limits]
    try:
        text = yaml.dump(data, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False, width=120)
    except yaml.representer.RepresenterError as err:
        raise PolicyError(f"<dump of policy {policy.version}>: value is not plain data: {err}") from None
    load_policy_text(text, f"<dump of policy {policy.version}>", max_bytes=max(1_000_000, len(text) * 4))
    return text


def json_schema() -> dict[str, Any]:
    """The policy's JSON Schema (draft 2020-12) for editors and other tools; `parse_policy` remains the authority.

    Also shipped as the file `otel_claude/data/policy.schema.json`. It checks the structure, keys, enums and ranges;
    what needs the model catalog or compares two fields (`input_tokens_min < input_tokens_max`, one limit per
    selector) only `parse_policy` checks.
    """
    text = resources.files("otel_claude").joinpath("data", "policy.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
