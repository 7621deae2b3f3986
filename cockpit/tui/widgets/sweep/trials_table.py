"""The sweep screen's table: one row per trial, the swept keys as columns, and a mark in the colour
of the trial's curves when it is drawn on the charts."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from cockpit.tui.widgets.run import charts

STATUS_STYLE = {"running": "green", "completed": "cyan", "pruned": "yellow", "interrupted": "yellow", "failed": "red"}


def trial_color(index: int) -> str:
    """The colour of the index-th drawn trial, as the charts give it to their index-th line (in rich's
    spelling: plotext's "orange" is rich's "dark_orange")."""
    color = charts.COLORS[index % len(charts.COLORS)]
    return "dark_orange" if color == "orange" else color


class TrialsTable(DataTable):
    """The trials of a sweep; `shown` are the names whose curves the charts draw, in drawing order."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.comparison: Any = None
        self._columns: tuple[str, ...] = ()

    def show(self, comparison: Any, shown: list[str]) -> None:
        """Replace the rows, keeping the cursor's place."""
        from cockpit.format import metric
        from cockpit.sweep.compare import value_text

        self.comparison = comparison
        columns = ("", "trial", "status", *comparison.keys, f"best {comparison.objective}", "step", "last loss", "red", "why")
        cursor = self.cursor_row
        if columns != self._columns:
            self.clear(columns=True)
            for name in columns:
                self.add_column(name, key=name or "mark")
            self._columns = columns
        else:
            self.clear()
        for row in comparison.rows:
            mark = Text("●", style=trial_color(shown.index(row.name))) if row.name in shown else Text("○", style="dim")
            name = Text(("* " if row.is_best else "  ") + row.name, style="bold" if row.is_best else "")
            step = "-" if row.step is None else (f"{row.step}/{row.total_steps}" if row.total_steps else str(row.step))
            self.add_row(
                mark, name, Text(row.status, style=STATUS_STYLE.get(row.status, "")), *[value_text(row.config.get(k)) for k in comparison.keys],
                metric(row.best), step, metric(row.last_loss), Text(str(len(row.red)), style="bold red") if row.red else "0",
                Text(row.why, style="dim"), key=row.name,
            )
        if comparison.rows:
            self.move_cursor(row=min(max(cursor, 0), len(comparison.rows) - 1))

    def selected(self) -> Any | None:
        """The trial's row under the cursor."""
        rows = self.comparison.rows if self.comparison is not None else []
        return rows[self.cursor_row] if 0 <= self.cursor_row < len(rows) else None
