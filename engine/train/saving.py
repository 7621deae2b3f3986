"""Saves at the end of an epoch: a resumable checkpoint when save_strategy is epoch and save_steps is
also given (TRL takes one strategy: engine/train/trl_args.py has it save by steps, and the epoch
saves come from here), and RUN_DIR/epoch_N/ models (train.epoch_models), as the PyTorch pipeline
wrote them.

An epoch model is written as best/ and final/ are: into a temporary dir beside it, then renamed, so a
kill mid-save never leaves a half epoch_N/. It is written only for a complete epoch (a run stopped or
cut by max_steps mid-epoch has none for that epoch) and never from non-finite weights.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from engine import checkpoints
from engine import run_dir as names


def save_model_dir(target: Path, trainer: Any, model: Any, tokenizer: Any, args: Any, state: Any,
                   info: tuple[str, dict[str, Any]] | None = None) -> bool:
    """The model (adapter or full) and its tokenizer into `target` (best/, epoch_N/), through target.tmp and a
    rename: a kill mid-save leaves the previous one whole. `info`: a JSON file written with it (name, content).

    Several processes save together (a sharded model is gathered by the Trainer, with its tokenizer);
    rank 0 writes. Returns whether this process put `target` in place.
    """
    tmp = target.with_name(target.name + ".tmp")
    if state.is_world_process_zero and tmp.exists():
        shutil.rmtree(tmp)
    if trainer is not None and args.world_size > 1:
        trainer.save_model(str(tmp))  # collective; writes on rank 0 only
    elif model is not None and state.is_world_process_zero:
        model.save_pretrained(str(tmp))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
    if not state.is_world_process_zero:
        return False
    if info is not None:
        (tmp / info[0]).write_text(json.dumps(info[1]) + "\n")
    checkpoints.replace_dir(tmp, target)
    return True


def complete_epoch(epoch: float | None) -> int | None:
    """N when the Trainer's fractional epoch sits on the end of epoch N, else None."""
    if epoch is None:
        return None
    n = round(epoch)
    return n if n >= 1 and abs(epoch - n) < 1e-6 else None


class EpochSaves(TrainerCallback):
    """At the end of each epoch: a checkpoint (save_strategy epoch with save_steps) and epoch_N/ (epoch_models)."""

    def __init__(self, train: dict[str, Any], run_dir: Path, events: Any, guard: Any = None):
        self.checkpoint_each_epoch = train["save_strategy"] == "epoch" and bool(train["save_steps"])
        self.models = bool(train["epoch_models"])
        self.run_dir, self.events, self.guard = Path(run_dir), events, guard
        self.trainer: Any = None  # set once the trainer exists: a sharded model is saved through it
        self.last_checkpoint: int | None = None  # the step of the newest checkpoint

    def on_save(self, args, state, control, **kwargs):
        self.last_checkpoint = state.global_step

    def on_epoch_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        epoch = complete_epoch(state.epoch)
        if epoch is None:
            return control  # cut mid-epoch (max_steps, a stop request): no epoch save
        if not (self.checkpoint_each_epoch or self.models) or not self._healthy(model):
            return control
        if self.checkpoint_each_epoch and self.last_checkpoint != state.global_step:  # the last step may have saved already
            control.should_save = True
        if not self.models:
            return control
        target = self.run_dir / names.epoch_dir(epoch)
        if save_model_dir(target, self.trainer, model, processing_class, args, state):
            self.events.emit("status", step=state.global_step, phase="saving", message=f"epoch {epoch} model saved: {target}",
                             epoch_model=str(target))
        return control

    def _healthy(self, model: Any) -> bool:
        """Whether the weights may be saved: the NaN guard has not tripped and, with it on, they are finite
        now (on every rank: a save of several processes is collective)."""
        if self.guard is None:
            return True  # --no-nan-guard: saved as TRL would
        if self.guard.tripped is not None:
            return False
        from engine.train import distributed
        from engine.train.nan_guard import finite_weights

        (bad,) = distributed.agree(model is not None and not finite_weights(model))
        return not bad
