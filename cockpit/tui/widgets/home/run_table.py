"""The home screen's table: one row per run, columns chosen to fit the terminal.

Columns are data (`COLUMNS`): a header, a cell function over the row, a width and a priority. The
table keeps the most useful columns (run, status, step, last loss, red findings) at 80 columns and
adds model and preset where there is room; a run name too long even then gives way from its start,
so its timestamp stays. A row is any object with the fields the cell functions read and a `run_dir` (what
enter opens): another kind of row, such as a sweep's, needs only those fields.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

STATUS_STYLE = {"running": "green", "completed": "cyan", "stopped": "yellow", "failed": "red", "ended": "yellow"}
GAP = 2  # cells between columns (DataTable pads each cell by one on either side)


def _step(row: Any) -> str:
    if row.step is not None and row.total_steps:
        return f"{row.step}/{row.total_steps}"
    return str(row.step if row.step is not None else "-")


def _loss(row: Any) -> str:
    return f"{row.last_loss:.4g}" if row.last_loss is not None else "-"


def _red(row: Any) -> Text:
    return Text(str(row.red_findings), style="bold red") if row.red_findings else Text("0")


def _preset(row: Any) -> str:
    """The preset, then the run's tags (--tag), which tell the runs of one experiment apart."""
    tags = getattr(row, "tags", ())
    return f"{row.preset} [{', '.join(tags)}]" if tags else row.preset


def _status(row: Any) -> Text:
    return Text(row.status, style=STATUS_STYLE.get(row.status, "white"))


@dataclass(frozen=True)
class Column:
    """One column: `priority` 0 always shows; higher numbers drop first when the table is too wide."""

    key: str
    header: str
    cell: Callable[[Any], str | Text]
    priority: int
    flexible: bool = False  # the column that gives way (cut from its start) when the others need room


COLUMNS: tuple[Column, ...] = (
    Column("run", "run", lambda row: row.name, 0, flexible=True),
    Column("preset", "preset", _preset, 2),
    Column("model", "model", lambda row: row.model, 1),
    Column("status", "status", _status, 0),
    Column("step", "step", _step, 0),
    Column("loss", "last loss", _loss, 0),
    Column("red", "red", _red, 0),
)
MIN_FLEXIBLE = 16  # the run name keeps at least this many cells (its date and time)


def _width(value: str | Text) -> int:
    return value.cell_len if isinstance(value, Text) else len(value)


def layout(columns: Sequence[Column], cells: list[list[str | Text]], width: int) -> list[tuple[Column, int]]:
    """The columns that fit in `width` cells with the width each gets, in table order."""
    natural = [max([len(c.header)] + [_width(row[i]) for row in cells]) for i, c in enumerate(columns)]
    shown = list(range(len(columns)))

    def needed(indexes: list[int]) -> int:
        return sum(natural[i] for i in indexes) + GAP * len(indexes)

    for priority in sorted({c.priority for c in columns if c.priority > 0}, reverse=True):
        if needed(shown) <= width:
            break
        shown = [i for i in shown if columns[i].priority != priority]
    rest = width - sum(natural[i] + GAP for i in shown if not columns[i].flexible)
    return [(columns[i], max(MIN_FLEXIBLE, min(natural[i], rest - GAP)) if columns[i].flexible else natural[i]) for i in shown]


def clip_start(value: str | Text, width: int) -> str | Text:
    """A value cut from its start to `width` cells ("…" marks the cut): a run's timestamp is at its end."""
    plain = value.plain if isinstance(value, Text) else value
    if len(plain) <= width:
        return value
    return "…" + plain[-(width - 1):]


class RunTable(DataTable):
    """The runs, newest first; its columns follow the table's width."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.rows_shown: list[Any] = []
        self._fitted: tuple[int, tuple[str, ...]] | None = None

    def show(self, rows: list[Any]) -> None:
        """Replace the rows, keeping the cursor's place."""
        self.rows_shown = rows
        self._fill()

    def on_resize(self) -> None:
        self._fill()

    def _fill(self) -> None:
        cells = [[c.cell(row) for c in COLUMNS] for row in self.rows_shown]
        fitted = layout(COLUMNS, cells, max(20, self.scrollable_content_region.width - 1))
        cursor = self.cursor_row
        self.clear(columns=True)
        for column, width in fitted:
            self.add_column(column.header, width=width, key=column.key)
        index = {c.key: i for i, c in enumerate(COLUMNS)}
        for row, values in zip(self.rows_shown, cells):
            shown = [values[index[c.key]] for c, _ in fitted]
            shown = [clip_start(v, w) if c.flexible else v for v, (c, w) in zip(shown, fitted)]
            self.add_row(*shown, key=str(row.run_dir))
        if self.rows_shown:
            self.move_cursor(row=min(max(cursor, 0), len(self.rows_shown) - 1))

    def selected(self) -> Any | None:
        """The row under the cursor."""
        if self.rows_shown and 0 <= self.cursor_row < len(self.rows_shown):
            return self.rows_shown[self.cursor_row]
        return None
