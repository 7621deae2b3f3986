"""What `cockpit doctor` reads, turned into events: a run dir, an events.jsonl, a Hugging Face
trainer_state.json (whatever its file name), a bare JSON list of log_history entries, a JSONL of
log entries, or a checkpoint dir holding a trainer_state.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine import run_dir as names
from engine.events import EVENTS_FILE, parse_line

TRAINER_STATE = "trainer_state.json"
# Keys of the Trainer's closing log (they describe the whole run, not a step).
SUMMARY_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss")
# Keys that make a dict a training log entry.
LOG_KEYS = ("loss", "eval_loss", "learning_rate", "lr", "grad_norm", "reward", "epoch", "train_runtime")
EXPECTED = "expected a run dir, an events.jsonl, a trainer_state.json or a JSON list of log_history entries"


class NotATrainingLog(ValueError):
    """The path holds no training log; the message is one line that says why."""


def _fail(path: Path, why: str) -> NotATrainingLog:
    return NotATrainingLog(f"{path}: not a training log: {why}; {EXPECTED}")


def load_events(path: str | Path) -> tuple[list[dict[str, Any]], str]:
    """(events, what was read) for any supported path. Raises NotATrainingLog."""
    path = Path(path)
    if path.is_dir():
        return _from_dir(path)
    if not path.exists():
        raise NotATrainingLog(f"{path}: no such file or directory")
    return _from_file(path)


def _from_dir(path: Path) -> tuple[list[dict[str, Any]], str]:
    events_file = path / EVENTS_FILE
    if events_file.is_file():
        return _from_file(events_file)
    state_file = path / TRAINER_STATE
    if state_file.is_file():
        events, _ = _from_file(state_file)
        return events, f"checkpoint {path.name}"
    checkpoints = []
    for parent in (path, path / names.CHECKPOINTS):
        if parent.is_dir():
            for child in parent.iterdir():
                step = names.checkpoint_step(child.name)
                if step is not None and (child / TRAINER_STATE).is_file():
                    checkpoints.append((step, child))
    if checkpoints:
        _, latest = max(checkpoints)
        events, _ = _from_file(latest / TRAINER_STATE)
        return events, f"checkpoint {latest.name} (the latest of {len(checkpoints)})"
    raise _fail(path, f"a directory with no {EVENTS_FILE}, {TRAINER_STATE} or checkpoint-N/{TRAINER_STATE}")


def _from_file(path: Path) -> tuple[list[dict[str, Any]], str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise NotATrainingLog(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if b"\x00" in raw[:4096]:
        raise _fail(path, "a binary file (TensorBoard event files are not read)")
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        raise _fail(path, "the file is empty")
    try:
        data = json.loads(text)
    except ValueError:
        return _from_lines(path, text)
    if isinstance(data, dict):
        if "log_history" in data:
            return trainer_state_events(data, path), "trainer_state"
        if "type" in data and parse_line(text) is not None:
            return [data], "events"
        keys = ", ".join(list(data)[:4])
        raise _fail(path, f"a JSON object with no log_history (keys: {keys})")
    if isinstance(data, list):
        return log_history_events(_entries(path, data)), "log_history list"
    raise _fail(path, f"a JSON {type(data).__name__}")


def _from_lines(path: Path, text: str) -> tuple[list[dict[str, Any]], str]:
    """JSON lines: the cockpit's events, or one log entry a line. A broken last line is tolerated."""
    events: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    bad = 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(obj, dict) and isinstance(obj.get("type"), str):
            events.append(obj)
        elif isinstance(obj, dict) and "step" in obj:
            entries.append(obj)
        else:
            bad += 1
    if events and len(events) >= len(entries):
        return events, "events"
    if entries and bad <= 1:
        return log_history_events(entries), "JSON lines of log entries"
    raise _fail(path, "neither JSON nor JSON lines of events or log entries")


def _entries(path: Path, items: list[Any]) -> list[dict[str, Any]]:
    if not all(isinstance(e, dict) for e in items):
        raise _fail(path, "a JSON list whose items are not log entries (objects)")
    if items and not any(any(k in e for k in LOG_KEYS) or "step" in e for e in items):
        raise _fail(path, "a JSON list of objects with no step, loss or learning_rate")
    return items


def trainer_state_events(state: dict[str, Any], path: Path | None = None) -> list[dict[str, Any]]:
    """A Hugging Face trainer_state.json as events: the plan it implies, then its log_history."""
    history = state.get("log_history")
    if not isinstance(history, list):
        raise _fail(path or Path(TRAINER_STATE), "log_history is not a list")
    entries = _entries(path or Path(TRAINER_STATE), history)
    max_steps = state.get("max_steps")
    global_step = state.get("global_step")
    epoch = state.get("epoch")
    steps_per_epoch = None
    if isinstance(global_step, (int, float)) and isinstance(epoch, (int, float)) and epoch > 0 and global_step > 0:
        steps_per_epoch = max(1, round(global_step / epoch))
    plan = {
        "total_steps": max_steps if isinstance(max_steps, int) and max_steps > 0 else None,
        "num_epochs": state.get("num_train_epochs"),
        "steps_per_epoch": steps_per_epoch,
        "train_records": None,
        "eval_records": None,
        "effective_batch_size": None,
        "eval_enabled": None,
        "save_steps": state.get("save_steps"),
    }
    head = [
        {"v": 1, "type": "run_started", "time": None, "step": None, "config": {}, "source": "trainer_state"},
        {"v": 1, "type": "status", "time": None, "step": 0, "phase": "training", "plan": plan},
    ]
    events = head + log_history_events(entries)
    best = state.get("best_model_checkpoint")
    step = names.checkpoint_step(best) if best else None
    if step is not None:
        at = next((i for i, e in enumerate(events) if isinstance(e.get("step"), int) and e["step"] > step and i >= len(head)), len(events))
        events.insert(at, {"v": 1, "type": "checkpoint", "time": None, "step": step, "path": str(best)})
    return events


def log_history_events(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trainer log entries as metrics, eval and run_finished events, in order."""
    events: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        step = entry.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            step = int(step) if isinstance(step, float) else index + 1
        if "loss" not in entry and any(k in entry for k in SUMMARY_KEYS):
            metrics = {k: v for k, v in entry.items() if k != "step"}
            events.append({"v": 1, "type": "run_finished", "time": None, "step": step, "status": "completed", "metrics": metrics})
            continue
        eval_keys = [k for k in entry if k.startswith("eval_")]
        if eval_keys:
            events.append({"v": 1, "type": "eval", "time": None, "step": step, "epoch": entry.get("epoch"),
                           **{k: entry[k] for k in eval_keys}})
            if all(k.startswith("eval_") or k in ("epoch", "step") for k in entry):
                continue
            entry = {k: v for k, v in entry.items() if not k.startswith("eval_")}
        event = dict(entry)
        event.update(v=1, type="metrics", time=None, step=step)
        events.append(event)
    return events
