"""Which evaluation is the best one: the rule that picks best/ (engine) and that readers report
(cockpit doctor, the TUI). Standard library only.

SFT keeps the lowest eval_loss. GRPO's eval loss says nothing about the answers (it is ~0 by
construction), so GRPO keeps the highest answer accuracy; ties, common on a few dozen prompts, go
to the higher format accuracy, then to the higher mean reward.
"""

from __future__ import annotations

import math
from typing import Any

SFT = ("eval_loss",)
GRPO = ("eval_answer_accuracy", "eval_format_accuracy", "eval_reward")
HIGHER_IS_BETTER = {"eval_loss": False}  # every other ranked key: higher is better


def keys_for(run_type: str) -> tuple[str, ...]:
    return GRPO if run_type == "grpo" else SFT


def score(metrics: dict[str, Any], keys: tuple[str, ...]) -> tuple[float, ...] | None:
    """The ranked values of one evaluation, signed so that larger is better; None without the first
    key the evaluation has (a run without ground truth ranks by format accuracy, then reward)."""
    values = []
    for key in keys:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            values.append(float(value) if HIGHER_IS_BETTER.get(key, True) else -float(value))
    return tuple(values) or None


def better(candidate: tuple[float, ...] | None, best: tuple[float, ...] | None) -> bool:
    """Strictly better: an equal evaluation keeps the earlier best/."""
    return candidate is not None and (best is None or candidate > best)


def ranked(metrics: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The ranked keys an evaluation has, as logged (for cockpit_best.json and the readers)."""
    return {k: metrics[k] for k in keys if k in metrics}
