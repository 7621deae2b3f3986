"""A run, live or finished: header, charts, memory, samples, findings, log; stop, save, apply a fix.

At 120x40 every panel is on screen; at 80x24 the header's progress line, one panel (the loss chart
first), the top finding and the footer, with keys 1-5 for the other panels (cockpit/tui/panels.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import get_current_worker

from cockpit.state import GRPO_CHARTS, SFT_CHARTS
from cockpit.supervisor import RunHandle
from cockpit.tui.feed import RunFeed, Snapshot
from cockpit.tui.panels import LEFT, RIGHT, PanelLayout, is_narrow
from cockpit.tui.widgets.run.charts import MetricChart
from cockpit.tui.widgets.run.findings import FindingsPanel
from cockpit.tui.widgets.run.generations import GenerationsPanel
from cockpit.tui.widgets.run.header import RunHeader
from cockpit.tui.widgets.run.log import EngineLog, ErrorPanel
from cockpit.tui.widgets.run.memory import MemoryPanel
from cockpit.tui.widgets.run.samples import SamplesPanel
from cockpit.tui.widgets.run.top_finding import TopFinding

POLL_S = 0.25  # the reader drains events four times a second; each drain is one UI update
IDLE_POLL_S = 1.0  # a run that has ended only needs its log watched
BACKLOG_EVENTS = 1000  # a drain this large means more is waiting: read on without sleeping
BROWSE = Binding.Group("prev/next", compact=True)
PANEL_KEYS = Binding.Group("panels", compact=True)


def chart_id(name: str) -> str:
    return "chart-" + name.replace(" ", "-").replace("_", "-")


class RunScreen(Screen):
    """Routes a run's snapshots to its panels and its keys to the supervisor."""

    BINDINGS = [
        Binding("s", "stop", "stop"),
        Binding("c", "save", "save"),
        Binding("f", "apply_fix", "fix"),
        Binding("left_square_bracket", "browse(-1)", "prev", group=BROWSE),
        Binding("right_square_bracket", "browse(1)", "next", group=BROWSE),
        Binding("g", "next_group", "group"),
        Binding("1", "panel('charts')", "charts", group=PANEL_KEYS),
        Binding("2", "panel('detail')", "samples", group=PANEL_KEYS),
        Binding("3", "panel('findings')", "findings", group=PANEL_KEYS),
        Binding("4", "panel('log')", "log", group=PANEL_KEYS),
        Binding("5", "panel('memory')", "memory", group=PANEL_KEYS),
        Binding("escape", "home", "home"),
    ]

    def __init__(self, handle: RunHandle, owner: bool = False, poll_s: float = POLL_S, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.handle = handle
        self.feed = RunFeed(handle, owner=owner, clock=clock)
        self.poll_s = poll_s
        self.stop_requested = False
        self.last: Snapshot | None = None
        self.panels = PanelLayout()
        self.grpo = False

    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")
        yield ErrorPanel(id="error")
        yield TopFinding(id="top-finding")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                with Horizontal(id="charts", classes="panel"):
                    for name in SFT_CHARTS:
                        yield MetricChart(name, id=chart_id(name))
                with Horizontal(id="grpo-charts", classes="panel"):
                    for name in GRPO_CHARTS:
                        yield MetricChart(name, id=chart_id(name))
                with Vertical(id="detail"):
                    yield SamplesPanel(id="samples", classes="panel")
                    yield GenerationsPanel(id="generations", classes="panel")
            with Vertical(id="right"):
                yield MemoryPanel(id="memory", classes="panel")
                yield FindingsPanel(id="findings", classes="panel")
                yield EngineLog(id="log", classes="panel")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#error").display = False
        self.on_resize()
        self.read_run()

    def on_resize(self) -> None:
        self.panels.narrow = is_narrow(self.size.width, self.size.height)
        self.set_class(self.panels.narrow, "-narrow")
        self.apply_layout()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_group":
            return self.grpo  # GRPO's groups; hidden from the footer on SFT runs
        return True

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
        if snap.is_grpo != self.grpo:
            self.grpo = snap.is_grpo
            self.apply_layout()
            self.refresh_bindings()
        if "charts" in changed:
            self.feed.chart_points = max(c.points_wanted for c in self.query(MetricChart))
            ended = snap.status != "running"
            for name, lines in snap.charts.items():
                self.query_one("#" + chart_id(name), MetricChart).set_lines(
                    lines, snap.chart_nonfinite.get(name), x_max=snap.step or None, ended=ended)
        if "memory" in changed:
            self.query_one(MemoryPanel).show(snap.memory)
        if "samples" in changed or "header" in changed:
            self.query_one(SamplesPanel).show(snap.samples, snap.status)
        if "generations" in changed:
            self.query_one(GenerationsPanel).show(snap.generations)
        if "findings" in changed:
            self.query_one(FindingsPanel).show(snap.findings)
        if "findings" in changed or "header" in changed:
            self.query_one(TopFinding).show(self.query_one(FindingsPanel).findings, snap.status == "running")
        if "findings" in changed or "error" in changed or "header" in changed:
            self.query_one(ErrorPanel).show(snap.error, snap.status, self.query_one(FindingsPanel).findings, snap.removed)
        if snap.log_lines:
            self.query_one(EngineLog).add(snap.log_lines)
        if "samples" in changed:
            self.apply_layout()  # a GRPO run's prompts panel shows once there are prompts

    def apply_layout(self) -> None:
        """Show the panels the layout asks for; a column with nothing to show gives its width away."""
        layout, grpo = self.panels, self.grpo
        names = ([*GRPO_CHARTS] if grpo else []) + [*SFT_CHARTS]
        shown = layout.chart_shown(names) if layout.visible("charts") else None
        for name in (*SFT_CHARTS, *GRPO_CHARTS):
            self.query_one("#" + chart_id(name)).display = shown is None or name == shown
        if layout.narrow:
            self.query_one("#charts").display = shown in SFT_CHARTS
            self.query_one("#grpo-charts").display = shown in GRPO_CHARTS
        else:
            self.query_one("#charts").display = layout.visible("charts")
            self.query_one("#grpo-charts").display = grpo and layout.visible("charts")
        self.query_one("#detail").display = layout.visible("detail")
        samples = self.query_one(SamplesPanel)
        samples.show_prompts(grpo)
        samples.display = not grpo or bool(samples.samples)
        self.set_class(grpo, "-grpo")
        self.query_one("#generations").display = grpo
        for panel in RIGHT:
            self.query_one("#" + panel).display = layout.visible(panel)
        self.query_one("#left").display = layout.column_visible(LEFT)
        self.query_one("#right").display = layout.column_visible(RIGHT)
        self.query_one(TopFinding).display = layout.narrow or not layout.visible("findings")

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

    def action_browse(self, delta: int) -> None:
        """[ and ]: the previous or next sample (SFT), or the previous or next step's generations (GRPO)."""
        if self.grpo:
            self.query_one(GenerationsPanel).step(delta)
        else:
            self.query_one(SamplesPanel).step(delta)

    def action_next_group(self) -> None:
        self.query_one(GenerationsPanel).next_group()

    def action_panel(self, panel: str) -> None:
        self.panels.press(panel)
        self.apply_layout()

    def action_home(self) -> None:
        self.app.go_home()
