"""The NaN guard (train.nan_guard, on by default): a run whose loss or weights turn NaN/Inf stops
within one log, and nothing is saved from non-finite weights.

TRL trains on through NaN: the weights stay NaN, the loss may even read 0, checkpoints, best/ and
final/ are written from them, and rotation deletes the healthy checkpoints. Here, before every log,
eval or save the trainable weights are checked (for LoRA a few MB; for full fine-tuning one pass
over the weights every logging_steps), and every log's loss and grad_norm are. A non-finite one
cancels the pending save and eval, stops the run, and writes an `error` event (kind nan) with the
step, what turned, the last healthy checkpoint and the fix. Under fp16 an Inf grad_norm with a
finite loss is the loss scaler skipping a step, as it is meant to: that alone does not trip it.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback

from engine import checkpoints
from engine.config.options import lower_lr
from engine.train import distributed


def finite_weights(model: Any) -> bool:
    import torch

    for p in model.parameters():
        if p.requires_grad and not bool(torch.isfinite(p.detach()).all()):
            return False
    return True


class NanGuard(TrainerCallback):
    """Stops the run at the first non-finite loss or weights; `tripped` says where (None if never)."""

    def __init__(self, events: Any, run_dir: Any, fp16: bool, finetune: str = "lora"):
        self.events = events
        self.run_dir = run_dir
        self.fp16 = fp16
        self.finetune = finetune
        self.tripped: dict[str, Any] | None = None
        self.last_loss: float | None = None

    def _trip(self, state: Any, control: Any, what: str, args: Any) -> Any:
        control.should_save = False
        control.should_evaluate = False
        control.should_training_stop = True
        if self.tripped is not None:
            return control
        healthy, _ = checkpoints.pick(self.run_dir)
        lr = float(args.learning_rate)
        overrides = {"train.learning_rate": lower_lr(lr, self.finetune)}
        where = f"; the last healthy checkpoint is {healthy.name}" if healthy else "; no checkpoint was saved before it"
        after = f" (last finite loss {self.last_loss:.4g})" if self.last_loss is not None else ""
        message = (f"the {what} turned NaN/Inf at step {state.global_step}{after}: stopped without saving them{where}; "
                   f"lower the learning rate (--lr {overrides['train.learning_rate']:g}) and keep gradient clipping on, "
                   "or --no-nan-guard to train on as TRL does")
        self.tripped = {"step": state.global_step, "what": what, "healthy": str(healthy) if healthy else None}
        if state.is_world_process_zero:
            self.events.emit("error", step=state.global_step, kind="nan", code=f"nan_{what.split()[0]}", message=message,
                             key="train.learning_rate", data=dict(self.tripped, learning_rate=lr), overrides=overrides)
        return control

    def on_step_end(self, args, state, control, model=None, **kwargs):
        # Before the log, eval or save this step will make: never from non-finite weights.
        if model is None or not (control.should_save or control.should_log or control.should_evaluate):
            return control
        bad = not finite_weights(model)
        (bad,) = distributed.agree(bad)
        if bad:
            return self._trip(state, control, "weights", args)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return control
        loss, grad = logs.get("loss"), logs.get("grad_norm")
        loss_bad = isinstance(loss, (int, float)) and not math.isfinite(loss)
        grad_bad = isinstance(grad, (int, float)) and not math.isfinite(grad) and not self.fp16
        if loss_bad or grad_bad:
            return self._trip(state, control, "loss" if loss_bad else "gradients", args)
        if isinstance(loss, (int, float)):
            self.last_loss = float(loss)
        return control
