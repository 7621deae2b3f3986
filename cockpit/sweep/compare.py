"""Runs side by side: the config keys that differ, the best eval metric and its step, the last train
loss, tokens/s, peak memory, red/amber findings, status and the best model; as a table, JSON or CSV.

The same rows for any run dirs and for a sweep's trials (whose status, and why a pruned trial
stopped, come from the study). `cockpit compare`, the end of `cockpit sweep` and the TUI's sweep
screen all build them here.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.sweep.reading import RunReading, flatten
from cockpit.sweep.space import yaml_text
from engine import run_dir as names


@dataclass
class Row:
    """One run (or trial) in a comparison."""

    name: str
    run_dir: Path | None
    status: str
    why: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # flattened resolved config
    best: float | None = None
    best_step: int | None = None
    last_loss: float | None = None
    tokens_per_second: float | None = None
    peak_memory_mb: float | None = None
    red: list[str] = field(default_factory=list)  # finding codes
    amber: list[str] = field(default_factory=list)
    best_model: Path | None = None
    step: int | None = None
    total_steps: int | None = None
    trial: int | None = None
    is_best: bool = False


@dataclass
class Comparison:
    rows: list[Row]
    keys: list[str]  # the config keys whose values differ
    objective: str
    direction: str

    @property
    def best(self) -> Row | None:
        return next((r for r in self.rows if r.is_best), None)


def read_row(reading: RunReading, objective: str, direction: str, name: str | None = None) -> Row:
    """A row from a run dir's reading (refreshed by the caller)."""
    state = reading.state
    best, best_step = reading.best(objective, direction)
    findings = reading.findings
    error = state.error
    return Row(
        name=name or reading.run_dir.name,
        run_dir=reading.run_dir,
        status=reading.status(),
        why=str(error.get("message") or "") if error and not reading.alive else "",
        config=flatten(reading.config()),
        best=best,
        best_step=best_step,
        last_loss=state.last_loss,
        tokens_per_second=reading.tokens_per_second(),
        peak_memory_mb=reading.peak_memory_mb(),
        red=[f.code for f in findings if f.severity == "red"],
        amber=[f.code for f in findings if f.severity == "amber"],
        best_model=reading.best_model(),
        step=state.step,
        total_steps=state.total_steps,
    )


def default_objective(readings: list[RunReading]) -> tuple[str, str]:
    """eval_loss; for GRPO runs, eval_answer_accuracy where logged, else eval_reward."""
    logged = {k for r in readings for k in r.evals}
    if any(r.state.kind == "grpo" for r in readings):
        for metric in ("eval_answer_accuracy", "eval_reward"):
            if metric in logged:
                return metric, "maximize"
    return "eval_loss", "minimize"


def differing(rows: list[Row]) -> list[str]:
    """Config keys whose values are not the same in every row that has a config, in config order."""
    with_config = [r for r in rows if r.config]
    keys: list[str] = []
    for row in with_config:
        keys.extend(k for k in row.config if k not in keys)
    return [k for k in keys if len({yaml_text(r.config.get(k)) for r in with_config}) > 1]


def compare_runs(run_dirs: list[Path], objective: str | None = None, direction: str | None = None,
                 readings: dict[Path, RunReading] | None = None) -> Comparison:
    """Any run dirs; the best is the run with the best value of the objective, whatever its status."""
    cache = readings if readings is not None else {}
    current = []
    for run_dir in run_dirs:
        reading = cache.get(run_dir) or RunReading(run_dir)
        cache[run_dir] = reading
        current.append(reading.refresh())
    if objective is None:
        objective, inferred = default_objective(current)
        direction = direction or inferred
    direction = direction or _direction(objective)
    rows = [read_row(r, objective, direction) for r in current]
    scored = [r for r in rows if r.best is not None]
    if scored:
        pick = min if direction == "minimize" else max
        pick(scored, key=lambda r: r.best).is_best = True  # type: ignore[arg-type, return-value]
    return Comparison(rows, differing(rows), objective, direction)


def compare_sweep(sweep_dir: Path, readings: dict[Path, RunReading] | None = None) -> Comparison:
    """A sweep's trials: status and why from the study, the rest from each trial's run dir; the best
    is the study's best trial (a complete one)."""
    from cockpit.sweep import claims
    from cockpit.sweep import study as study_mod
    from cockpit.sweep.sweep_dir import read_spec

    spec = read_spec(sweep_dir)
    objective, direction = spec.objective or "eval_loss", spec.direction or "minimize"
    study = study_mod.load(sweep_dir)
    records = study_mod.records(study) if study is not None else []
    best_number = study_mod.best_number(study) if study is not None else None
    cache = readings if readings is not None else {}
    rows = []
    for record in records:
        run_dir = Path(sweep_dir) / record.run_dir
        if names.is_run_dir(run_dir):
            reading = cache.get(run_dir) or RunReading(run_dir)
            cache[run_dir] = reading
            row = read_row(reading.refresh(), objective, direction, name=record.run_dir)
        else:
            row = Row(name=record.run_dir, run_dir=None, status="", config=dict(record.params))
        row.trial = record.number
        row.status, row.why = _trial_status(record, claims.claimed(sweep_dir, record.number), row, sweep_dir)
        row.is_best = record.number == best_number
        rows.append(row)
    swept = [p.key for p in spec.params]  # shown even while one trial alone has run
    return Comparison(rows, swept + [k for k in differing(rows) if k not in swept], objective, direction)


