"""One run dir read for comparison: the one fold (RunHandle: RunState + Diagnoser) and, from the same
pass over the events, what a comparison needs that the fold does not keep (every eval metric's best
and the logged throughput). Readings are incremental: `refresh()` reads only what was appended.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.series import Series
from cockpit.supervisor import RunHandle
from engine import run_dir as names
from engine.events import number

THROUGHPUT_LOGS = 200  # tokens/s: the median of the latest logs (warm-up and the odd slow step aside)


@dataclass
class Extremes:
    """The lowest and highest value of one eval metric, with their steps, and the latest."""

    low: float
    low_step: int | None
    high: float
    high_step: int | None
    last: float

    def add(self, value: float, step: int | None) -> None:
        if value < self.low:
            self.low, self.low_step = value, step
        if value > self.high:
            self.high, self.high_step = value, step
        self.last = value

    def best(self, direction: str) -> tuple[float, int | None]:
        return (self.low, self.low_step) if direction == "minimize" else (self.high, self.high_step)


class RunReading:
    """A run dir folded once, kept up to date by `refresh()`."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.handle = RunHandle.attach(self.run_dir)
        self.evals: dict[str, Extremes] = {}
        self.eval_series: dict[str, Series] = {}  # every eval metric by step, bounded (the sweep screen's curves)
        self.throughput: deque[float] = deque(maxlen=THROUGHPUT_LOGS)
        self.alive = False
        self._config: dict[str, Any] | None = None

    def refresh(self) -> RunReading:
        self.alive = self.handle.is_running()
        while True:
            batch = self.handle.poll(4 * 2**20)
            if not batch:
                break
            for event, fresh, _ in batch:
                if fresh:
                    self._extra(event)
        state = self.handle.state
        if not self.alive and state.finished is None and state.processes:
            self.handle.diagnoser.finish()  # the stream ended without run_finished: the whole-run rules judge
        return self

    def _extra(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "eval":
            step = event.get("step")
            for key, raw in event.items():
                value = number(raw) if key.startswith("eval_") else None
                if value is None or not math.isfinite(value):
                    continue
                known = self.evals.get(key)
                if known is None:
                    self.evals[key] = Extremes(value, step, value, step, value)
                    self.eval_series[key] = Series()
                else:
                    known.add(value, step)
                if isinstance(step, int):
                    self.eval_series[key].add(step, value)
        elif kind == "metrics":
            tps = number(event.get("tokens_per_second"))
            if tps is not None and math.isfinite(tps) and tps > 0:
                self.throughput.append(tps)

    # ---- what a comparison shows ---------------------------------------------------------------------

    @property
    def state(self):
        return self.handle.state

    @property
    def findings(self):
        return self.handle.diagnoser.findings

    def status(self) -> str:
        return self.state.status(self.alive)

    def config(self) -> dict[str, Any]:
        """The run's resolved config (config.yaml), else what its run_started carried."""
        if self._config is None:
            try:
                from engine import config as config_mod

                self._config = config_mod.load_run_config(self.run_dir)
            except Exception:  # a damaged or missing config.yaml: the fold's copy, else nothing
                self._config = self.state.config or {}
        return self._config

    def best(self, metric: str, direction: str) -> tuple[float | None, int | None]:
        known = self.evals.get(metric)
        return known.best(direction) if known else (None, None)

    def tokens_per_second(self) -> float | None:
        values = sorted(self.throughput)
        return values[len(values) // 2] if values else None

    def peak_memory_mb(self) -> float | None:
        """The peak the engine reported at the end (GPU reserved, else process RSS), else the latest reading."""
        report = (self.state.finished or {}).get("memory") or {}
        for key in ("peak_reserved_mb", "peak_rss_mb"):
            if number(report.get(key)) is not None:
                return number(report.get(key))
        memory = self.state.memory or {}
        peaks = [number((g or {}).get("used_mb")) for g in memory.get("gpus") or []]
        peaks = [p for p in peaks if p is not None]
        if peaks:
            return max(peaks)
        return number((memory.get("process") or {}).get("rss_mb"))

    def best_model(self) -> Path | None:
        """best/ where eval picked one, else final/."""
        for name in (names.BEST, names.FINAL):
            if (self.run_dir / name).is_dir():
                return self.run_dir / name
        return None


def flatten(cfg: dict[str, Any]) -> dict[str, Any]:
    """{"train": {"learning_rate": 1e-5}} -> {"train.learning_rate": 1e-5}."""
    out: dict[str, Any] = {}
    for section, values in cfg.items():
        if isinstance(values, dict):
            for key, value in values.items():
                out[f"{section}.{key}"] = value
    return out
