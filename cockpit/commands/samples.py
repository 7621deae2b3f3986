"""`cockpit samples RUN_DIR [--index N]`: the prepared training examples of any run, as the collator
trains them (the run's `samples` event, drawn by cockpit/samples_view.py).

Exit codes: 0 shown, 2 not a run dir, no samples yet, or no such index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def samples(
    run_dir: Path = typer.Argument(..., help="A run dir, or its events.jsonl."),
    index: Optional[int] = typer.Option(None, "--index", "-i", help="Show only this sample (0 is the first)."),
) -> None:
    """Show the decoded training samples: the formatted text, then trained tokens highlighted and masked ones dimmed."""
    from rich.console import Console

    from cockpit.samples_view import print_samples
    from cockpit.state import RunState
    from engine import run_dir as names
    from engine.events import read_events

    def bad(message: str) -> None:
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2)

    events_file = run_dir / names.EVENTS if run_dir.is_dir() else run_dir
    if not events_file.is_file():
        bad(f"{run_dir} is not a run dir (no {names.EVENTS}); give the dir `cockpit run` printed")
    state = RunState()
    for event in read_events(events_file):
        state.feed(event)
    shown = state.samples or []
    if not shown:
        bad(f"{events_file}: no samples yet (the engine writes them once the data is prepared, before training); "
            "wait for the run to start training, or check its engine.log")
    if index is not None and not 0 <= index < len(shown):
        bad(f"--index {index}: this run has {len(shown)} samples (0 to {len(shown) - 1}); "
            "more are kept with --set data.samples=N on the next run")
    print_samples(Console(highlight=False, soft_wrap=True), shown, index)
