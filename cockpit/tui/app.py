"""The cockpit app: home, the new-run form and run screens, and what quitting does to live runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from cockpit.supervisor import RunDirError, RunHandle


class CockpitApp(App):
    """`cockpit` opens it on the home screen, `cockpit watch RUN_DIR` on one run."""

    CSS_PATH = "app.tcss"
    TITLE = "cockpit"
    BINDINGS = [Binding("q", "quit_app", "quit"), Binding("ctrl+c", "quit_app", "quit", show=False, priority=True)]

    def __init__(self, run_dir: Path | None = None, runs_dir: Path | str = "runs", poll_s: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.run_dir = Path(run_dir) if run_dir else None
        self.runs_dir = Path(runs_dir)
        self.poll_s = poll_s
        self.clock = clock  # what live runs' elapsed time and ETA are measured against
        self.handles: dict[Path, RunHandle] = {}  # every run this session opened or started

    def on_mount(self) -> None:
        from cockpit.tui.screens.home import HomeScreen

        if self.run_dir is None:
            self.push_screen(HomeScreen())
        elif not self.open_run(self.run_dir):
            self.push_screen(HomeScreen())

    def _run_screen(self, handle: RunHandle, owner: bool = False):
        from cockpit.tui.screens.run import POLL_S, RunScreen

        self.handles[Path(handle.run_dir).resolve()] = handle
        return RunScreen(handle, owner=owner, poll_s=self.poll_s or POLL_S, clock=self.clock)

    def open_run(self, run_dir: Path) -> bool:
        """Attach to a run dir (going on or ended) and show it; False with a message when it is not one."""
        known = self.handles.get(Path(run_dir).resolve())
        try:
            handle = RunHandle.attach(run_dir) if known is None or known.process is None else known
        except RunDirError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return False
        self.push_screen(self._run_screen(handle, owner=known is not None and known.process is not None))
        return True

    def run_started(self, handle: RunHandle, warnings: list[str] | None = None) -> None:
        """A run the new-run form started: its screen replaces the form."""
        self.switch_screen(self._run_screen(handle, owner=True))
        for warning in warnings or []:
            self.notify(warning, severity="warning", timeout=8)

    def go_home(self) -> None:
        """Back to the home screen, however many run and form screens lie on it (after a fix-run too)."""
        from cockpit.tui.screens.home import HomeScreen

        if any(isinstance(screen, HomeScreen) for screen in self.screen_stack):
            while not isinstance(self.screen, HomeScreen):
                self.pop_screen()
            return
        while len(self.screen_stack) > 2:  # `cockpit watch`: no home below; the base screen stays
            self.pop_screen()
        self.switch_screen(HomeScreen())

    def live_runs(self) -> list[RunHandle]:
        return [h for h in self.handles.values() if h.is_running()]

    def action_quit_app(self) -> None:
        """Quit; when runs are still training, ask whether to stop them or leave them running."""
        from cockpit.tui.screens.quit import QuitScreen

        live = self.live_runs()
        if not live:
            self.exit()
            return

        def answered(answer: str | None) -> None:
            if answer == "stop":
                for handle in live:
                    handle.request_stop()
                self.exit(message=f"stopping {len(live)} run(s) with a checkpoint: " + ", ".join(str(h.run_dir) for h in live))
            elif answer == "leave":
                self.exit(message="left running: " + ", ".join(f"cockpit watch {h.run_dir}" for h in live))

        if not isinstance(self.screen, QuitScreen):
            self.push_screen(QuitScreen([Path(h.run_dir).name for h in live]), answered)
