"""What the rules look at: the run so far, folded incrementally from its events in O(1) per log."""

from __future__ import annotations

import bisect
import math
import re
from collections import deque
from typing import Any

from engine.events import number

# Logs at the start of a run that no dynamics rule judges: warm-up, loss-scale calibration and
# tiny-sample noise make them unrepresentative.
WARMUP_LOGS = 5
# Loss level = median of the last few logs: robust to a single odd batch, quick to follow a trend.
SMOOTH_LOGS = 5
# Running median window for grad_norm spikes.
GRAD_WINDOW = 50

_EVAL_LOSS = re.compile(r"eval_(?:(.+)_)?loss")
_PREFERENCE_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")
_GRPO_KEYS = ("reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "completions/clipped_ratio", "kl")
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


class Window:
    """The last `size` values with their median, kept sorted so each push costs O(size) memmove."""

    def __init__(self, size: int):
        self.size = size
        self.items: deque[float] = deque()
        self.sorted: list[float] = []

    def push(self, value: float) -> None:
        self.items.append(value)
        bisect.insort(self.sorted, value)
        if len(self.items) > self.size:
            old = self.items.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]

    def __len__(self) -> int:
        return len(self.items)

    def median(self) -> float | None:
        n = len(self.sorted)
        if not n:
            return None
        mid = n // 2
        return self.sorted[mid] if n % 2 else (self.sorted[mid - 1] + self.sorted[mid]) / 2

    def mean(self) -> float | None:
        return sum(self.items) / len(self.items) if self.items else None


class Series:
    """A metric over the run: values, their steps and prefix sums for O(1) block means."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.steps: list[int] = []
        self._sum = [0.0]
        self._sq = [0.0]

    def add(self, step: int, value: float) -> None:
        self.values.append(value)
        self.steps.append(step)
        self._sum.append(self._sum[-1] + value)
        self._sq.append(self._sq[-1] + value * value)

    def __len__(self) -> int:
        return len(self.values)

    def mean(self, start: int, end: int) -> float:
        """Mean of values[start:end]."""
        return (self._sum[end] - self._sum[start]) / (end - start)

    def var(self, start: int, end: int) -> float:
        n = end - start
        if n < 2:
            return 0.0
        m = self.mean(start, end)
        return max(0.0, (self._sq[end] - self._sq[start]) / n - m * m) * n / (n - 1)


class EvalSet:
    """One eval set's losses (eval_loss, or eval_<name>_loss), with the train loss level at each."""

    def __init__(self, name: str):
        self.name = name
        self.steps: list[int] = []
        self.values: list[float] = []
        self.epochs: list[float | None] = []
        self.train_levels: list[float | None] = []
        self.best_index: int | None = None
        self.nan_steps: list[int] = []

    @property
    def key(self) -> str:
        return f"eval_{self.name}_loss" if self.name else "eval_loss"

    def add(self, step: int, value: float, epoch: float | None, train_level: float | None) -> None:
        if not math.isfinite(value):
            self.nan_steps.append(step)
            return
        self.steps.append(step)
        self.values.append(value)
        self.epochs.append(epoch)
        self.train_levels.append(train_level)
        if self.best_index is None or value < self.values[self.best_index]:
            self.best_index = len(self.values) - 1


