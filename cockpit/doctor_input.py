"""What `cockpit doctor` reads, turned into events: a run dir, an events.jsonl, a Hugging Face
trainer_state.json (whatever its file name), a bare JSON list of log_history entries, a JSONL or CSV
of log entries (a DataFrame of log_history written out), a TensorBoard event file or a dir of them
(the Trainer's `runs/`; read with tensorboard's own loader, the trackers extra), or a checkpoint dir
holding a trainer_state.json.

Logs written from a table pad every row to every column: an eval row carries NaN for loss and
grad_norm. Such padding is dropped (a NaN next to a finite eval value is padding, not a NaN loss);
a training row's own NaN is kept, and judged."""

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
EXPECTED = ("expected a run dir, an events.jsonl, a trainer_state.json, a JSON list, JSONL or CSV of log_history entries, "
            "or a TensorBoard event file")
TFEVENTS = "tfevents"


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
    tensorboard = sorted(path.rglob(f"*{TFEVENTS}*"))
    if tensorboard:
        return log_history_events(_from_tensorboard(tensorboard[-1], path)), f"TensorBoard {tensorboard[-1].relative_to(path)}"
    raise _fail(path, f"a directory with no {EVENTS_FILE}, {TRAINER_STATE}, checkpoint-N/{TRAINER_STATE} or TensorBoard event file")


def _from_file(path: Path) -> tuple[list[dict[str, Any]], str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise NotATrainingLog(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if TFEVENTS in path.name:
        return log_history_events(_from_tensorboard(path, path)), "TensorBoard"
    if b"\x00" in raw[:4096]:
        raise _fail(path, "a binary file")
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        raise _fail(path, "the file is empty")
    if path.suffix.lower() == ".csv":
        return log_history_events(_csv_entries(path, text)), "CSV of log entries"
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
        entry = _unpadded(entry)
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


def _group(key: str) -> str:
    return "eval" if key.startswith("eval_") else "summary" if key in SUMMARY_KEYS else "train"


def _unpadded(entry: dict[str, Any]) -> dict[str, Any]:
    """A table row without its padding: a group of columns (train, eval_*, the closing summary) with no
    finite value in this row belongs to other rows. A NaN next to a finite value of its own group stays:
    a training row's NaN loss beside its learning rate is a NaN loss."""
    live = {_group(k) for k, v in entry.items() if k not in ("step", "epoch") and _finite(v)}
    return {k: v for k, v in entry.items()
            if k in ("step", "epoch") or _group(k) in live or not (isinstance(v, (int, float)) or _nan_text(v) or v is None)}


def _nan_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("nan", "inf", "-inf", "infinity", "-infinity")


def _finite(value: Any) -> bool:
    from engine.events import number

    n = number(value)
    return n is not None and n == n and abs(n) != float("inf")


def _csv_entries(path: Path, text: str) -> list[dict[str, Any]]:
    """Rows of a CSV log (a header naming step, loss, ...), numbers parsed, empty cells dropped."""
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not any(k in (rows[0] or {}) for k in (*LOG_KEYS, "step")):
        raise _fail(path, "a CSV whose header has no step, loss or learning_rate column")
    entries = []
    for row in rows:
        entry: dict[str, Any] = {}
        for key, cell in row.items():
            if not key or cell is None or not cell.strip():
                continue
            try:
                entry[key] = float(cell)
            except ValueError:
                entry[key] = cell
        if isinstance(entry.get("step"), float):
            entry["step"] = int(entry["step"])
        if entry:
            entries.append(entry)
    return entries


# TensorBoard tags as the Trainer writes them (transformers' rewrite_logs): train/x is x, eval/x is eval_x.
def _tag_key(tag: str) -> str:
    if tag.startswith("train/"):
        return tag[len("train/"):]
    if tag.startswith("eval/"):
        return "eval_" + tag[len("eval/"):]
    return tag


def _from_tensorboard(path: Path, shown: Path) -> list[dict[str, Any]]:
    """A TensorBoard event file's scalars as log entries, one per step (the trackers extra reads it)."""
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError:
        raise NotATrainingLog(f"{shown}: a TensorBoard event file; reading it needs tensorboard: "
                              'pip install -e ".[trackers]" (or pip install tensorboard)') from None
    acc = event_accumulator.EventAccumulator(str(path), size_guidance={event_accumulator.SCALARS: 0})
    try:
        acc.Reload()
    except Exception as exc:  # a truncated or foreign file: tensorboard's own error, in one line
        raise _fail(shown, f"TensorBoard could not read it ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    by_step: dict[int, dict[str, Any]] = {}
    for tag in acc.Tags().get("scalars", []):
        key = _tag_key(tag)
        for point in acc.Scalars(tag):
            by_step.setdefault(int(point.step), {"step": int(point.step)})[key] = point.value
    if not by_step:
        raise _fail(shown, "a TensorBoard event file with no scalars")
    entries = []
    for step in sorted(by_step):
        entry = by_step[step]
        # The Trainer logs eval and train metrics at the same step separately: split them again.
        evals = {k: v for k, v in entry.items() if k.startswith("eval_")}
        rest = {k: v for k, v in entry.items() if not k.startswith("eval_")}
        summary = {k: rest.pop(k) for k in SUMMARY_KEYS if k in rest}
        if len(rest) > 2 or "loss" in rest:  # more than step and epoch
            entries.append(rest)
        if evals:
            entries.append({"step": step, "epoch": entry.get("epoch"), **evals})
        if summary:
            entries.append({"step": step, **summary})
    return entries
