"""A run, live or finished: header, charts, memory, samples, findings, log; stop, save, apply a fix."""

from __future__ import annotations

import time

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import get_current_worker

from cockpit.supervisor import RunHandle
from cockpit.state import GRPO_CHARTS, SFT_CHARTS
from cockpit.tui.feed import RunFeed, Snapshot
from cockpit.tui.widgets.run.charts import MetricChart
from cockpit.tui.widgets.run.findings import FindingsPanel
from cockpit.tui.widgets.run.generations import GenerationsPanel
from cockpit.tui.widgets.run.header import RunHeader
from cockpit.tui.widgets.run.log import EngineLog, ErrorPanel
from cockpit.tui.widgets.run.memory import MemoryPanel
from cockpit.tui.widgets.run.samples import SamplesPanel

POLL_S = 0.25  # the reader drains events four times a second; each drain is one UI update
IDLE_POLL_S = 1.0  # a run that has ended only needs its log watched
BACKLOG_EVENTS = 1000  # a drain this large means more is waiting: read on without sleeping


def chart_id(name: str) -> str:
    return "chart-" + name.replace(" ", "-").replace("_", "-")


class RunScreen(Screen):
    """Routes a run's snapshots to its panels and its keys to the supervisor."""

    BINDINGS = [
        Binding("s", "stop", "stop"),
        Binding("c", "save", "checkpoint now"),
        Binding("f", "apply_fix", "apply fix"),
        Binding("left_square_bracket", "sample(-1)", "prev sample", show=False),
        Binding("right_square_bracket", "sample(1)", "next sample"),
        Binding("g", "next_group", "next group", show=False),
        Binding("1", "toggle('charts')", "charts"),
        Binding("2", "toggle('detail')", "samples"),
        Binding("3", "toggle('findings')", "findings"),
        Binding("4", "toggle('log')", "log"),
        Binding("5", "toggle('memory')", "memory", show=False),
        Binding("escape", "home", "home"),
    ]

    def __init__(self, handle: RunHandle, owner: bool = False, poll_s: float = POLL_S) -> None:
        super().__init__()
        self.handle = handle
        self.feed = RunFeed(handle, owner=owner)
        self.poll_s = poll_s
        self.stop_requested = False
        self.last: Snapshot | None = None

    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")
        yield ErrorPanel(id="error")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                with Horizontal(id="charts", classes="panel"):
                    for name in SFT_CHARTS:
                        yield MetricChart(name, id=chart_id(name))
                with Horizontal(id="grpo-charts", classes="panel grpo"):
                    for name in GRPO_CHARTS:
                        yield MetricChart(name, id=chart_id(name))
                with Vertical(id="detail"):
                    yield SamplesPanel(id="samples", classes="panel")
                    yield GenerationsPanel(id="generations", classes="panel grpo")
            with Vertical(id="right"):
                yield MemoryPanel(id="memory", classes="panel")
                yield FindingsPanel(id="findings", classes="panel")
                yield EngineLog(id="log", classes="panel")
        yield Footer()

    def on_resize(self) -> None:
        self.set_class(self.size.width < 100, "-narrow")

    def on_mount(self) -> None:
        self.set_class(self.size.width < 100, "-narrow")
        self.query_one("#error").display = False
        self.set_grpo(False)
        self.read_run()

    # ---- reading -----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="run-reader", exit_on_error=False)
    def read_run(self) -> None:
        """Drain the run's events a few times a second; hand each batch to the UI as one snapshot."""
        worker = get_current_worker()
        while not worker.is_cancelled:
            snap = self.feed.poll()
            if snap is not None:
                try:
                    # Blocks until the UI has drawn it: the reader never runs ahead of the screen.
                    self.app.call_from_thread(self.apply, snap)
                except RuntimeError:  # the app is closing
                    return
            if snap is not None and snap.backlog >= BACKLOG_EVENTS:
                continue
            idle = snap is None and self.last is not None and self.last.status != "running"
            time.sleep(IDLE_POLL_S if idle else self.poll_s)

    def apply(self, snap: Snapshot) -> None:
        """One batched UI update: only the panels whose data changed are touched."""
        self.last = snap
        changed = snap.changed
        if "header" in changed:
            self.query_one(RunHeader).show(snap)
        if snap.is_grpo != self.query_one("#grpo-charts").display:
            self.set_grpo(snap.is_grpo)
        if "charts" in changed:
            self.feed.chart_points = max(c.points_wanted for c in self.query(MetricChart))
            for name, lines in snap.charts.items():
                self.query_one("#" + chart_id(name), MetricChart).set_lines(lines)
        if "memory" in changed:
            self.query_one(MemoryPanel).show(snap.memory)
        if "samples" in changed:
            self.query_one(SamplesPanel).show(snap.samples)
        if "generations" in changed:
            self.query_one(GenerationsPanel).show(snap.generations)
        if "findings" in changed:
            self.query_one(FindingsPanel).show(snap.findings)
        if "findings" in changed or "error" in changed or "header" in changed:
            self.query_one(ErrorPanel).show(snap.error, snap.status, self.query_one(FindingsPanel).findings)
        if snap.log_lines:
            self.query_one(EngineLog).write_lines(snap.log_lines)

    def set_grpo(self, on: bool) -> None:
        for widget in self.query(".grpo"):
            widget.display = on
        self.query_one("#samples").display = not on or bool(self.query_one(SamplesPanel).samples)

    @property
    def settled(self) -> bool:
        """Everything on disk is drawn: the run has ended, its last findings are in, no chart waits to redraw."""
        return (
            self.last is not None
            and self.last.status != "running"
            and self.feed.settled
            and not any(chart.dirty for chart in self.query(MetricChart))
        )

    # ---- actions -----------------------------------------------------------------------------

    def action_stop(self) -> None:
        if not self.handle.is_running():
            self.notify("the run is not running", severity="warning")
            return
        if self.stop_requested:
            self.handle.kill()
            self.notify("killed the engine (no checkpoint)", severity="error")
            return
        self.stop_requested = True
        self.handle.request_stop()
        self.notify("stopping after this step, with a checkpoint (press s again to kill)")

    def action_save(self) -> None:
        if not self.handle.is_running():
            self.notify("the run is not running", severity="warning")
            return
        self.handle.request_save()
        self.notify("a checkpoint will be saved at the next step")

    def action_apply_fix(self) -> None:
        finding = self.query_one(FindingsPanel).selected
        if finding is None:
            self.notify("no finding selected", severity="warning")
            return
        if not finding.overrides:
            self.notify(f"{finding.code} has no fix to apply as config; see its fix in words", severity="warning")
            return
        from cockpit.tui import new_run
        from cockpit.tui.screens.new_run import NewRunScreen

        request = new_run.from_fix(self.handle.run_dir, finding.overrides)
        self.app.push_screen(NewRunScreen(request, heading=f"new run from {self.feed.run_dir.name} with the fix for {finding.code}"))

    def action_sample(self, delta: int) -> None:
        self.query_one(SamplesPanel).step(delta)

    def action_next_group(self) -> None:
        self.query_one(GenerationsPanel).next_group()

    def action_toggle(self, panel: str) -> None:
        widget = self.query_one("#" + panel)
        widget.display = not widget.display

    def action_home(self) -> None:
        from cockpit.tui.screens.home import HomeScreen

        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.switch_screen(HomeScreen())
