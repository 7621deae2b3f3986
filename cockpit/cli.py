"""The `cockpit` command: assembles one module per command (see cockpit/commands)."""

from __future__ import annotations

import typer

from cockpit.commands import compare as compare_command
from cockpit.commands import doctor
from cockpit.commands import eval as eval_command
from cockpit.commands import export as export_command
from cockpit.commands import lint as lint_command
from cockpit.commands import presets as presets_command
from cockpit.commands import run as run_command
from cockpit.commands import samples as samples_command
from cockpit.commands import sweep as sweep_command
from cockpit.commands import watch as watch_command

app = typer.Typer(
    help="A terminal cockpit for fine-tuning language models with TRL: train, watch, lint, diagnose.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each command registers here with one line; the modules stay light at import time.
app.command("doctor")(doctor.doctor)
app.command("run")(run_command.run)
app.command("lint")(lint_command.lint)
app.add_typer(presets_command.app, name="presets")
app.command("watch")(watch_command.watch)
app.command("sweep")(sweep_command.sweep)
app.command("compare")(compare_command.compare)
app.command("samples")(samples_command.samples)
app.command("eval")(eval_command.eval_command)
app.command("export")(export_command.export)


@app.callback(invoke_without_command=True)
def _home(ctx: typer.Context) -> None:
    # `cockpit` with no command opens the TUI's home screen (runs in ./runs).
    if ctx.invoked_subcommand is None:
        watch_command.home()


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors become one line and exit 2, like every other bad input."""
    import sys

    # typer ships its own copy of click; its UsageError is the base of every parsing error.
    usage_error = type(typer.BadParameter("")).__mro__[1]

    try:
        code = app(args=argv, standalone_mode=False)
    except usage_error as exc:
        ctx = getattr(exc, "ctx", None)
        where = f"cockpit {ctx.info_name} --help" if ctx is not None and ctx.parent is not None else "cockpit --help"
        print(f"error: {exc.format_message()} (see {where})", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
