"""Properties over generated inputs: the conformal rank rule and the policy dump/load round trip."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_claude.policy import CacheAction, Conditions, Explore, Policy, Rule, dump_policy, load_policy_text
from tuner._max_tokens import conformal_bound

_MODELS = ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6", "claude-sonnet-4-5-20250929"]


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=400),
    target=st.floats(min_value=0.005, max_value=0.5),
    data=st.data(),
)
def test_conformal_bound_leaves_at_most_n_times_target_above_it(lengths: list[int], target: float, data) -> None:
    values = np.array(lengths)
    censored = np.array(data.draw(st.lists(st.booleans(), min_size=len(lengths), max_size=len(lengths))))
    bound = conformal_bound(values, censored, target)
    n = len(lengths)
    if bound is None:
        assert math.ceil((n + 1) * (1 - target)) > n
        return
    # Censored values are unknown lengths >= their recorded value: count them as above any finite bound.
    above = np.count_nonzero((values > bound) & ~censored) + (np.count_nonzero(censored) if math.isfinite(bound) else 0)
    assert above <= n * target + 1e-9
    assert math.isinf(bound) == (np.count_nonzero(censored) > n - math.ceil((n + 1) * (1 - target)))


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-:.* ", min_size=1, max_size=12).filter(lambda s: s.strip())
_plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**9), 10**9)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _names,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_names, children, max_size=3),
    max_leaves=8,
)


@st.composite
def _rules(draw: st.DrawFn) -> Rule:
    low = draw(st.none() | st.integers(0, 5000))
    high = draw(st.none() | st.integers((low or 0) + 1, 10_000))
    models = draw(st.none() | st.lists(st.sampled_from(_MODELS), min_size=1, max_size=2).map(tuple))
    return Rule(
        task=draw(_names),
        when=draw(st.none() | st.just(Conditions(models=models, input_tokens_min=low, input_tokens_max=high))),
        model=draw(st.none() | st.sampled_from(_MODELS)),
        max_tokens=draw(st.none() | st.integers(1, 64_000)),
        max_tokens_mode=draw(st.sampled_from(["cap", "set"])),
        cache=draw(
            st.none()
            | st.builds(
                CacheAction,
                ttl=st.sampled_from(["5m", "1h", "none"]),
                targets=st.sampled_from([("tools",), ("system",), ("tools", "system")]),
            )
        ),
        explore=draw(
            st.none()
            | st.builds(Explore, model=st.sampled_from(_MODELS), share=st.floats(min_value=0.001, max_value=0.2))
        ),
        evidence=draw(st.dictionaries(_names, _plain, max_size=3)),
    )


@settings(max_examples=150, deadline=None)
@given(
    rules=st.lists(_rules(), max_size=5),
    metadata=st.dictionaries(_names, _plain, max_size=3),
    mode=st.sampled_from(["enforce", "shadow", "off"]),
    rollout=st.integers(0, 100) | st.floats(min_value=0, max_value=100),
)
def test_any_valid_policy_round_trips_through_yaml(rules: list[Rule], metadata: dict, mode: str, rollout) -> None:
    policy = Policy(version="v1", rules=tuple(rules), mode=mode, rollout_percent=rollout, metadata=metadata)
    text = dump_policy(policy)
    loaded = load_policy_text(text, "generated")
    assert dump_policy(loaded) == text
    for before, after in zip(policy.rules, loaded.rules, strict=True):
        # max_tokens_mode is only written with max_tokens; ids are assigned on load.
        expected_mode = before.max_tokens_mode if before.max_tokens is not None else "cap"
        assert (after.task, after.model, after.max_tokens, after.max_tokens_mode) == (
            before.task,
            before.model,
            before.max_tokens,
            expected_mode,
        )
        assert (after.when, after.cache, after.explore, after.evidence) == (
            before.when,
            before.cache,
            before.explore,
            before.evidence,
        )
