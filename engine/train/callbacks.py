"""Trainer callbacks: training logs become events, and the cockpit's stop/save requests are honoured.

The callbacks only read what the Trainer already computed; the overhead benchmark in bench/ keeps
their cost measured.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from engine import checkpoints
from engine import run_dir as names
from engine.train import best, distributed
from engine.memory.gpu import MemorySampler
from engine.train.saving import save_model_dir

CONTROL_FILE = names.CONTROL
# Keys of the Trainer's closing log; they go into run_finished, not into a metrics event.
SUMMARY_KEYS = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}


class StopFlag:
    """Set by SIGTERM/SIGINT or by a `stop` line in RUN_DIR/control; read at every step."""

    def __init__(self, run_dir: Path):
        self.control_path = run_dir / CONTROL_FILE
        self.stop = False
        self.save = False

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            self.stop = True

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def poll(self) -> None:
        """Pick up a request the cockpit wrote to RUN_DIR/control, then remove the file."""
        try:
            text = self.control_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError:
            return
        words = set(text.split())
        self.stop |= "stop" in words
        self.save |= "save" in words
        try:
            self.control_path.unlink()
        except OSError:
            pass


class ControlCallback(TrainerCallback):
    """Turns a stop request into a checkpoint and a clean end, and `save` into a checkpoint now."""

    def __init__(self, flag: StopFlag):
        self.flag = flag

    def on_step_end(self, args, state, control, **kwargs):
        self.flag.poll()
        # Every rank must stop (and save) at the same step, whichever rank saw the request.
        self.flag.stop, self.flag.save = distributed.agree(self.flag.stop, self.flag.save)
        if self.flag.save:
            control.should_save = True
            self.flag.save = False
        if self.flag.stop:
            control.should_save = True
            control.should_training_stop = True
        return control


def _steps_per_epoch(train_records: int, args: Any) -> int:
    per_step = args.per_device_train_batch_size * max(1, args.world_size)
    micro_batches = math.ceil(train_records / per_step) if per_step else 0
    return max(1, math.ceil(micro_batches / args.gradient_accumulation_steps)) if train_records else 0


class EventsCallback(TrainerCallback):
    """Writes status, metrics, eval, memory and checkpoint events; keeps the best model in best/."""

    def __init__(
        self,
        events: Any,
        run_dir: Path,
        train_records: int,
        eval_records: int,
        save_best: bool,
        group_size: int = 1,
        best_keys: tuple[str, ...] = best.SFT,
        keep: int | None = None,
    ):
        self.events = events
        self.group_size = group_size  # GRPO: each record is sampled num_generations times per epoch
        self.run_dir = run_dir
        self.train_records = train_records
        self.eval_records = eval_records
        self.save_best = save_best
        self.memory = MemorySampler(distributed.local_world_size() if distributed.world_size() > 1 else 1)
        self.summary: dict[str, Any] = {}
        self.memory_report: dict[str, Any] = {}
        self.trainer: Any = None  # set once the trainer exists: best/ of a sharded model is saved through it
        self.best_keys = best_keys  # what ranks evaluations for best/ (engine/train/best.py)
        self.keep = keep  # train.save_total_limit: complete checkpoints kept
        self.best_score: tuple[float, ...] | None = None
        self.best_step: int | None = None
        self._last_tokens: float | None = None
        self._last_time: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.memory.mark_start()  # the model is loaded: what training adds is measured from here
        if not state.is_world_process_zero:
            return
        self.events.emit("memory", step=state.global_step, phase="start", **self.memory.snapshot())
        eval_enabled = args.eval_strategy != "no"
        self.events.emit(
            "status",
            step=state.global_step,
            phase="training",
            message=f"training for {state.max_steps} steps",
            plan={
                "total_steps": state.max_steps,
                "num_epochs": args.num_train_epochs if args.max_steps <= 0 else None,
                "steps_per_epoch": _steps_per_epoch(self.train_records * self.group_size, args),
                "train_records": self.train_records,
                "eval_records": self.eval_records,
                "effective_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * max(1, args.world_size),
                "eval_enabled": eval_enabled,
                "learning_rate": args.learning_rate,
                # fp16's loss scaler skips steps with Inf gradients on purpose; bf16 and fp32 never do.
                "precision": "fp16" if args.fp16 else "bf16" if args.bf16 else "fp32",
            },
        )
        self._last_time = time.time()

    def on_log(self, args, state, control, logs=None, **kwargs):
        # Every rank logs the same training metrics at the same step: the one place to collect
        # each rank's own torch peaks (rank 0 sees only its GPU's).
        ranks = distributed.gather(self.memory.own()) if logs and "loss" in logs and args.world_size > 1 else None
        if not state.is_world_process_zero or not logs:
            return
        step = state.global_step
        if any(k in SUMMARY_KEYS for k in logs) and "loss" not in logs:
            self.summary.update(logs)
            return
        if any(k.startswith("eval_") for k in logs):
            self.events.emit("eval", step=step, **logs)
            return
        payload = dict(logs)
        payload.setdefault("epoch", state.epoch)
        tokens = logs.get("num_tokens")
        now = time.time()
        if tokens is not None and self._last_tokens is not None and self._last_time and now > self._last_time:
            payload["tokens_per_second"] = round((tokens - self._last_tokens) / (now - self._last_time), 1)
        if tokens is not None:
            self._last_tokens = tokens
        self._last_time = now
        payload["total_steps"] = state.max_steps
        self.events.emit("metrics", step=step, **payload)
        self.events.emit("memory", step=step, **self.memory.snapshot(ranks))

    def on_train_end(self, args, state, control, **kwargs):
        peaks = distributed.gather(self.memory.own()) if args.world_size > 1 else None
        if state.is_world_process_zero:
            self.memory_report = self.memory.report(peaks)

    def on_evaluate(self, args, state, control, metrics=None, model=None, processing_class=None, **kwargs):
        # Every rank decides (eval metrics are already gathered, so they agree): sharded weights
        # (fsdp, ZeRO-3) can only be saved by all ranks together.
        if not metrics:
            return
        candidate = best.score(metrics, self.best_keys)
        if not self.save_best or not best.better(candidate, self.best_score):
            return
        self.best_score, self.best_step = candidate, state.global_step
        info = (names.BEST_INFO, {"step": state.global_step, **best.ranked(metrics, self.best_keys)})
        save_model_dir(self.run_dir / names.BEST, self.trainer, model, processing_class, args, state, info=info)

    def on_save(self, args, state, control, **kwargs):
        distributed.barrier()  # every rank has written its part (its RNG state) before rank 0 seals
        if not state.is_world_process_zero:
            return
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        checkpoints.seal(path)
        removed = checkpoints.rotate(self.run_dir, self.keep)
        self.events.emit("checkpoint", step=state.global_step, path=str(path), removed=[p.name for p in removed])
