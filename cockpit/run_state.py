"""What is known about a run so far, folded from its events. Shared by `cockpit run` and the TUI."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from engine.events import number


@dataclass
class RunState:
    """The latest of everything: phase, progress, metrics, eval, errors, outputs."""

    config: dict[str, Any] = field(default_factory=dict)
    phase: str = "starting"
    message: str = ""
    step: int = 0
    total_steps: int | None = None
    epoch: float | None = None
    plan: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    training_started_at: float | None = None
    training_start_step: int = 0
    last_event_time: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    first_loss: float | None = None
    last_loss: float | None = None
    eval: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, Any] | None = None
    estimate: dict[str, Any] | None = None
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    finished: dict[str, Any] | None = None

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        t = event.get("time")
        if isinstance(t, (int, float)):
            self.last_event_time = t
        step = event.get("step")
        if isinstance(step, int):
            self.step = max(self.step, step) if kind != "run_started" else step
        if kind == "run_started":
            self.config = event.get("config") or {}
            self.started_at = t
            self.finished, self.error = None, None
        elif kind == "status":
            self.phase = event.get("phase", self.phase)
            self.message = event.get("message", "")
            if event.get("plan"):
                self.plan = event["plan"]
                self.total_steps = self.plan.get("total_steps")
                self.training_started_at = t
                self.training_start_step = step or 0
        elif kind == "dataset":
            self.dataset = event
        elif kind == "samples":
            self.samples = event.get("samples") or []
        elif kind == "metrics":
            self.metrics = event
            self.epoch = number(event.get("epoch"))
            if event.get("total_steps"):
                self.total_steps = event["total_steps"]
            loss = number(event.get("loss"))
            if loss is not None:
                self.first_loss = loss if self.first_loss is None else self.first_loss
                self.last_loss = loss
        elif kind == "eval":
            self.eval = event
        elif kind == "memory":
            self.memory = event
        elif kind == "estimate":
            self.estimate = event
        elif kind == "checkpoint":
            self.checkpoints.append(event)
        elif kind == "error":
            self.error = event
        elif kind == "run_finished":
            self.finished = event
            self.phase = event.get("status", "finished")

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Remaining time from the pace of the training steps so far."""
        if not self.total_steps or self.training_started_at is None or self.finished:
            return None
        done = self.step - self.training_start_step
        if done <= 0:
            return None
        elapsed = (now or time.time()) - self.training_started_at
        return elapsed / done * (self.total_steps - self.step)
