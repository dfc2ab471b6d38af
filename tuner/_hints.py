"""What the input lacks for tuning, said with the fix: a run on unlabelled or unscored spans must not end in a
silent "0 rules" or a column of "insufficient evidence"."""

from __future__ import annotations

from otel_claude.policy import Policy
from tuner._dataset import Dataset
from tuner._records import UNLABELLED

__all__ = ["evidence_hints"]

_LABEL_HOW = 'label calls by the job they do: with otel_claude.task("classify"): client.messages.create(...)'


def evidence_hints(dataset: Dataset, policy: Policy, evaluate_share: float) -> list[str]:
    """One line per gap in the input that keeps the tuner from deciding, each naming how to close it.

    `evaluate_share`: the run's --evaluate-share (0: no `evaluate` blocks were asked for).
    """
    hints = []
    unlabelled = sum(stats.calls for stats in dataset.models if stats.task == UNLABELLED)
    labelled = sum(stats.calls for stats in dataset.models if stats.task != UNLABELLED)
    if unlabelled and not labelled:
        hints.append(f"none of the {unlabelled} calls has a task label, so nothing is tuned (decisions are per "
                     f"task): {_LABEL_HOW}")
    elif unlabelled:
        share = unlabelled / (unlabelled + labelled)
        hints.append(f"{unlabelled} of {unlabelled + labelled} calls ({share:.0%}) have no task label and are left "
                     f"as they are: {_LABEL_HOW}")
    if labelled and dataset.feedback == 0 and not dataset.verdicts:
        models = sorted({stats.model for stats in dataset.models if stats.task != UNLABELLED})
        if any(rule.evaluate is not None for rule in policy.rules):
            fix = ("enforce this policy for a while and tune again: its `evaluate` blocks send a share of each "
                   "task's calls to a cheaper candidate in the background and grade the pairs")
        elif evaluate_share <= 0:
            fix = ("tune with --evaluate-share above 0 to get `evaluate` blocks (paired evaluation) and enforce "
                   "that policy for a while")
        else:
            fix = (f"the calls use {', '.join(models)} only, so there is no cheaper model to evaluate: name the "
                   "ones to consider with --candidates MODEL,MODEL, then enforce the policy's `evaluate` blocks")
        hints.append(f"no quality evidence (no feedback scores, no paired verdicts), so no task can move to a "
                     f"cheaper model yet: {fix}; or record scores with otel_claude.feedback(reply, score)")
    elif dataset.feedback and dataset.feedback_unmatched == dataset.feedback and not dataset.verdicts:
        hints.append(f"all {dataset.feedback} feedback scores name response ids that no call in the input has: "
                     "read the calls' spans together with their feedback (same files or time window)")
    return hints
