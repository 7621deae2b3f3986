"""A run as the screen sees it: events folded into state, charts, findings and the log (no Textual).

`RunFeed.poll()` runs in the screen's reader thread: it drains new events through the supervisor,
folds them (RunState, the Diagnoser, bounded chart series) and returns a `Snapshot` of what
changed, built from copies, so the UI thread never reads state the reader is still writing.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from cockpit.diagnose import Diagnoser, Finding, save_findings
from cockpit.diagnose.state import normalize_metrics
from cockpit.run_state import RunState
from cockpit.supervisor import LOG_FILE, RunHandle
from cockpit.tui.series import Series
from engine.events import number

# Chart name -> the metric keys drawn on it (eval_loss shares the loss axes).
SFT_CHARTS = {"loss": ("loss", "eval_loss"), "grad_norm": ("grad_norm",), "learning_rate": ("learning_rate",)}
GRPO_CHARTS = {"reward": ("reward",), "kl": ("kl",), "completion length": ("completions/mean_length",)}
SFT_KEYS = ("loss", "grad_norm", "learning_rate")
GRPO_MARKERS = ("reward", "kl", "completion_length", "completions/mean_length")  # a metrics log with any of these is GRPO
GRPO_KEYS = ("reward", "kl", "completions/mean_length", "reward_std", "frac_reward_zero_std")
KEPT_GENERATIONS = 8  # generations events kept for the panel; older ones are dropped
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
    is_grpo: bool = False
    charts: dict[str, list[tuple[str, list[float], list[float]]]] = field(default_factory=dict)
    memory: dict[str, Any] | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    generations: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    checkpoints: int = 0
    backlog: int = 0  # events read by this poll; a full chunk means more are waiting


class RunFeed:
    """Reads one run and keeps what the screen needs, with memory bounded however long the run."""

    def __init__(self, handle: RunHandle, owner: bool = False, chart_points: int = 240):
        self.handle = handle
        self.owner = owner  # this process started the run: it keeps findings.json up to date
        self.chart_points = chart_points  # set by the UI to about twice a chart's width
        self.state = RunState()
        self.diagnoser = Diagnoser()
        self.series: dict[str, Series] = {}
        self.generations: deque[dict[str, Any]] = deque(maxlen=KEPT_GENERATIONS)
        self.grpo = False
        self._log_offset: int | None = None
        self._log_partial = b""
        self._first = True
        self._finished_diagnosis = False
        self._findings_dirty = False
        self._findings_saved_at = 0.0

    @property
    def settled(self) -> bool:
        """The run has ended and every event of it is folded in, final diagnosis included."""
        return self._finished_diagnosis

    @property
    def run_dir(self) -> os.PathLike[str]:
        return self.handle.run_dir

    def _add(self, key: str, step: Any, value: Any) -> None:
        v = number(value)
        if v is None or not isinstance(step, (int, float)):
            return
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series()
        series.add(float(step), v)

    def fold(self, event: dict[str, Any], changed: set[str]) -> None:
        """One event into the state; names the areas it changes."""
        kind = event.get("type")
        self.state.feed(event)
        if self.diagnoser.feed(event):
            changed.add("findings")
            self._findings_dirty = True
        step = event.get("step")
        if kind == "metrics":
            if not self.grpo and any(k in event for k in GRPO_MARKERS):
                self.grpo = True
            if self.grpo or "lr" in event:
                # Key spellings differ across TRL versions; plain SFT logs (the long runs) skip this.
                logs = normalize_metrics(event)
                for key, value in logs.items():
                    if key in SFT_KEYS or key in GRPO_KEYS or (key.startswith("rewards/") and key.endswith("/mean")):
                        self._add(key, step, value)
            else:
                for key in SFT_KEYS:
                    if key in event:
                        self._add(key, step, event[key])
            changed.update(("header", "charts"))
        elif kind == "eval":
            self._add("eval_loss", step, event.get("eval_loss"))
            changed.add("charts")
        elif kind == "run_started":
            self.grpo = (event.get("config") or {}).get("run", {}).get("type") == "grpo"
            changed.add("header")
        elif kind == "samples":
            changed.add("samples")
        elif kind == "memory":
            changed.add("memory")
        elif kind == "generations":
            self.generations.append(event)
            self.grpo = True
            changed.add("generations")
        elif kind in ("error", "run_finished"):
            changed.update(("header", "error"))
        elif kind in ("status", "checkpoint", "dataset"):
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
        finished = self.state.finished
        if finished:
            return str(finished.get("status") or "finished")
        if self.state.error:
            return "failed"
        return "running" if alive else "ended"

    def poll(self, now: float | None = None) -> Snapshot | None:
        """Drain the new events and log lines; None when nothing changed."""
        alive = self.handle.is_running()
        changed: set[str] = set()
        events = self.handle.tail.read_new(FIRST_CHUNK_BYTES if self._first else READ_CHUNK_BYTES)
        for event in events:
            if event.get("type") == "run_finished":
                self.handle.finished = event
            self.fold(event, changed)
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
        if self._first:
            self._first = False
            changed.update(("header", "charts", "samples", "memory", "findings", "generations", "error"))
        elif alive and self.state.started_at is not None:
            changed.add("header")  # the clock and the ETA move on their own
        self._save_findings(alive)
        if not changed:
            return None
        snap = self.snapshot(changed, alive, log_lines, now)
        snap.backlog = len(events)
        return snap

    def _save_findings(self, alive: bool) -> None:
        if not (self.owner and self._findings_dirty):
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
        specs = dict(SFT_CHARTS)
        if self.grpo:
            specs.update(GRPO_CHARTS)
            fns = sorted(k for k in self.series if k.startswith("rewards/") and k.endswith("/mean"))
            specs["reward"] = ("reward", *fns)
        out = {}
        for name, keys in specs.items():
            lines = []
            for key in keys:
                series = self.series.get(key)
                if series is not None and len(series):
                    xs, ys = series.points(self.chart_points)
                    label = key[len("rewards/") : -len("/mean")] if key.startswith("rewards/") else key
                    lines.append((label, xs, ys))
            out[name] = lines
        return out

    def snapshot(self, changed: set[str], alive: bool, log_lines: list[str] | None = None, now: float | None = None) -> Snapshot:
        s = self.state
        status = self.status(alive)
        now = time.time() if now is None else now
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
            step=s.step,
            total_steps=s.total_steps,
            epoch=s.epoch,
            eta_s=s.eta_seconds(now) if alive else None,
            elapsed_s=elapsed,
            tokens_per_s=number(s.metrics.get("tokens_per_second")) if s.metrics else None,
            last_loss=s.last_loss,
            is_grpo=self.grpo,
            memory=s.memory,
            samples=list(s.samples),
            error=s.error,
            checkpoints=len(s.checkpoints),
            log_lines=log_lines or [],
        )
        if "charts" in changed:
            snap.charts = self.charts()
        if "findings" in changed:
            snap.findings = self.diagnoser.findings
        if "generations" in changed:
            snap.generations = list(self.generations)
        return snap
