"""`cockpit compare RUN_DIR... | SWEEP_DIR`: runs side by side, swept or not.

The config keys that differ, the best eval metric and its step, the last train loss, tokens/s, peak
memory, red/amber findings, status and the best model; as a table, JSON or CSV. `--best-config`
prints the best run's config as a file `cockpit run --config` takes.
Exit codes: 0 shown, 1 no best run for --best-config, 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

FORMATS = ("table", "json", "csv")


def compare(
    paths: list[Path] = typer.Argument(..., help="Run dirs, or a sweep dir (sweeps/<name>-<timestamp>), or both."),
    output_format: str = typer.Option("table", "--format", "-f", help="table, json or csv."),
    best_config: bool = typer.Option(False, "--best-config", help="Print the best run's config as a --config file "
                                     "(cockpit compare SWEEP --best-config > best.yaml; cockpit run --config best.yaml)."),
    objective: Optional[str] = typer.Option(None, "--objective", help="Eval metric that picks the best run (default: the "
                                            "sweep's; for runs eval_loss, GRPO eval_answer_accuracy or eval_reward)."),
    direction: Optional[str] = typer.Option(None, "--direction", help="minimize or maximize (default: from the metric's name)."),
) -> None:
    """Compare runs: the config keys that differ and the metrics that matter, side by side."""
    from cockpit.sweep.compare import best_config as config_text
    from cockpit.sweep.compare import compare_runs, compare_sweep, table, to_csv, to_json
    from cockpit.sweep.space import SweepError
    from cockpit.sweep.sweep_dir import is_sweep_dir, trial_dirs
    from engine import run_dir as names

    err = Console(stderr=True, highlight=False, soft_wrap=True)

    def bad(message: str) -> None:
        err.print(f"[red]error:[/] {escape(message)}")
        raise typer.Exit(2)

    if output_format not in FORMATS:
        bad(f"--format takes table, json or csv, got {output_format!r}")
    if direction not in (None, "minimize", "maximize"):
        bad(f"--direction takes minimize or maximize, got {direction!r}")
    for path in paths:
        if not (is_sweep_dir(path) or names.is_run_dir(path)):
            what = "does not exist" if not path.exists() else f"is neither a run dir (no {names.EVENTS}) nor a sweep dir (no sweep.yaml)"
            bad(f"{path} {what}; give run dirs (runs/<name>-<timestamp>) or a sweep dir (sweeps/<name>-<timestamp>)")
    try:
        if len(paths) == 1 and is_sweep_dir(paths[0]) and objective is None:
            comparison = compare_sweep(paths[0])
            source = str(paths[0])
        else:
            run_dirs = [d for p in paths for d in (trial_dirs(p) if is_sweep_dir(p) else [p]) if names.is_run_dir(d)]
            comparison = compare_runs(run_dirs, objective, direction)
            source = ", ".join(str(p) for p in paths)
    except SweepError as exc:
        bad(str(exc))
    if best_config:
        try:
            text = config_text(comparison, source)
        except ValueError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(1) from None
        best = comparison.best
        err.print(f"best: {best.name} ({comparison.objective} {best.best:.4g} at step {best.best_step})")
        typer.echo(text, nl=False)
        return
    if output_format == "json":
        typer.echo(to_json(comparison))
    elif output_format == "csv":
        typer.echo(to_csv(comparison), nl=False)
    else:
        out = Console(highlight=False, soft_wrap=False)
        if not out.is_terminal:
            out.width = max(out.width, 160)  # a log or a pipe: the table keeps its rows on one line
        out.print(table(comparison, title=source, base=paths[0] if len(paths) == 1 and is_sweep_dir(paths[0]) else None))
