"""A sweep: its trials live (status, swept values, best eval, why a trial stopped), the train loss and
the objective's eval curves of the chosen trials overlaid; open a trial's run screen, stop a trial.

The screen routes; the rows come from cockpit/sweep/compare.py (the same as `cockpit compare`), read
in a thread a few times a second with the run dirs folded incrementally.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from cockpit.tui.widgets.run.charts import COLORS, MetricChart
from cockpit.tui.widgets.sweep.trials_table import TrialsTable

POLL_S = 1.0
MAX_DRAWN = len(COLORS)  # trials drawn at once: one colour each


@dataclass
class SweepSnapshot:
    """One read of the sweep: its comparison, the curves of the drawn trials, and its headline."""

    comparison: Any
    loss: list[tuple[str, list[float], list[float]]]
    evals: list[tuple[str, list[float], list[float]]]
    title: str
    running: bool


def read_sweep(sweep_dir: Path, readings: dict, shown: list[str], points: int) -> SweepSnapshot:
    """The sweep as the screen shows it (off the UI thread: it reads the study and the run dirs)."""
    from cockpit.sweep.claims import live_workers
    from cockpit.sweep.compare import compare_sweep
    from cockpit.sweep.spec import describe
    from cockpit.sweep.sweep_dir import read_spec

    comparison = compare_sweep(sweep_dir, readings)
    loss, evals = [], []
    for name in shown:
        reading = readings.get(Path(sweep_dir) / name)
        if reading is None:
            continue
        xs, ys = reading.state.loss.points(points)
        loss.append((name, xs, ys))
        series = reading.eval_series.get(comparison.objective)
        evals.append((name, *(series.points(points) if series is not None else ([], []))))
    workers = live_workers(sweep_dir)
    who = f"{len(workers)} worker{'s' if len(workers) != 1 else ''} running" if workers else "no worker running"
    title = f"{Path(sweep_dir).name}: {describe(read_spec(sweep_dir))}; {who}"
    return SweepSnapshot(comparison, loss, evals, title, bool(workers))


def home_rows(runs_dir: str | Path) -> list[Any]:
    """Home's rows: the runs under runs_dir and the sweeps beside it (./sweeps for ./runs), newest first."""
    from cockpit.runs import list_runs
    from cockpit.sweep.home import list_sweep_rows

    rows = list_runs(runs_dir) + list_sweep_rows(Path(runs_dir).parent / "sweeps")
    return sorted(rows, key=lambda r: r.mtime, reverse=True)


def open_path(app: Any, path: Path) -> None:
    """Open a home row: a sweep dir on the sweep screen, a run dir on the run screen."""
    from cockpit.sweep.sweep_dir import is_sweep_dir

    if is_sweep_dir(path):
        app.push_screen(SweepScreen(path))
    else:
        app.open_run(path)


