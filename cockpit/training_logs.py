"""What the training logs say, folded: the loss and its level, grad_norm, the learning rate, and
every other metric the rules follow (GRPO's rewards, lengths, KL ...). Part of RunState (cockpit/state.py),
which owns the events; this owns the `metrics` event. Standard library only; series are bounded.
"""

from __future__ import annotations

import math
from typing import Any

from cockpit.logs import normalize_metrics
from cockpit.series import Marks, Series, Window
from engine.events import number

# Logs at the start of a run that no dynamics rule judges: warm-up, loss-scale calibration and
# tiny-sample noise make them unrepresentative.
WARMUP_LOGS = 5
# Loss level = median of the last few logs: robust to a single odd batch, quick to follow a trend.
SMOOTH_LOGS = 5
# Running median window for grad_norm spikes.
GRAD_WINDOW = 50
_PREFERENCE_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")
# A metrics log with any of these keys is GRPO's (the one list: the rules and the charts use it).
GRPO_KEYS = ("reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "completions/clipped_ratio", "kl")
# What the rules follow on GRPO runs.
GRPO_TRACKED = ("reward", "reward_std", "frac_reward_zero_std", "completions/clipped_ratio",
                "completions/mean_length", "completions/max_length", "kl", "entropy")
# ... and every rewards/<function>/mean|std and clip_ratio/* key the log has.
# Charted metric keys (the chart specs are RunState's).
CHARTED = ("loss", "grad_norm", "learning_rate", "reward", "kl", "completions/mean_length")


class TrainingLogs:
    """The `metrics` half of RunState: bounded series and the counts the rules read."""

    def _init_training_logs(self) -> None:
        self.n_logs = 0
        self.loss = Series()
        self.loss_window = Window(SMOOTH_LOGS)
        self.loss_nonfinite = Marks()
        self.loss_broken = Marks()  # logs whose loss reads exactly 0 while grad_norm is NaN/Inf
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
        self.grad_nonfinite = Marks()
        self.grad_nonfinite_run = 0
        self.grad_nonfinite_run_max = 0
        self.grad_logs_after_warmup = 0
        self.grad_spikes = Marks()  # (step, grad_norm, running median)
        self.grad_peak: tuple[int, float, float | None] | None = None  # (step, grad_norm, median before): the largest jump
        self.weights_broken: int | None = None  # first step whose loss or (not fp16) grad_norm is NaN/Inf
        self.healthy_loss: tuple[int, float] | None = None  # the last (step, loss) before the weights broke
        self.backtracks = Marks()  # (step reached, step logged after it) within one engine process
        self.lr_seen = 0
        self.lr_zero_steps = Marks()
        self.lr_recent_zero = 0  # consecutive latest logs with lr 0
        self.lr_last: float | None = None
        self.lr_max: float | None = None
        self.series: dict[str, Series] = {}  # GRPO and other tracked metrics
        self.windows: dict[str, Window] = {}
        self.firsts: dict[str, float] = {}  # level over the first SMOOTH_LOGS logs, per tracked metric

    def level_of(self, key: str) -> float | None:
        window = self.windows.get(key)
        return window.median() if window else None

    def _on_metrics(self, event: dict[str, Any]) -> None:
        self.metrics = event
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
            elif any(k in logs for k in GRPO_KEYS):
                self.kind = "grpo"
        for key in CHARTED:
            if key in logs:
                self._chart(key, step, number(logs[key]))
        if self.kind == "grpo":
            for key, value in logs.items():
                if key.startswith("rewards/") and key.endswith("/mean"):
                    self._chart(key, step, number(value))

        loss = number(logs.get("loss"))
        if loss is not None:
            if not math.isfinite(loss):
                self.loss_nonfinite.append(step)
                if self.weights_broken is None:
                    self.weights_broken = step
            else:
                self._add_loss(step, loss)

        grad = number(logs.get("grad_norm"))
        if grad is not None:
            self._add_grad(step, grad)

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
            for key in [*GRPO_TRACKED, *(k for k in logs if k.startswith(("rewards/", "clip_ratio")))]:
                value = number(logs.get(key))
                if value is not None and math.isfinite(value):
                    self._track(key, step, value)
                    if key == "reward_std":  # old logs: a zero-std share from reward_std alone
                        self._track("reward_std_zero", step, 1.0 if value <= 0.01 else 0.0)

    def _add_grad(self, step: int, grad: float) -> None:
        self.grad_seen += 1
        # The fp16 loss scaler overflows on purpose while it calibrates; bf16 and fp32 never skip a step.
        after_warmup = self.n_logs > WARMUP_LOGS or not self.scaler_skips
        if not math.isfinite(grad):
            if not self.scaler_skips and self.weights_broken is None:
                self.weights_broken = step  # the optimizer applies NaN gradients: the weights are NaN from here
            if after_warmup:  # the fp16 loss scaler overflows on purpose while it calibrates
                self.grad_nonfinite.append(step)
                self.grad_nonfinite_run += 1
                self.grad_nonfinite_run_max = max(self.grad_nonfinite_run_max, self.grad_nonfinite_run)
                self.grad_logs_after_warmup += 1
            return
        self.grad_nonfinite_run = 0
        if after_warmup:
            self.grad_logs_after_warmup += 1
        if grad == 0:
            self.grad_zero += 1
        median = self.grad_window.median()
        if median and (self.grad_peak is None or self.grad_peak[2] is None or grad / median > self.grad_peak[1] / self.grad_peak[2]):
            self.grad_peak = (step, grad, median)
        if after_warmup and len(self.grad_window) >= WARMUP_LOGS and median and grad >= 10 * median:
            self.grad_spikes.append((step, grad, median))
        self.grad_window.push(grad)

    def _add_loss(self, step: int, loss: float) -> None:
        self.loss.add(step, loss)
        if self.weights_broken is None:
            self.healthy_loss = (step, loss)
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


