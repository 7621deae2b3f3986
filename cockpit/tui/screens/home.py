"""Home: the runs under ./runs, newest first; open one, start a new one, attach to a run dir by path."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from cockpit.runs import RunSummary
from cockpit.tui.screens.sweep import home_rows, open_path

REFRESH_S = 2.0
STATUS_STYLE = {"running": "green", "completed": "cyan", "stopped": "yellow", "failed": "red", "ended": "yellow"}


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
            yield Static(f"runs in {self.app.runs_dir}", id="home-title")
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
            yield Label("no runs yet: press n to start one", id="no-runs")
            with Horizontal(id="attach-row"):
                yield Input(placeholder="attach to a run dir: path, then enter", id="attach-path")
                yield Button("New run (n)", id="new-run", variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("run", "preset", "model", "status", "step", "last loss", "red")
        self.action_refresh()
        self.set_interval(REFRESH_S, self.action_refresh)

    @work(thread=True, exclusive=True, group="home-runs", exit_on_error=False)
    def action_refresh(self) -> None:
        rows = home_rows(self.app.runs_dir)  # the runs, and the sweeps beside them
        self.app.call_from_thread(self.show_rows, rows)

    def show_rows(self, rows: list[RunSummary]) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        self.rows = rows
        table.clear()
        for row in rows:
            step = f"{row.step}/{row.total_steps}" if row.step is not None and row.total_steps else str(row.step or "-")
            loss = f"{row.last_loss:.4g}" if row.last_loss is not None else "-"
            status = f"[{STATUS_STYLE.get(row.status, 'white')}]{row.status}[/]"
            red = f"[bold red]{row.red_findings}[/]" if row.red_findings else "0"
            table.add_row(row.name, row.preset, row.model, status, step, loss, red, key=str(row.run_dir))
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1))
        self.query_one("#no-runs").display = not rows

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        open_path(self.app, Path(event.row_key.value))

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if self.rows and 0 <= table.cursor_row < len(self.rows):
            open_path(self.app, self.rows[table.cursor_row].run_dir)

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
            open_path(self.app, Path(path).expanduser())
