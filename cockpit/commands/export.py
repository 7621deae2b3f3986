"""`cockpit export RUN_DIR`: a trained model out of its run dir, the adapter merged into its base model
with --merge (a plain transformers model), a GGUF file too with --gguf. The request is checked here in
one line; the work runs in the engine (`python -m engine.export`), as the cockpit never imports torch.
Exit codes: 0 exported, 1 failed, 2 bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def export(
    run_dir: Path = typer.Argument(..., help="A run dir (holding config.yaml and final/, best/ or checkpoints)."),
    checkpoint: str = typer.Option("final", "--checkpoint", help="best, final, epoch_N or checkpoint-N."),
    merge: bool = typer.Option(False, "--merge", help="Merge the LoRA adapter into its base model: a model that needs "
                               "neither peft nor the base (its logits are checked against the adapter model's)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="The new dir (default RUN_DIR/exports/NAME); "
                                          "an existing one is never overwritten."),
    gguf: bool = typer.Option(False, "--gguf", help="Also write model.gguf for llama.cpp (the gguf package: the export extra)."),
) -> None:
    """Export a trained model: the adapter or model as saved, or merged into its base (--merge)."""
    import subprocess
    import sys

    from engine.export.plan import ExportError, make_plan

    try:
        make_plan(run_dir, checkpoint, merge, output, gguf)
    except ExportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    command = [sys.executable, "-m", "engine.export", str(run_dir), "--checkpoint", checkpoint]
    command += (["--merge"] if merge else []) + (["--gguf"] if gguf else []) + (["-o", str(output)] if output else [])
    raise typer.Exit(subprocess.run(command).returncode)
