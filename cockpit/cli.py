"""The `cockpit` command: assembles one module per command (see cockpit/commands)."""

from __future__ import annotations

import typer

from cockpit.commands import presets as presets_command
from cockpit.commands import run as run_command

app = typer.Typer(
    help="A terminal cockpit for fine-tuning language models with TRL: train, watch, lint, diagnose.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each command registers here with one line; the modules stay light at import time.
app.command("run")(run_command.run)
app.add_typer(presets_command.app, name="presets")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