def _trial_status(record: Any, claimed: bool, row: Row, sweep_dir: Path) -> tuple[str, str]:
    if record.state == "running":  # RUNNING in the study and no worker's claim: cut short, resumable
        where = f"at step {row.step}" if row.step is not None else "before its first step"
        return ("running", "") if claimed else ("interrupted", f"stopped {where}; continue with cockpit sweep --resume {sweep_dir}")
    if record.state == "pruned":
        return "pruned", (record.stopped_by or {}).get("why", "")
    if record.state == "failed":
        return "failed", record.failure or row.why
    if record.state == "complete":
        return "completed", ""
    return record.state, ""


def _direction(metric: str) -> str:
    from cockpit.sweep.checks import direction_of

    return direction_of(metric) or "minimize"


# ---- output ----------------------------------------------------------------------------------------


def value_text(value: Any) -> str:
    """A config value in a cell: numbers as a person writes them, the rest as YAML."""
    from cockpit.format import num

    if value is None:
        return "-"
    return num(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else yaml_text(value)


def _findings(row: Row) -> str:
    parts = []
    if row.red:
        parts.append(f"{len(row.red)} red ({', '.join(row.red)})")
    if row.amber:
        parts.append(f"{len(row.amber)} amber ({', '.join(row.amber)})")
    return "; ".join(parts) or "-"


def _path(path: Path | None, base: Path | None = None) -> str:
    if path is None:
        return "-"
    for root in ([base] if base is not None else []) + [Path.cwd()]:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            continue
    return str(path)


def table(comparison: Comparison, title: str | None = None, base: Path | None = None):
    """A Rich table (one row per run, the differing keys as columns, the best row starred), then one
    line per run that stopped early or failed, saying why. `base`: paths are shown relative to it."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from cockpit.format import metric, mib

    t = Table(title=title, title_justify="left", show_lines=False, pad_edge=False, box=None, header_style="bold")
    for name in ["run", "status", *comparison.keys, f"best {comparison.objective}", "step", "last loss", "tok/s", "peak mem",
                 "findings", "best model"]:
        t.add_column(name, no_wrap=name in ("run", "status"), overflow="fold")
    notes = []
    for row in comparison.rows:
        t.add_row(
            ("* " if row.is_best else "  ") + row.name, row.status, *[value_text(row.config.get(k)) for k in comparison.keys],
            metric(row.best), "-" if row.best_step is None else str(row.best_step), metric(row.last_loss),
            metric(row.tokens_per_second, ".0f"), mib(row.peak_memory_mb), _findings(row), _path(row.best_model, base),
            style="bold" if row.is_best else None,
        )
        if row.why:
            notes.append(Text(f"  {row.name} {row.status}: {row.why}", style="dim"))
    return Group(t, *notes)


def _record(row: Row, keys: list[str]) -> dict[str, Any]:
    return {
        "name": row.name, "trial": row.trial, "run_dir": str(row.run_dir) if row.run_dir else None, "status": row.status,
        "why": row.why, "values": {k: row.config.get(k) for k in keys}, "best": row.best, "best_step": row.best_step,
        "last_loss": row.last_loss, "tokens_per_second": row.tokens_per_second, "peak_memory_mb": row.peak_memory_mb,
        "red": row.red, "amber": row.amber, "best_model": str(row.best_model) if row.best_model else None,
        "step": row.step, "total_steps": row.total_steps, "is_best": row.is_best,
    }


def to_json(comparison: Comparison) -> str:
    best = comparison.best
    payload = {"objective": comparison.objective, "direction": comparison.direction, "keys": comparison.keys,
               "best": best.name if best else None, "runs": [_record(r, comparison.keys) for r in comparison.rows]}
    return json.dumps(payload, indent=1, default=str)


def to_csv(comparison: Comparison) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    head = ["name", "status", "why", *comparison.keys, f"best_{comparison.objective}", "best_step", "last_loss", "tokens_per_second",
            "peak_memory_mb", "red", "amber", "best_model", "is_best"]
    writer.writerow(head)
    for r in comparison.rows:
        writer.writerow([r.name, r.status, r.why, *[yaml_text(r.config.get(k)) for k in comparison.keys], _csv(r.best), _csv(r.best_step),
                         _csv(r.last_loss), _csv(r.tokens_per_second), _csv(r.peak_memory_mb), " ".join(r.red), " ".join(r.amber),
                         str(r.best_model or ""), "yes" if r.is_best else ""])
    return out.getvalue()


def _csv(value: Any) -> str:
    return "" if value is None else str(value)


def best_config(comparison: Comparison, source: str) -> str:
    """The best run's resolved config as a --config file (`cockpit run --config best.yaml`)."""
    import yaml

    best = comparison.best
    if best is None or best.run_dir is None:
        raise ValueError(f"{source}: no run logged {comparison.objective}, so there is no best config; "
                         "compare runs that evaluate (train.eval_strategy=steps)")
    from engine import config as config_mod

    cfg = config_mod.load_run_config(best.run_dir)
    dropped = [f"{s}.{k}" for s, values in cfg.items() if isinstance(values, dict) for k, v in values.items() if v == "***"]
    cfg = {s: {k: v for k, v in values.items() if v != "***"} for s, values in cfg.items() if isinstance(values, dict)}
    head = [f"# The best run of {source}: {best.name} ({comparison.objective} {value_text(best.best)} at step {best.best_step}).",
            "# Run it again, or build on it: cockpit run --config best.yaml [--set section.key=value]"]
    if dropped:
        head.append(f"# Secrets left out (config.yaml redacts them): {', '.join(dropped)}")
    return "\n".join(head) + "\n" + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)
