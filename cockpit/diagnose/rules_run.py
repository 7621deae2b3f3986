"""Rules on how the engine ended: out of memory, or any other failure."""

from __future__ import annotations

from typing import Any

from cockpit.diagnose.finding import Finding
from cockpit.diagnose.fixes import clean, flags
from cockpit.diagnose.rules_data import claimed_by
from cockpit.diagnose.state import RunState


def _oom_overrides(state: RunState) -> tuple[dict[str, Any], list[str]]:
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


def oom(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """The engine died out of memory: what to change, with values."""
    error = next((e for e in state.errors if e.get("kind") == "oom"), None)
    if error is None:
        return None
    if memo.get("finding") is not None:
        return memo["finding"]
    overrides, more = _oom_overrides(state)
    fix = (f"use less memory: {flags(overrides)}" if overrides else "use less memory")
    if more:
        fix += "; then " + ", then ".join(more)
    message = str(error.get("message") or "out of memory").splitlines()[0]
    step = error.get("step") if error.get("step") is not None else state.step
    evidence = clean({"message": message, "step": step,
                      **{k: state.cfg(k) for k in ("train.per_device_train_batch_size", "train.gradient_accumulation_steps",
                                                   "train.max_length", "train.gradient_checkpointing", "model.finetune")
                         if state.cfg(k) is not None}})
    finding = Finding("oom", "red", "Out of memory", step, evidence, message, fix, overrides)
    memo["finding"] = finding
    return finding


def crash(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Any other engine failure, with the exception in one line."""
    if memo.get("finding") is not None:
        return memo["finding"]
    # Data errors that another finding explains (truncation, empty eval split, chat template) are left to it.
    error = next((e for e in state.errors if e.get("kind") != "oom" and claimed_by(e) is None), None)
    if error is not None:
        message = str(error.get("message") or "the engine failed").strip().splitlines()[0]
        kind = error.get("kind") or "crash"
        fix = "the message names the fix" if kind in ("data", "config") else "the traceback is at the end of engine.log"
        evidence = clean({"kind": kind, "message": message, "traceback": str(error.get("traceback") or "")[-2000:]})
        step = error.get("step") if error.get("step") is not None else state.step
    elif state.finished is not None and state.finished.get("status") == "failed" and not state.errors:  # died silently
        message = "the engine failed without saying why"
        fix = "see engine.log in the run dir"
        evidence = {"kind": "crash"}
        step = state.finished.get("step", state.step)
    else:
        return None
    finding = Finding("crash", "red", f"The run failed ({evidence['kind']})", step, evidence, message, fix, {})
    memo["finding"] = finding
    return finding