class SweepScreen(Screen):
    """One sweep; opened from a sweep's row on home."""

    DEFAULT_CSS = """
    SweepScreen #sweep { padding: 0 1; }
    SweepScreen #sweep-title { height: auto; margin-bottom: 1; text-style: bold; }
    SweepScreen #trials { height: 2fr; }
    SweepScreen #sweep-charts { height: 3fr; }
    SweepScreen #sweep-charts MetricChart { width: 1fr; }
    """

    BINDINGS = [
        Binding("enter", "open_trial", "open trial", show=False),
        Binding("o", "open_trial", "open trial"),
        Binding("space", "toggle_trial", "draw/hide"),
        Binding("s", "stop_trial", "stop trial"),
        Binding("r", "refresh", "refresh"),
        Binding("escape", "back", "back"),
    ]

    def __init__(self, sweep_dir: Path, poll_s: float = POLL_S) -> None:
        super().__init__()
        self.sweep_dir = Path(sweep_dir)
        self.poll_s = poll_s
        self.readings: dict = {}  # trial run dir -> RunReading, read by the worker thread only
        self.shown: list[str] = []  # trials drawn, in colour order
        self.chosen = False  # the user picked what to draw (space); until then each new trial is drawn as it starts
        self._shown_lock = threading.Lock()  # `shown` is changed by keys (UI thread) and read by the reader
        self.last: SweepSnapshot | None = None
        self._wake = threading.Event()  # r or space: read now rather than at the next poll
        self._points = 120  # points per curve: about two per cell of the charts' width (set on the UI thread)

    def compose(self) -> ComposeResult:
        with Vertical(id="sweep"):
            yield Static(self.sweep_dir.name, id="sweep-title")
            yield TrialsTable(id="trials")
            with Horizontal(id="sweep-charts"):
                yield MetricChart("train loss", id="sweep-loss")
                yield MetricChart("eval", id="sweep-eval")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(TrialsTable).focus()
        self.read_loop()

    def on_unmount(self) -> None:
        self._wake.set()  # the reader sees its cancellation now, not a poll later

    def on_resize(self) -> None:
        self._points = self.query_one("#sweep-loss", MetricChart).points_wanted

    @work(thread=True, exclusive=True, group="sweep-reader", exit_on_error=False)
    def read_loop(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled:
            snap = self._read()
            try:
                self.app.call_from_thread(self.apply, snap)
            except RuntimeError:  # the app is closing
                return
            self._wake.wait(self.poll_s if snap.running else max(self.poll_s, 2.0))  # an ended sweep changes seldom
            self._wake.clear()

    def _read(self) -> SweepSnapshot:
        with self._shown_lock:
            shown, chosen = list(self.shown), self.chosen
        snap = read_sweep(self.sweep_dir, self.readings, shown, self._points)
        if not chosen:  # the trials that have curves, as many as there are colours
            drawn = [r.name for r in snap.comparison.rows if r.run_dir is not None][:MAX_DRAWN]
            with self._shown_lock:
                if drawn != shown and not self.chosen:
                    self.shown = drawn
                    snap = read_sweep(self.sweep_dir, self.readings, list(drawn), self._points)
        return snap

    def apply(self, snap: SweepSnapshot) -> None:
        self.last = snap
        self.query_one("#sweep-title", Static).update(snap.title)
        self.query_one(TrialsTable).show(snap.comparison, list(self.shown))
        self.query_one("#sweep-loss", MetricChart).set_lines(snap.loss)
        chart = self.query_one("#sweep-eval", MetricChart)
        chart.title = snap.comparison.objective
        chart.set_lines(snap.evals)

    # ---- actions -------------------------------------------------------------------------------------

    def _row(self) -> Any | None:
        return self.query_one(TrialsTable).selected()

    def action_open_trial(self) -> None:
        row = self._row()
        if row is None or row.run_dir is None:
            self.notify("this trial has no run dir (it failed before training)", severity="warning")
            return
        self.app.open_run(row.run_dir)

    def on_data_table_row_selected(self, event: TrialsTable.RowSelected) -> None:
        self.action_open_trial()

    def action_toggle_trial(self) -> None:
        row = self._row()
        if row is None:
            return
        with self._shown_lock:
            self.chosen = True
            if row.name in self.shown:
                self.shown.remove(row.name)
            elif len(self.shown) >= MAX_DRAWN:
                self.notify(f"at most {MAX_DRAWN} trials are drawn at once; hide one first (space)", severity="warning")
                return
            else:
                self.shown.append(row.name)
        self.action_refresh()

    def action_stop_trial(self) -> None:
        """Stop the trial under the cursor with a checkpoint; its sweep counts it as stopped by hand."""
        from cockpit.supervisor import RunHandle
        from engine import run_dir as names

        row = self._row()
        if row is None or row.run_dir is None or names.holder(row.run_dir) is None:
            self.notify("that trial is not training", severity="warning")
            return
        RunHandle.attach(row.run_dir).request_stop()
        self.notify(f"stopping {row.name} after this step, with a checkpoint; the sweep goes on with the next trial")

    def action_refresh(self) -> None:
        self._wake.set()

    def action_back(self) -> None:
        self.app.pop_screen()