class RunState:
    """Everything the rules need, updated one event at a time."""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.plan: dict[str, Any] = {}
        self.dataset: dict[str, Any] | None = None
        self.samples: list[dict[str, Any]] | None = None
        self.kind_hint: str | None = None  # from the config's run.type
        self.kind = "sft"  # sft | grpo | preference, refined from the logs' keys
        self.step: int | None = None
        self.epoch: float | None = None
        self.last: dict[str, Any] = {}  # the latest metrics payload, normalized
        # Training logs.
        self.n_logs = 0
        self.loss = Series()
        self.loss_window = Window(SMOOTH_LOGS)
        self.loss_nonfinite: list[int] = []
        self.loss_broken: list[int] = []  # logs whose loss reads exactly 0 while grad_norm is NaN/Inf
        self.first_loss: float | None = None
        self.start_level: float | None = None  # loss level over the first SMOOTH_LOGS logs
        self.level: float | None = None  # current loss level (median of the last SMOOTH_LOGS)
        self.prev_level: float | None = None
        self.low_level: float | None = None
        self.low_step: int | None = None
        self.min_loss: float | None = None
        self.min_loss_step: int | None = None
        self.leading_zero_logs = 0  # logs since the start whose loss is exactly 0
        self.loss_ever_nonzero = False
        self.grad_window = Window(GRAD_WINDOW)
        self.grad_seen = 0
        self.grad_zero = 0
        self.grad_nonfinite: list[int] = []
        self.grad_nonfinite_run = 0
        self.grad_nonfinite_run_max = 0
        self.grad_logs_after_warmup = 0
        self.grad_spikes: list[tuple[int, float, float]] = []  # (step, grad_norm, running median)
        self.lr_seen = 0
        self.lr_zero_steps: list[int] = []
        self.lr_recent_zero = 0  # consecutive latest logs with lr 0
        self.lr_last: float | None = None
        self.lr_max: float | None = None
        self.series: dict[str, Series] = {}  # GRPO and other tracked metrics
        self.windows: dict[str, Window] = {}
        self.firsts: dict[str, float] = {}  # level over the first SMOOTH_LOGS logs, per tracked metric
        # Evaluation.
        self.eval_sets: dict[str, EvalSet] = {}
        self.n_evals = 0
        self.evals_without_loss = 0
        # Run state.
        self.checkpoints: list[tuple[int, str]] = []
        self.errors: list[dict[str, Any]] = []
        self.finished: dict[str, Any] | None = None
        self._lr_set: float | None = None  # learning rate from the config or the plan
        self.raised: set[str] = set()  # codes of the findings raised so far (kept by the Diagnoser)

    # ---- helpers the rules use --------------------------------------------------------------

    def cfg(self, dotted: str, default: Any = None) -> Any:
        section, _, key = dotted.partition(".")
        value = (self.config.get(section) or {}).get(key, default)
        return default if value is None else value

    @property
    def total_steps(self) -> int | None:
        total = self.plan.get("total_steps")
        return int(total) if isinstance(total, (int, float)) and total > 0 else None

    @property
    def lr(self) -> float | None:
        """The configured peak learning rate, else the largest one logged."""
        return self._lr_set if self._lr_set is not None else self.lr_max

    @property
    def finetune(self) -> str | None:
        return self.cfg("model.finetune")

    def checkpoint_at(self, step: int) -> str | None:
        for s, path in self.checkpoints:
            if s == step:
                return path
        return None

    def level_of(self, key: str) -> float | None:
        window = self.windows.get(key)
        return window.median() if window else None

    # ---- folding events ---------------------------------------------------------------------

    def update(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        step = event.get("step")
        if isinstance(step, (int, float)) and not isinstance(step, bool):
            self.step = int(step)
        handler = getattr(self, "_on_" + str(kind), None)
        if handler is not None:
            handler(event)

    def _on_run_started(self, event: dict[str, Any]) -> None:
        config = event.get("config")
        if isinstance(config, dict):
            self.config = config
            run_type = (config.get("run") or {}).get("type")
            self._lr_set = number((config.get("train") or {}).get("learning_rate")) or self._lr_set
            if run_type in ("sft", "grpo"):
                self.kind_hint = run_type
                self.kind = run_type

    def _on_status(self, event: dict[str, Any]) -> None:
        plan = event.get("plan")
        if isinstance(plan, dict):
            self.plan = plan
            if self._lr_set is None:
                self._lr_set = number(plan.get("learning_rate"))

    def _on_dataset(self, event: dict[str, Any]) -> None:
        self.dataset = event

    def _on_samples(self, event: dict[str, Any]) -> None:
        samples = event.get("samples")
        if isinstance(samples, list):
            self.samples = [s for s in samples if isinstance(s, dict)]

    def _on_checkpoint(self, event: dict[str, Any]) -> None:
        if self.step is not None:
            self.checkpoints.append((self.step, str(event.get("path") or f"checkpoint-{self.step}")))

    def _on_error(self, event: dict[str, Any]) -> None:
        self.errors.append(event)

    def _on_run_finished(self, event: dict[str, Any]) -> None:
        self.finished = event

    def _on_eval(self, event: dict[str, Any]) -> None:
        self.n_evals += 1
        step = self.step if self.step is not None else 0
        epoch = number(event.get("epoch"))
        found = False
        for key, raw in event.items():
            match = _EVAL_LOSS.fullmatch(key)
            if not match:
                continue
            value = number(raw)
            if value is None:
                continue
            found = True
            name = match.group(1) or ""
            eval_set = self.eval_sets.get(name)
            if eval_set is None:
                eval_set = self.eval_sets[name] = EvalSet(name)
            eval_set.add(step, value, epoch, self.level)
        if not found:
            self.evals_without_loss += 1

    def _on_metrics(self, event: dict[str, Any]) -> None:
        logs = normalize_metrics(event)
        self.last = logs
        step = self.step if self.step is not None else self.n_logs + 1
        self.n_logs += 1
        epoch = number(logs.get("epoch"))
        if epoch is not None:
            self.epoch = epoch
        if self.kind_hint is None and self.kind == "sft" and self.n_logs <= WARMUP_LOGS:
            if any(k in logs for k in _PREFERENCE_KEYS):
                self.kind = "preference"
            elif any(k in logs for k in _GRPO_KEYS):
                self.kind = "grpo"

        loss = number(logs.get("loss"))
        if loss is not None:
            if not math.isfinite(loss):
                self.loss_nonfinite.append(step)
            else:
                self._add_loss(step, loss)

        grad = number(logs.get("grad_norm"))
        if grad is not None:
            self.grad_seen += 1
            after_warmup = self.n_logs > WARMUP_LOGS
            if not math.isfinite(grad):
                if after_warmup:  # the fp16 loss scaler overflows on purpose while it calibrates
                    self.grad_nonfinite.append(step)
                    self.grad_nonfinite_run += 1
                    self.grad_nonfinite_run_max = max(self.grad_nonfinite_run_max, self.grad_nonfinite_run)
                    self.grad_logs_after_warmup += 1
            else:
                self.grad_nonfinite_run = 0
                if after_warmup:
                    self.grad_logs_after_warmup += 1
                if grad == 0:
                    self.grad_zero += 1
                median = self.grad_window.median()
                if after_warmup and len(self.grad_window) >= WARMUP_LOGS and median and grad >= 10 * median:
                    self.grad_spikes.append((step, grad, median))
                self.grad_window.push(grad)

        if loss == 0 and grad is not None and not math.isfinite(grad) and self.loss_ever_nonzero:
            self.loss_broken.append(step)  # NaN weights: some trainers report such a loss as 0

        lr = number(logs.get("learning_rate"))
        if lr is not None and math.isfinite(lr):
            self.lr_seen += 1
            self.lr_last = lr
            self.lr_max = lr if self.lr_max is None else max(self.lr_max, lr)
            if lr == 0:
                self.lr_zero_steps.append(step)
                self.lr_recent_zero += 1
            else:
                self.lr_recent_zero = 0

        if self.kind == "grpo":
            for key in ("reward", "reward_std", "frac_reward_zero_std", "completions/clipped_ratio",
                        "completions/mean_length", "completions/max_length", "kl", "entropy"):
                value = number(logs.get(key))
                if value is not None and math.isfinite(value):
                    self._track(key, step, value)
                    if key == "reward_std":  # old logs: a zero-std share from reward_std alone
                        self._track("reward_std_zero", step, 1.0 if value <= 0.01 else 0.0)

    def _add_loss(self, step: int, loss: float) -> None:
        self.loss.add(step, loss)
        if self.first_loss is None:
            self.first_loss = loss
        if loss != 0:
            self.loss_ever_nonzero = True
        elif not self.loss_ever_nonzero:
            self.leading_zero_logs += 1
        if self.min_loss is None or loss < self.min_loss:
            self.min_loss, self.min_loss_step = loss, step
        self.prev_level = self.level
        self.loss_window.push(loss)
        self.level = self.loss_window.median()
        if len(self.loss) == SMOOTH_LOGS:
            self.start_level = self.level
        if self.low_level is None or self.level < self.low_level:  # type: ignore[operator]
            self.low_level, self.low_step = self.level, step

    def _track(self, key: str, step: int, value: float) -> None:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series()
            self.windows[key] = Window(SMOOTH_LOGS)
        series.add(step, value)
        self.windows[key].push(value)
        if len(series) == SMOOTH_LOGS:
            self.firsts[key] = self.windows[key].median()  # type: ignore[assignment]
