"""A run as the screen sees it: the handle's one fold of the events, and the engine log (no Textual).

`RunFeed.poll()` runs in the screen's reader thread: it drains new events through the handle (which
folds each once into its RunState and Diagnoser) and returns a `Snapshot` of what changed, built
from copies, so the UI thread never reads state the reader is still writing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cockpit.diagnose import Finding, save_findings
from cockpit.eval_view import headline
from cockpit.supervisor import LOG_FILE, RunHandle
from engine import run_dir as names
from engine.events import number

LOG_LINES = 500  # engine log lines handed to the UI at most per poll
LOG_START_BYTES = 64 * 1024  # a long log is opened at its tail
SAVE_FINDINGS_S = 2.0
FIRST_CHUNK_BYTES = 256 * 1024  # a long run's first screen comes from its start, the rest follows
READ_CHUNK_BYTES = 4 * 1024 * 1024


@dataclass
class Snapshot:
    """What the screen draws, copied out of the reader's state. `changed` names the areas to redraw."""

    changed: set[str]
    title: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    phase: str = "starting"
    status: str = "running"  # running, completed, stopped, failed, ended (no run_finished and no process)
    step: int = 0
    total_steps: int | None = None
    epoch: float | None = None
    eta_s: float | None = None
    elapsed_s: float | None = None
    tokens_per_s: float | None = None
    last_loss: float | None = None
    evaluation: str = ""  # GRPO's eval accuracies and the latest cockpit eval result (cockpit/eval_view.py)
    last_reward: float | None = None
    is_grpo: bool = False
    charts: dict[str, list[tuple[str, list[float], list[float]]]] = field(default_factory=dict)
    chart_nonfinite: dict[str, list[tuple[str, list[float], int]]] = field(default_factory=dict)  # NaN/Inf steps per chart
    memory: dict[str, Any] | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    generations: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    checkpoints: int = 0  # complete checkpoints on disk now (rotation removes old ones)
    backlog: int = 0  # events read by this poll; a full chunk means more are waiting
    removed: bool = False  # the run was refused as bad input and its dir removed (cockpit/run_end.py)


