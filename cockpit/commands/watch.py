"""`cockpit watch RUN_DIR`: the TUI on one run, going on or ended."""

from __future__ import annotations

from pathlib import Path

import typer


def watch(
    run_dir: Path = typer.Argument(..., help="A run dir (holding events.jsonl or config.yaml)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the home screen looks for runs."),
) -> None:
    """Watch a run in the TUI: charts, samples, findings, log; stop it or save a checkpoint."""
    from engine import run_dir as names

    if not names.is_run_dir(run_dir):
        typer.echo(f"error: {run_dir} is not a run dir (no {names.EVENTS} or {names.CONFIG}); give the dir `cockpit run` printed", err=True)
        raise typer.Exit(2)
    from cockpit.tui.app import CockpitApp

    CockpitApp(run_dir=run_dir, runs_dir=runs_dir).run()


def home(runs_dir: Path = Path("runs")) -> None:
    """The TUI's home: the runs under runs_dir, a new run, attach to a run dir."""
    from cockpit.tui.app import CockpitApp

    CockpitApp(runs_dir=runs_dir).run()
