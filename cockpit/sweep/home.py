"""Sweeps as rows of the home screen: one row per sweep dir, with the fields a run's row has (name,
preset, model, status, step, last loss, red findings, run_dir), read from its trials' run dirs
through the same cached fold as the runs (cockpit/runs.py). No optuna: the home list stays light;
the sweep screen reads the study.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cockpit.runs import summarize
from cockpit.sweep.claims import live_workers
from cockpit.sweep.space import SweepError
from cockpit.sweep.sweep_dir import SPEC, list_sweeps, read_spec, trial_dirs


@dataclass
class SweepSummary:
    """One sweep on the home screen; `step`/`total_steps` count its trials that have ended."""

    run_dir: Path  # the sweep dir (what enter opens)
    name: str
    preset: str
    model: str
    status: str  # running (a worker is alive), completed (every trial ended), stopped (interrupted)
    step: int | None
    total_steps: int | None
    last_loss: float | None
    red_findings: int  # trials with a red finding
    mtime: float
    is_sweep: bool = True


def summarize_sweep(sweep_dir: Path) -> SweepSummary | None:
    try:
        spec = read_spec(sweep_dir)
    except SweepError:
        return None
    trials = [s for s in (summarize(d) for d in trial_dirs(sweep_dir)) if s is not None]
    ended = [t for t in trials if t.status not in ("running", "not started")]
    workers = live_workers(sweep_dir)
    if workers:
        status = "running"
    elif len(ended) >= (spec.trials or 0):  # every trial has a run that ended (the sweep screen tells pruned from interrupted)
        status = "completed"
    else:
        status = "stopped"
    mtimes = [t.mtime for t in trials] + [(Path(sweep_dir) / SPEC).stat().st_mtime]
    return SweepSummary(
        run_dir=Path(sweep_dir),
        name=f"{Path(sweep_dir).name} (sweep)",
        preset=spec.preset or "",
        model=f"{spec.trials} trials ({spec.sampler})",
        status=status,
        step=len(ended),
        total_steps=spec.trials,
        last_loss=None,
        red_findings=sum(1 for t in trials if t.red_findings),
        mtime=max(mtimes),
    )


def list_sweep_rows(root: str | os.PathLike[str]) -> list[SweepSummary]:
    """Every sweep under `root` as a home row, newest first."""
    rows = [s for s in (summarize_sweep(d) for d in list_sweeps(root)) if s is not None]
    return sorted(rows, key=lambda r: r.mtime, reverse=True)
