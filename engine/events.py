"""The event contract between the engine and its readers (standard library only).

One JSON object per line in RUN_DIR/events.jsonl:
``{"v": 1, "type": ..., "time": <unix seconds>, "step": <int or null>, ...payload}``.
Readers ignore types they don't know and tolerate a half-written last line.
NaN and Inf are written as the strings "NaN", "Infinity", "-Infinity"; `number()` reads them back.

Payloads (keys beyond these may appear; readers ignore what they don't know):

- run_started: config (the resolved config, secrets redacted), versions {python, torch, transformers,
  trl, peft}, devices [{index, name, total_mb}] (empty on CPU), run_dir, resumed_from (checkpoint
  path or null), pid, world_size
- estimate: the memory estimate made before the model loads (engine/memory/estimate.py): verdict ("fits",
  "tight", "will_not_fit", "no_gpu", "unknown"), line (the one-line text), total_bytes and total_gib
  per GPU (on the CPU: the process), allocated_bytes (total less the CUDA context and fragmentation
  overhead: compare with torch's peak allocated; total_bytes with NVML's used), components {weights,
  weight_copies, reference_model, adapter, gradients, optimizer, activations, optimizer_step,
  generation, overhead} in bytes, activations_checkpointing_other, device ("gpu" or "cpu"), gpus
  [{index, name, total_mb, used_mb, bf16}], capacity_bytes, fix {text, overrides, cli, total_bytes}
  or null, assumptions {source, params, trainable_params, finetune, precision, weights_dtype,
  gradient_checkpointing, batch, sequences, seq_len, tokens, optimizer, gpus, distributed, ...},
  notes [str], reason (why the size is unknown) or null
- status: phase ("preparing data", "loading model", "training", "evaluating", "saving"), message;
  the "training" status also carries plan {total_steps, num_epochs, steps_per_epoch,
  train_records, eval_records, effective_batch_size, eval_enabled, learning_rate, precision ("fp16",
  "bf16" or "fp32": under fp16 the loss scaler skips steps with Inf gradients on purpose)}
- dataset: format (e.g. "messages"), path, max_length, loss_on ("completion", "assistant", "all"),
  splits {name: {records, dropped, dropped_reasons {reason: count}, truncated,
  completion_lost, trained_tokens, tokens {prompt|completion|total: {min, median, p95, max}}}},
  keep_max_length {p100, p99} (the max_length that keeps 100% / 99% of completions whole),
  warnings [str], has_chat_template, chat_template_ok
- reward_check (GRPO, before training): prompts, generations, completions, groups [{prompt, answer,
  totals [float], spread, clipped, sample}], zero_spread_groups, clipped, clipped_share, mean_length,
  max_completion_length, functions {fn: {mean, std, min, max, constant, scored}}, problems [str] (empty
  when every group has a signal); with no spread in any group the run refuses (error code
  no_reward_signal, kind data) unless grpo.reward_check is off
- samples: samples [{index, split, segments [{text, trained}], tokens, trained_tokens, truncated,
  max_length, cut ("end" or "start", when truncated), text (the record as the template formats it),
  prompt_chars (where the completion starts in text, or null)}]; GRPO's are prompts: prompt_only,
  answer
- metrics: step, epoch, loss, grad_norm, learning_rate, num_tokens, tokens_per_second,
  mean_token_accuracy, ... (every key of the trainer's log, GRPO rewards included)
- eval: step, epoch, eval_loss, and every other eval_* key of the trainer's log
- memory: gpus [{index, name, used_mb, total_mb, util_pct, temp_c, power_w}],
  torch {allocated_mb, peak_allocated_mb, reserved_mb, peak_reserved_mb} (null on CPU),
  process {rss_mb}; phase "start" on the one written once the model is loaded; with several
  processes, ranks [{rank, allocated_mb, peak_allocated_mb, reserved_mb, peak_reserved_mb, rss_mb,
  peak_rss_mb}] (every rank's own torch peaks: rank 0 writes, but each GPU is counted)
- generations: groups [{prompt, completions [{text, rewards {fn: value}, total, clipped}]}]
- checkpoint: path, step
- error: kind (oom, data, config, crash), message (one line for the user), traceback (tail), step (the
  optimizer steps completed when it failed: 0 is the first step; null before training). Once training
  has started: batch {size, seq_len, tokens, phase} of the micro-batch in flight (phase train, eval or
  generation; seq_len null while GRPO generates; tokens without padding where a mask says so). Kind oom
  adds memory at the time: device ("cuda:N" or "cpu"), used_mb, total_mb (the headline: the fullest
  GPU; on CPU the address space against its limit where `ulimit -v` set one, else RSS against RAM),
  tried_mb (what the failed allocation asked for), cuda [{index, allocated_mb, reserved_mb,
  peak_allocated_mb, peak_reserved_mb, free_mb, total_mb, used_mb}] (each GPU the process holds),
  process {rss_mb, peak_rss_mb, vm_mb}, host {total_mb, available_mb}, limit {name, mb} (where set).
  Under torchrun rank 0 writes every event except a failure of another rank, which that rank writes
  itself with rank N
- test_eval (written by `python -m engine.evaluate`, after training, step null): name, checkpoint
  (best, final or checkpoint-N), model_step (the step that model was saved at), model_dir, dataset,
  run_type, records, evaluated, dropped {reason: count}, metrics (eval_loss,
  eval_mean_token_accuracy ...; GRPO: eval_answer_accuracy, eval_format_accuracy, eval_reward,
  eval_rewards/<fn>/mean ...), path (its JSON file in RUN_DIR/eval/)
- run_finished: status (completed, stopped, failed), step, total_steps, metrics (final train
  metrics), outputs {final, best, checkpoints}, runtime_s, memory (the end-of-run report: device,
  total_mb, start_reserved_mb (once the model was loaded), peak_reserved_mb, peak_allocated_mb,
  training_mb, peak_pct, training_pct, peak_rss_mb, ranks; on CPU device "cpu", peak_rss_mb,
  start_rss_mb)
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

VERSION = 1
from engine.run_dir import EVENTS as EVENTS_FILE  # noqa: E402,F401  (the run dir's names live in one module)

# In run order. Readers must accept types not listed here.
TYPES = (
    "run_started",  # config, versions, devices
    "estimate",  # memory estimate before the model loads: per-GPU total, parts, verdict, fix
    "status",  # phase: loading model, preparing data, training, evaluating, saving
    "dataset",  # per split: records, format, token length stats, truncated/dropped and why
    "samples",  # prepared training examples as segments {text, trained}
    "metrics",  # each training log
    "eval",  # each evaluation
    "memory",  # per GPU used/total/util, torch peaks; process RSS
    "generations",  # GRPO prompts, completions, rewards
    "checkpoint",  # path and step of a saved checkpoint
    "error",  # kind (oom, data, config, crash), message, traceback tail
    "run_finished",  # completed / stopped / failed, final metrics, output paths
    "test_eval",  # after training: a saved model evaluated on a test file (cockpit eval)
)

ERROR_KINDS = ("oom", "data", "config", "crash")
FINISH_STATUSES = ("completed", "stopped", "failed")


def _clean(value: Any) -> Any:
    """Make a payload JSON-safe: NaN and Inf become strings that readers turn back into floats."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return _clean(value.item())
    return str(value)


