"""What a training log says, whatever wrote it: one spelling for keys that changed across
transformers/TRL versions, and the eval sets a run reports (eval_loss, eval_<name>_loss)."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from cockpit.series import Marks
from engine.events import number

KEPT_EVALS = 4096  # eval results kept per eval set (one every few hundred steps: years of training)
_PREFERENCE_SUFFIXES = ("/chosen", "/rejected", "/margins", "/accuracies")


def normalize_metrics(logs: dict[str, Any]) -> dict[str, Any]:
    """One spelling for the keys that changed across transformers/TRL versions.

    lr -> learning_rate; completion_length -> completions/mean_length; rewards/<fn> ->
    rewards/<fn>/mean; a missing `reward` becomes the sum of the per-function means. DPO's
    rewards/chosen and friends are left alone.
    """
    if "lr" not in logs and "completion_length" not in logs and not any(k.startswith("rewards/") for k in logs):
        return logs  # already in today's spelling (the common case: no copy)
    out = dict(logs)
    if "learning_rate" not in out and "lr" in out:
        out["learning_rate"] = out["lr"]
    if "completions/mean_length" not in out and "completion_length" in out:
        out["completions/mean_length"] = out["completion_length"]
    fn_means = []
    for key in logs:
        if not key.startswith("rewards/") or key.endswith(_PREFERENCE_SUFFIXES):
            continue
        if key.endswith("/mean"):
            fn_means.append(key)
        elif not key.endswith("/std") and key.count("/") == 1:
            out.setdefault(key + "/mean", logs[key])
            fn_means.append(key + "/mean")
    if "reward" not in out and fn_means:
        values = [number(out[k]) for k in fn_means]
        if all(v is not None for v in values):
            out["reward"] = sum(values)  # type: ignore[arg-type]
    return out


class EvalSet:
    """One eval set's losses (eval_loss, or eval_<name>_loss), with the train loss level at each."""

    def __init__(self, name: str):
        self.name = name
        self.steps: deque[int] = deque(maxlen=KEPT_EVALS)
        self.values: deque[float] = deque(maxlen=KEPT_EVALS)
        self.epochs: deque[float | None] = deque(maxlen=KEPT_EVALS)
        self.train_levels: deque[float | None] = deque(maxlen=KEPT_EVALS)
        self.best: tuple[int, float] | None = None  # (step, value)
        self.nan_steps = Marks()

    @property
    def key(self) -> str:
        return f"eval_{self.name}_loss" if self.name else "eval_loss"

    @property
    def best_index(self) -> int | None:
        """Index of the best value among those kept (the best is kept: it is never pushed out first)."""
        if self.best is None:
            return None
        step = self.best[0]
        for i in range(len(self.steps) - 1, -1, -1):
            if self.steps[i] == step:
                return i
        return None

    def add(self, step: int, value: float, epoch: float | None, train_level: float | None) -> None:
        if not math.isfinite(value):
            self.nan_steps.append(step)
            return
        self.steps.append(step)
        self.values.append(value)
        self.epochs.append(epoch)
        self.train_levels.append(train_level)
        if self.best is None or value < self.best[1]:
            self.best = (step, value)
