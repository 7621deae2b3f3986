"""Home: the runs under ./runs, newest first; open one, start a new one, attach to a run dir by path."""

from __future__ import annotations

import os
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static

from cockpit.runs import RunSummary
from cockpit.tui.screens.sweep import home_rows, open_path
from cockpit.tui.widgets.home.run_table import RunTable

REFRESH_S = 2.0


def shown_path(path: Path) -> str:
    """A dir as a user would type it from here: ./runs, ~/runs, or the absolute path."""
    if not path.is_absolute():
        return str(path) if str(path).startswith(".") else f"./{path}"
    try:
        return f"./{path.relative_to(Path.cwd())}"
    except ValueError:
        home = Path.home()
        return f"~/{path.relative_to(home)}" if path.is_relative_to(home) and path != home else str(path)


def title(count: int | None, runs_dir: Path, sweeps: int = 0) -> str:
    """The home screen's heading: how many runs (and sweeps, read beside them), and where from."""
    where = shown_path(runs_dir)
    if count is None:  # not read yet
        return f"runs in {where}"
    if count == 0 and not sweeps:
        return f"no runs in {where} yet"
    text = f"{count} run{'s' if count != 1 else ''} in {where}"
    if sweeps:
        text += f", {sweeps} sweep{'s' if sweeps != 1 else ''} in {shown_path(Path(runs_dir).parent / 'sweeps')}"
    return text


class HomeScreen(Screen):
    """Lists runs and routes to the run screen, the new-run form, or an attached run dir."""

    BINDINGS = [
        Binding("n", "new_run", "new run"),
        Binding("a", "attach", "attach"),
        Binding("r", "refresh", "refresh"),
        Binding("enter", "open", "open", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[RunSummary] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="home"):
            yield Static(title(None, Path(self.app.runs_dir)), id="home-title")
            yield RunTable(id="runs")
            yield Label("press n to start one", id="no-runs")
            with Horizontal(id="attach-row"):
                yield Input(placeholder="attach to a run dir: path, then enter", id="attach-path")
                yield Button("New run (n)", id="new-run", variant="primary")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(RunTable).focus()
        self.action_refresh()
        self.set_interval(REFRESH_S, self.action_refresh)

    @work(thread=True, exclusive=True, group="home-runs", exit_on_error=False)
    def action_refresh(self) -> None:
        rows = home_rows(self.app.runs_dir)  # the runs, and the sweeps beside them
        self.app.call_from_thread(self.show_rows, rows)

    def show_rows(self, rows: list[RunSummary]) -> None:
        self.rows = rows
        self.query_one(RunTable).show(rows)
        sweeps = sum(1 for r in rows if getattr(r, "is_sweep", False))
        self.query_one("#home-title", Static).update(title(len(rows) - sweeps, Path(self.app.runs_dir), sweeps))
        self.query_one("#no-runs").display = not rows

    def on_data_table_row_selected(self, event: RunTable.RowSelected) -> None:
        open_path(self.app, Path(event.row_key.value))

    def action_open(self) -> None:
        row = self.query_one(RunTable).selected()
        if row is not None:
            open_path(self.app, row.run_dir)

    def action_new_run(self) -> None:
        from cockpit.tui.screens.new_run import NewRunScreen

        self.app.push_screen(NewRunScreen())

    @on(Button.Pressed, "#new-run")
    def new_run_pressed(self) -> None:
        self.action_new_run()

    def action_attach(self) -> None:
        self.query_one("#attach-path", Input).focus()

    @on(Input.Submitted, "#attach-path")
    def attach_path_submitted(self, event: Input.Submitted) -> None:
        path = event.value.strip()
        if path:
            open_path(self.app, Path(os.path.expanduser(path)))