def number(value: Any) -> float | None:
    """Read a metric value back: numbers as they are, the strings written for NaN/Inf as floats."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def make_event(type_: str, step: int | None = None, **payload: Any) -> dict[str, Any]:
    """Build one event dict in the contract's shape."""
    return {"v": VERSION, "type": type_, "time": round(time.time(), 3), "step": step, **_clean(payload)}


RESERVE_BYTES = 256 * 1024  # kept free for the last events of a run that fills its disk


class EventWriter:
    """Appends events to a file, one line each, written through at once so a reader sees it.

    Only one process writes (rank 0 of the engine). The file is opened in append mode so a resumed
    run continues the same stream. A reserve file holds a little disk space: when the disk fills,
    the reserve is given back and the events that say so (the error, run_finished) still land.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab", buffering=0)
        self._reserve = self.path.with_name("." + self.path.name + ".reserve")
        try:
            with open(self._reserve, "wb") as f:
                f.write(b"\0" * RESERVE_BYTES)
        except OSError:  # already short of space: nothing to hold back
            self._release()

    def _release(self) -> bool:
        try:
            self._reserve.unlink()
            return True
        except OSError:
            return False

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._file.write(view):]

    def emit(self, type_: str, step: int | None = None, **payload: Any) -> dict[str, Any]:
        event = make_event(type_, step, **payload)
        data = (json.dumps(event, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        try:
            self._write(data)
        except OSError:
            if not self._release():
                raise
            self._write(b"\n" + data)  # the newline ends whatever part of a line made it out
        return event

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._release()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NullWriter:
    """Stands in for EventWriter on ranks other than 0, so call sites need no `if rank == 0`."""

    def emit(self, type_: str, step: int | None = None, **payload: Any) -> dict[str, Any]:
        return make_event(type_, step, **payload)

    def close(self) -> None:
        pass


def parse_line(line: str) -> dict[str, Any] | None:
    """One event from one line, or None for a blank, broken or foreign line."""
    line = line.strip()
    if not line:
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or "type" not in event:
        return None
    return event


def read_events(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every complete event in a file, skipping lines that do not parse (such as a half-written last one)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            event = parse_line(line)
            if event is not None:
                yield event


class EventTail:
    """Reads the events appended to a file since the last call; a partial last line waits for its end.

    Works on a file that does not exist yet (returns nothing until it appears). `keep_open`: hold the
    file open once it appears, so that what the engine wrote last is still read after its run dir is
    removed (a refused run's dir goes as the engine ends, possibly before this reader's next call).
    """

    def __init__(self, path: str | os.PathLike[str], keep_open: bool = False):
        self.path = Path(path)
        self.keep_open = keep_open
        self._file: Any = None
        self._offset = 0
        self._partial = b""

    def _read_chunk(self, max_bytes: int | None) -> bytes:
        f = self._file
        if f is None:
            try:
                f = open(self.path, "rb")  # noqa: SIM115 - closed below unless kept
            except FileNotFoundError:
                return b""
            if self.keep_open:
                self._file = f
        try:
            f.seek(self._offset)
            return f.read() if max_bytes is None else f.read(max_bytes)
        finally:
            if f is not self._file:
                f.close()

    def read_new(self, max_bytes: int | None = None) -> list[dict[str, Any]]:
        chunk = self._read_chunk(max_bytes)
        if not chunk:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended on a newline
        events = []
        for raw in lines:
            event = parse_line(raw.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events
