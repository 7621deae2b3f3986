"""`cockpit presets [list | show NAME]`: the presets and their values."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="The presets and their values.", no_args_is_help=False, invoke_without_command=True)


@app.callback()
def main(ctx: typer.Context) -> None:
    """List the presets when no subcommand is given."""
    if ctx.invoked_subcommand is None:
        list_presets()


@app.command("list")
def list_presets() -> None:
    """Each preset with what it is for."""
    from engine import config as config_mod

    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("preset")
    table.add_column("what it is for")
    for name in config_mod.preset_names():
        table.add_row(name, config_mod.preset_summary(name))
    Console().print(table)


@app.command("show")
def show(name: str = typer.Argument(..., help="Preset name.")) -> None:
    """A preset's file and the full config it resolves to (with its builtin:tiny values where it has them)."""
    from engine import config as config_mod

    err = Console(stderr=True, soft_wrap=True)
    try:
        path = config_mod.preset_path(name)
        config_mod.load_preset(name)
    except config_mod.ConfigError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2)
    console = Console(highlight=False)
    console.print(f"[bold]{path}[/]")
    console.print(path.read_text(encoding="utf-8"), markup=False)
