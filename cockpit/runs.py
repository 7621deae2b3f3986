"""The runs under a runs dir, summarised for the home screen from the one fold of their events.

Each run dir is folded by a RunHandle (RunState + Diagnoser) kept for the session and fed
incrementally, so a refresh reads only what was appended since the last one, and the home list
says what `cockpit run`, the run screen and `cockpit doctor` say about the same run. No Textual.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cockpit.supervisor import RunHandle
from engine import run_dir as names
from engine.events import number

_HANDLES: dict[Path, RunHandle] = {}


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
    tags: tuple[str, ...] = ()  # run.tags (--tag), to tell runs of one experiment apart


def _handle(run_dir: Path) -> RunHandle:
    key = run_dir.resolve()
    handle = _HANDLES.get(key)
    if handle is None:
        handle = _HANDLES[key] = RunHandle.attach(run_dir)
    return handle


def summarize(run_dir: Path) -> RunSummary | None:
    """A row for one run dir, or None when the dir is not a run."""
    if not names.is_run_dir(run_dir):
        return None
    handle = _handle(run_dir)
    try:
        handle.catch_up()
    except OSError:
        pass
    state = handle.state
    alive = handle.is_running()
    if not state.processes and not alive:
        status = "not started"
    else:
        status = state.status(alive)
    if not alive and state.finished is None and state.processes:
        handle.diagnoser.finish()  # the stream is complete: the whole-run rules have their say
    cfg = state.config
    if not cfg:
        try:
            from engine import config as config_mod

            cfg = config_mod.load_run_config(run_dir)
        except Exception:  # a damaged config.yaml: the row still shows
            cfg = {}
    run, model = cfg.get("run") or {}, cfg.get("model") or {}
    try:
        mtime = max(p.stat().st_mtime for p in (run_dir / names.EVENTS, run_dir / names.CONFIG) if p.exists())
    except ValueError:
        mtime = 0.0
    total = state.total_steps or number((state.finished or {}).get("total_steps"))
    return RunSummary(
        run_dir=run_dir,
        name=run_dir.name,
        preset=str(run.get("name") or ""),
        model=str(model.get("name_or_path") or ""),
        status=status,
        step=state.step,
        total_steps=int(total) if total else None,
        last_loss=state.last_loss,
        red_findings=sum(1 for f in handle.diagnoser.findings if f.severity == "red"),
        mtime=mtime,
        tags=tuple(str(t) for t in run.get("tags") or ()),
    )


def list_runs(runs_dir: str | os.PathLike[str]) -> list[RunSummary]:
    """Every run under `runs_dir`, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    rows = [s for s in (summarize(p) for p in root.iterdir() if p.is_dir()) if s is not None]
    return sorted(rows, key=lambda r: r.mtime, reverse=True)