class RunFeed:
    """Reads one run and keeps what the screen needs, with memory bounded however long the run."""

    def __init__(self, handle: RunHandle, owner: bool = False, chart_points: int = 240, clock: Callable[[], float] = time.time):
        self.handle = handle
        self.clock = clock  # wall-clock seconds: the elapsed time and the ETA of a live run
        self.owner = owner  # this process started the run: it keeps findings.json up to date
        self.chart_points = chart_points  # set by the UI to about twice a chart's width
        self.state = handle.state
        self.diagnoser = handle.diagnoser
        self._log_offset: int | None = None
        self._log_partial = b""
        self._first = True
        self._finished_diagnosis = False
        self._findings_dirty = False
        self._findings_saved_at = 0.0
        self._checkpoints_on_disk = 0
        self._count_checkpoints = False
        self._removed = False

    @property
    def settled(self) -> bool:
        """The run has ended and every event of it is folded in, final diagnosis included."""
        return self._finished_diagnosis

    @property
    def run_dir(self) -> os.PathLike[str]:
        return self.handle.run_dir

    @property
    def grpo(self) -> bool:
        return self.state.is_grpo

    @staticmethod
    def areas(event: dict[str, Any], changed: set[str]) -> None:
        """Names the areas of the screen one folded event changes."""
        kind = event.get("type")
        if kind == "metrics":
            changed.update(("header", "charts"))
        elif kind == "eval":
            changed.add("charts")
        elif kind in ("samples", "memory", "generations"):
            changed.add(kind)
        elif kind in ("error", "run_finished"):
            changed.update(("header", "error"))
        elif kind in ("run_started", "status", "checkpoint", "dataset"):
            changed.add("header")

    def _read_log(self) -> list[str]:
        path = os.path.join(self.handle.run_dir, LOG_FILE)
        try:
            size = os.path.getsize(path)
        except OSError:
            return []
        if self._log_offset is None:
            self._log_offset = max(0, size - LOG_START_BYTES)
        if size < self._log_offset:  # truncated or replaced
            self._log_offset, self._log_partial = 0, b""
        if size == self._log_offset:
            return []
        with open(path, "rb") as f:
            f.seek(self._log_offset)
            chunk = f.read(size - self._log_offset)
        self._log_offset += len(chunk)
        lines = (self._log_partial + chunk).split(b"\n")
        self._log_partial = lines.pop()
        # A progress bar rewrites its line with \r: keep what a terminal would show.
        return [line.decode("utf-8", errors="replace").rstrip("\r").rsplit("\r", 1)[-1] for line in lines[-LOG_LINES:]]

    def status(self, alive: bool) -> str:
        return self.state.status(alive)

    def poll(self, now: float | None = None) -> Snapshot | None:
        """Drain the new events and log lines; None when nothing changed."""
        alive = self.handle.is_running()
        changed: set[str] = set()
        events = self.handle.poll(FIRST_CHUNK_BYTES if self._first else READ_CHUNK_BYTES)
        for event, _fresh, found in events:
            self.areas(event, changed)  # a repeated step still moves the progress bar back
            if event.get("type") in ("checkpoint", "run_started", "run_finished"):
                self._count_checkpoints = True
            if found:
                changed.add("findings")
                self._findings_dirty = True
        log_lines = self._read_log()
        if log_lines:
            changed.add("log")
        if not alive and not self._finished_diagnosis and not events:
            # The whole stream is in: the rules that look at the run as a whole get their last say.
            self._finished_diagnosis = True
            if self.diagnoser.finish():
                changed.add("findings")
            self._findings_dirty = True  # the run's last word on findings.json, even when there are none
            changed.add("header")
        if self._first or self._count_checkpoints:
            self._checkpoints_on_disk = self.checkpoints_on_disk()
            self._count_checkpoints = False
        if self._first:
            self._first = False
            changed.update(("header", "charts", "samples", "memory", "findings", "generations", "error"))
        elif alive and self.state.started_at is not None:
            changed.add("header")  # the clock and the ETA move on their own
        if self._finished_diagnosis and not self._removed and not os.path.isdir(self.handle.run_dir):
            self._removed = True
            changed.add("error")
        self._save_findings(alive)
        if not changed:
            return None
        snap = self.snapshot(changed, alive, log_lines, now)
        snap.backlog = len(events)
        return snap

    def checkpoints_on_disk(self) -> int:
        """Complete checkpoints in the run dir: what a resume can use, after rotation removed the old ones."""
        return sum(1 for _, path in names.checkpoint_dirs(self.handle.run_dir) if (path / names.COMPLETE).is_file())

    def _save_findings(self, alive: bool) -> None:
        if not (self.owner and self._findings_dirty) or self._removed:
            return
        now = time.monotonic()
        if alive and now - self._findings_saved_at < SAVE_FINDINGS_S:
            return
        try:
            save_findings(self.handle.run_dir, self.diagnoser.findings)
        except OSError:
            return
        self._findings_dirty, self._findings_saved_at = False, now

    def charts(self) -> dict[str, list[tuple[str, list[float], list[float]]]]:
        """Chart name -> lines (label, steps, values), each downsampled to `chart_points`."""
        return self.state.chart_lines(self.chart_points)

    def snapshot(self, changed: set[str], alive: bool, log_lines: list[str] | None = None, now: float | None = None) -> Snapshot:
        s = self.state
        status = self.status(alive)
        now = self.clock() if now is None else now
        elapsed = None
        if s.finished and number(s.finished.get("runtime_s")) is not None:
            elapsed = number(s.finished.get("runtime_s"))
        elif s.started_at is not None:
            end = now if alive else (s.last_event_time or s.started_at)
            elapsed = max(0.0, end - s.started_at)
        cfg = s.config or {}
        snap = Snapshot(
            changed=changed,
            title=os.path.basename(os.path.normpath(self.handle.run_dir)),
            config=cfg,
            phase=s.phase,
            status=status,
            step=s.step or 0,
            total_steps=s.total_steps,
            epoch=s.epoch,
            eta_s=s.eta_seconds(now) if alive else None,
            elapsed_s=elapsed,
            tokens_per_s=number(s.metrics.get("tokens_per_second")) if s.metrics else None,
            last_loss=s.last_loss,
            evaluation=headline(s),
            last_reward=number(s.metrics.get("reward")) if s.metrics else None,
            is_grpo=self.grpo,
            memory=s.memory,
            samples=list(s.samples or []),
            error=s.error,
            checkpoints=self._checkpoints_on_disk,
            log_lines=log_lines or [],
            removed=self._removed,
        )
        if "charts" in changed:
            snap.charts = self.charts()
            snap.chart_nonfinite = s.chart_nonfinite_lines()
        if "findings" in changed:
            snap.findings = self.diagnoser.findings
        if "generations" in changed:
            snap.generations = list(s.generations)
        return snap
