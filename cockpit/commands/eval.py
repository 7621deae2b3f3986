"""`cockpit eval RUN_DIR --dataset TEST [--checkpoint best|final|checkpoint-N]`: a trained model on a
test split, measured as the run's own eval measures it (eval loss and token accuracy for SFT; answer
and format accuracy and each reward for GRPO).

The model runs in `python -m engine.evaluate` (the cockpit never imports torch); its output goes to
RUN_DIR/eval/<name>.log, its result to RUN_DIR/eval/<name>.json and to events.jsonl, where the TUI
and doctor find it. Bad input (no such run dir, checkpoint or dataset; data the run cannot read) is
refused in one line before any model loads. Exit codes: 0 evaluated, 1 failed, 2 bad input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def eval_command(
    run_dir: Path = typer.Argument(..., help="The run dir of a trained run."),
    dataset: Path = typer.Option(..., "--dataset", "-d", help="The test file (JSON, JSONL or CSV, the run's format); every record is evaluated."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="Which saved model: best, final or checkpoint-N."),
    name: Optional[str] = typer.Option(None, "--name", help="Names RUN_DIR/eval/<name>.json (default: <dataset stem>-<checkpoint>)."),
    limit: int = typer.Option(0, "--limit", min=0, help="Evaluate the first N records only (0: all)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Evaluate a trained model on a test file: loss and token accuracy (SFT), answer and format accuracy (GRPO)."""
    import os
    import subprocess
    import sys

    from rich.console import Console

    from cockpit.eval_view import result_text
    from engine import config as config_mod
    from engine import evaluate
    from engine import run_dir as names
    from engine.errors import EngineError

    err = Console(stderr=True, highlight=False, soft_wrap=True)

    def bad(message: str) -> None:
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2)

    try:
        model_dir, _ = evaluate.model_dir(run_dir, checkpoint)
        cfg = config_mod.load_run_config(run_dir)
        evaluate.test_rows(cfg, dataset)  # the data as the run reads it: a bad file is refused here
        name = evaluate.check_name(name or evaluate.result_name(dataset, checkpoint))
    except EngineError as exc:
        # The test file is read with the run's data settings, which a --set on this command cannot change.
        hint = " (the test file is read with the run's data settings: give it in the format the run trained on)" if exc.kind == "data" and exc.key != "--dataset" else ""
        bad(exc.message + hint)
    folder = run_dir / names.EVAL
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        bad(f"{folder}: cannot write the result ({exc.strerror}); check the run dir's permissions")
    log = folder / f"{name}.log"
    command = [sys.executable, "-m", "engine.evaluate", str(run_dir.resolve()), "--checkpoint", checkpoint,
               "--dataset", str(dataset.resolve()), "--name", name, "--limit", str(limit)]
    with open(log, "wb") as out, err.status(f"evaluating {model_dir.name}/ on {dataset} (log: {log})"):
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}).returncode
    if code != 0:
        last = next((line for line in reversed(log.read_text(encoding="utf-8", errors="replace").splitlines()) if line.strip()), "")
        typer.echo(f"error: {last or 'the evaluation ended without saying why'}" + ("" if code == 2 else f" (log: {log})"), err=True)
        raise typer.Exit(2 if code == 2 else 1)
    result = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    if json_output:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    Console(highlight=False, soft_wrap=True).print(result_text(result), markup=False)
    typer.echo(f"written: {result['path']}")
