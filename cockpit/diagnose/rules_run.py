"""Rules on how the engine ended: out of memory, or any other failure."""

from __future__ import annotations

from typing import Any

from cockpit.diagnose.finding import Finding
from cockpit.diagnose.fixes import clean, flags
from cockpit.format import gib
from cockpit.diagnose.rules_data import claimed_by
from cockpit.state import RunState
from engine.events import number


def _oom_overrides(state: RunState, seq_len: Any = None) -> tuple[dict[str, Any], list[str]]:
    """The first memory savers to try, with values, and the bigger steps after them."""
    overrides: dict[str, Any] = {}
    more: list[str] = []
    batch = state.cfg("train.per_device_train_batch_size")
    accum = state.cfg("train.gradient_accumulation_steps") or 1
    if isinstance(batch, int) and batch > 1:
        # Same effective batch, half the activations.
        overrides["train.per_device_train_batch_size"] = batch // 2
        overrides["train.gradient_accumulation_steps"] = accum * 2
    if not state.cfg("train.gradient_checkpointing"):
        overrides["train.gradient_checkpointing"] = True
    max_length = state.cfg("train.max_length")
    keep = ((state.dataset or {}).get("keep_max_length") or {}).get("p99")
    if isinstance(max_length, int) and isinstance(seq_len, int) and 0 < seq_len < max_length:
        max_length = seq_len  # the batch that failed was this long: a max_length above it changes nothing
    if isinstance(max_length, int) and max_length > 512:
        target = int(keep) if isinstance(keep, (int, float)) and 0 < keep < max_length else max_length // 2
        more.append(f"--max-length {target}")
    finetune = state.finetune
    if finetune == "full":
        more.append("LoRA instead of full fine-tuning (drop --full)")
    elif finetune == "lora":
        more.append("--qlora (4-bit base weights)")
    if not overrides and not more:
        more.append("--batch-size 1 --set train.gradient_checkpointing=true")
    return overrides, more


def _oom_sentence(error: dict[str, Any], step: int | None) -> str:
    """The finding's line from what the event knows, e.g. `out of memory after step 37 on a batch of 8 x 2048 tokens:
    78.9 of 79.6 GiB in use on cuda:0`."""
    batch = error.get("batch") if isinstance(error.get("batch"), dict) else {}
    memory = error.get("memory") if isinstance(error.get("memory"), dict) else {}
    phase = batch.get("phase")
    if step is None:
        when = ""
    elif phase == "eval":
        when = f" while evaluating at step {step}"
    else:
        when = " in the first step" if step == 0 else f" after step {step}"
    what = ""
    size, seq_len = batch.get("size"), batch.get("seq_len")
    if phase == "generation" and size:
        what = f" generating {size} completions"
    elif size and seq_len:
        what = f" on a batch of {size} x {seq_len} tokens"
    used, total = number(memory.get("used_mb")), number(memory.get("total_mb"))
    held = ""
    if used is not None and total:
        device = str(memory.get("device") or "")
        where = " (the process's address-space limit)" if memory.get("limit") else (f" on {device}" if device.startswith("cuda") else "")
        held = f": {gib(used)[:-4]} of {gib(total)} in use{where}"
        tried = number(memory.get("tried_mb"))
        if tried and tried >= 51.2:  # smaller asks say nothing about the batch
            held += f"; it asked for {gib(tried)} more"
    if not what and not held:  # an event from before batch and memory were recorded: the allocator's words
        first = str(error.get("message") or "").strip().splitlines()
        return f"out of memory{when}" + (f": {first[0]}" if first else "")
    return f"out of memory{when}{what}{held}"


def oom(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """The engine died out of memory: where (step, batch, memory in use), and what to change, with values."""
    error = next((e for e in state.errors if e.get("kind") == "oom"), None)
    if error is None:
        return None
    if memo.get("finding") is not None:
        return memo["finding"]
    message = str(error.get("message") or "out of memory").splitlines()[0]
    step = error.get("step") if error.get("step") is not None else state.step
    batch = error.get("batch") if isinstance(error.get("batch"), dict) else {}
    memory = error.get("memory") if isinstance(error.get("memory"), dict) else {}
    overrides, more = _oom_overrides(state, batch.get("seq_len"))
    fix = (f"use less memory: {flags(overrides)}" if overrides else "use less memory")
    if more:
        fix += "; then " + ", then ".join(more)
    # A batch that does not fit should fail in the first step, not after an hour of training.
    if (isinstance(step, int) and step > 0 and batch.get("phase", "train") == "train" and state.kind == "sft"
            and not state.cfg("train.longest_first") and not state.cfg("train.packing")):
        overrides["train.longest_first"] = True
        fix += f"; and --longest-first, so the longest batch comes in the first step (this one came after step {step})"
    evidence = clean({"message": message, "step": step,
                      **{k: batch.get(k) for k in ("phase", "size", "seq_len", "tokens") if batch.get(k) is not None},
                      **{k: memory.get(k) for k in ("device", "used_mb", "total_mb", "tried_mb") if memory.get(k) is not None},
                      **{k: state.cfg(k) for k in ("train.per_device_train_batch_size", "train.gradient_accumulation_steps",
                                                   "train.max_length", "train.gradient_checkpointing", "model.finetune")
                         if state.cfg(k) is not None}})
    finding = Finding("oom", "red", "Out of memory", step, evidence, _oom_sentence(error, step), fix, overrides)
    memo["finding"] = finding
    return finding


def _input_fix(message: str, key: Any) -> str:
    """What to change for a config or data error: the engine writes its messages as "what; the fix"."""
    _, sep, fix = message.rpartition("; ")
    if sep and fix:
        return fix
    return f"change {key} as the message says, then start the run again" if key else "correct the input the message names, then start the run again"


def crash(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Any other engine failure, with the exception in one line."""
    if memo.get("finding") is not None:
        return memo["finding"]
    # Data errors that another finding explains (truncation, empty eval split, chat template) are left to it.
    error = next((e for e in state.errors if e.get("kind") != "oom" and claimed_by(e) is None), None)
    if error is not None:
        message = str(error.get("message") or "the engine failed").strip().splitlines()[0]
        kind = error.get("kind") or "crash"
        overrides = error.get("overrides") if isinstance(error.get("overrides"), dict) else {}
        if kind == "disk":
            fix = "free space on the run dir's disk (or lower train.save_total_limit), then cockpit run --resume RUN_DIR"
        elif overrides:
            fix = f"start it again with {flags(overrides)}"
        elif kind in ("data", "config"):
            fix = _input_fix(message, error.get("key"))
        else:
            fix = "the traceback is at the end of engine.log"
        evidence = clean({"kind": kind, "message": message, "traceback": str(error.get("traceback") or "")[-2000:]})
        step = error.get("step") if error.get("step") is not None else state.step
    elif state.finished is not None and state.finished.get("status") == "failed" and not state.errors:  # died silently
        message = "the engine failed without saying why"
        fix = "see engine.log in the run dir"
        evidence = {"kind": "crash"}
        overrides = {}
        step = state.finished.get("step", state.step)
    else:
        return None
    title = "The disk is full" if evidence["kind"] == "disk" else f"The run failed ({evidence['kind']})"
    finding = Finding("crash", "red", title, step, evidence, message, fix, overrides)
    memo["finding"] = finding
    return finding
