"""The runs under a runs dir, summarised for the home screen without reading whole event files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cockpit.diagnose import load_findings
from cockpit.supervisor import CONFIG_FILE
from engine.events import EVENTS_FILE, number, parse_line

TAIL_BYTES = 256 * 1024  # enough for the last training log of any run


@dataclass
class RunSummary:
    """One row of the home screen."""

    run_dir: Path
    name: str
    preset: str
    model: str
    status: str
    step: int | None
    total_steps: int | None
    last_loss: float | None
    red_findings: int
    mtime: float


def _head_event(path: Path, kind: str, limit: int = 50) -> dict[str, Any] | None:
    with open(path, encoding="utf-8", errors="replace") as f:
        for _, line in zip(range(limit), f):
            event = parse_line(line)
            if event and event.get("type") == kind:
                return event
    return None


def _tail_events(path: Path) -> list[dict[str, Any]]:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - TAIL_BYTES))
        data = f.read()
    lines = data.split(b"\n")
    if size > TAIL_BYTES:
        lines = lines[1:]  # the first line is cut
    return [e for e in (parse_line(raw.decode("utf-8", errors="replace")) for raw in lines) if e]


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def summarize(run_dir: Path) -> RunSummary | None:
    """A row for one run dir, or None when the dir is not a run."""
    events_path, config_path = run_dir / EVENTS_FILE, run_dir / CONFIG_FILE
    if not events_path.is_file() and not config_path.is_file():
        return None
    cfg: dict[str, Any] = {}
    try:
        cfg = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        pass
    status, step, total, loss = "not started", None, None, None
    try:
        started = _head_event(events_path, "run_started") if events_path.is_file() else None
        tail = _tail_events(events_path) if events_path.is_file() else []
    except OSError:
        started, tail = None, []
    if started is not None:
        status = "running" if _alive(started.get("pid")) else "ended"
    for event in tail:
        kind = event.get("type")
        if isinstance(event.get("step"), int):
            step = max(step or 0, event["step"])
        if kind == "metrics":
            total = event.get("total_steps") or total
            loss = number(event.get("loss")) if event.get("loss") is not None else loss
        elif kind == "status" and (event.get("plan") or {}).get("total_steps"):
            total = event["plan"]["total_steps"]
        elif kind == "error":
            status = "failed"
        elif kind == "run_finished":
            status = event.get("status") or "finished"
            total = event.get("total_steps") or total
    red = sum(1 for f in load_findings(run_dir) if f.severity == "red")
    run = cfg.get("run") or {}
    model = (cfg.get("model") or {}).get("name_or_path") or ""
    try:
        mtime = max(p.stat().st_mtime for p in (events_path, config_path) if p.exists())
    except ValueError:
        mtime = 0.0
    return RunSummary(
        run_dir=run_dir,
        name=run_dir.name,
        preset=str(run.get("name") or ""),
        model=str(model),
        status=status,
        step=step,
        total_steps=total,
        last_loss=loss,
        red_findings=red,
        mtime=mtime,
    )


def list_runs(runs_dir: str | os.PathLike[str]) -> list[RunSummary]:
    """Every run under `runs_dir`, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    rows = [s for s in (summarize(p) for p in root.iterdir() if p.is_dir()) if s is not None]
    return sorted(rows, key=lambda r: r.mtime, reverse=True)

