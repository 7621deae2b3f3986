"""The one fold of a run's event stream: what `cockpit run`, the TUI, the home list, doctor and the
rules know about a run (standard library only).

`RunState.feed(event)` is called once per event and says whether the event was fresh. A run dir's
events.jsonl holds the events of every engine process that worked on it: a resumed engine starts
from its checkpoint, so the steps after that checkpoint come again. Steps are the key: a metrics,
eval or generations event at a step already folded is not folded again, so a stopped-and-resumed
run folds to the same state (and the same findings) as one that ran straight through. The processes
are kept apart (`processes`, `live`), so readers know which engine is the current one.

Memory stays bounded however long the run: series are bucketed (cockpit/series.py) and the lists
of notable steps keep their first entries and count the rest.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from cockpit.logs import EvalSet
from cockpit.series import Marks, Series
from cockpit.training_logs import CHARTED, GRAD_WINDOW, GRPO_KEYS, GRPO_TRACKED, SMOOTH_LOGS, WARMUP_LOGS, TrainingLogs  # noqa: F401 (readers import them from here)
from engine.events import number
from engine.train import best

KEPT_GENERATIONS = 8  # generations events kept for the panel

_EVAL_LOSS = re.compile(r"eval_(?:(.+)_)?loss")
# Eval keys that measure the evaluation's pace, not the model.
_EVAL_PACE = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "eval_num_tokens", "eval_epoch")
# Chart name -> the metric keys drawn on it (eval_loss shares the loss axes).
SFT_CHARTS = {"loss": ("loss", "eval_loss"), "grad_norm": ("grad_norm",), "learning_rate": ("learning_rate",)}
GRPO_CHARTS = {"reward": ("reward",), "kl": ("kl",), "completion length": ("completions/mean_length",)}


@dataclass
class Process:
    """One engine process of the run: its run_started and how it ended."""

    pid: int | None
    started_at: float | None
    resumed_from: int | None = None
    finished: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


class RunState(TrainingLogs):
    """Everything known about a run, updated one event at a time."""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.processes: list[Process] = []
        self.plan: dict[str, Any] = {}
        self.phase = "starting"
        self.message = ""
        self.dataset: dict[str, Any] | None = None
        self.samples: list[dict[str, Any]] | None = None
        self.memory: dict[str, Any] | None = None
        self.estimate: dict[str, Any] | None = None
        self.reward_check: dict[str, Any] | None = None  # GRPO: the groups sampled and scored before training
        self.kind_hint: str | None = None  # from the config's run.type
        self.kind = "sft"  # sft | grpo | preference, refined from the logs' keys
        self.step: int | None = None  # where the live process is (goes back when a resume repeats steps)
        self.epoch: float | None = None
        self.last_event_time: float | None = None
        self.training_started_at: float | None = None  # of the live process: its pace gives the ETA
        self.training_start_step = 0
        self.metrics: dict[str, Any] = {}  # the latest metrics event as logged
        self.last: dict[str, Any] = {}  # the same, normalized
        self.eval: dict[str, Any] = {}  # the latest eval event
        self.generations: deque[dict[str, Any]] = deque(maxlen=KEPT_GENERATIONS)
        self.charts: dict[str, Series] = {}
        self.chart_nonfinite: dict[str, Marks] = {}  # charted key -> steps whose value was NaN/Inf (marked on the chart)
        self.checkpoints: dict[int, str] = {}  # step -> path
        self.errors: list[dict[str, Any]] = []
        self.repeated = 0  # events skipped because their step was folded already
        self._high: dict[str, int] = {}  # event type -> the highest step folded
        self._floor: dict[str, int] = {}  # the same, before the live engine started: its repeats end there
        self._init_training_logs()
        # Evaluation.
        self.eval_sets: dict[str, EvalSet] = {}
        self.eval_metrics: dict[str, Series] = {}  # every other eval metric (eval_reward, accuracies ...)
        self.best_eval: dict[str, Any] | None = None  # the evaluation best/ keeps (engine/train/best.py): step, ranked values
        self._best_score: tuple[float, ...] | None = None
        self.tests: dict[str, dict[str, Any]] = {}  # `cockpit eval` results on test files, by name
        # GRPO groups: every completion total seen, and the zero-spread groups of the latest generations.
        self.group_lo: float | None = None
        self.group_hi: float | None = None
        self.zero_std_groups: list[float] = []
        self.groups_seen = 0
        self.n_evals = 0
        self.evals_without_loss = 0
        self._lr_set: float | None = None  # learning rate from the config or the plan
        self.raised: set[str] = set()  # codes of the findings raised so far (kept by the Diagnoser)

    # ---- what readers ask -----------------------------------------------------------------------

    def cfg(self, dotted: str, default: Any = None) -> Any:
        section, _, key = dotted.partition(".")
        value = (self.config.get(section) or {}).get(key, default)
        return default if value is None else value

    @property
    def live(self) -> Process | None:
        """The latest engine process (the one a watcher follows and a stop request reaches)."""
        return self.processes[-1] if self.processes else None

    @property
    def finished(self) -> dict[str, Any] | None:
        """The live process's run_finished: how the run ended, unless a resume started it again."""
        return self.live.finished if self.live else None

    @property
    def error(self) -> dict[str, Any] | None:
        """The live process's last error."""
        live = self.live
        return live.errors[-1] if live and live.errors else None

    @property
    def started_at(self) -> float | None:
        return self.processes[0].started_at if self.processes else None

    @property
    def total_steps(self) -> int | None:
        total = self.plan.get("total_steps") or self.metrics.get("total_steps")
        return int(total) if isinstance(total, (int, float)) and total > 0 else None

    @property
    def last_loss(self) -> float | None:
        return self.loss.last

    @property
    def lr(self) -> float | None:
        """The configured peak learning rate, else the largest one logged."""
        return self._lr_set if self._lr_set is not None else self.lr_max

    @property
    def precision(self) -> str | None:
        """fp16, bf16 or fp32 as the run trained (its plan says), else as configured; None when unknown."""
        planned = self.plan.get("precision")
        if planned in ("fp16", "bf16", "fp32"):
            return planned
        dtype = self.cfg("model.dtype")
        if dtype in ("fp16", "bf16", "fp32"):
            return dtype
        # auto on a CPU trains in fp32 (the estimate event says where the run trained).
        return "fp32" if dtype == "auto" and (self.estimate or {}).get("device") == "cpu" else None

    @property
    def scaler_skips(self) -> bool:
        """Whether an Inf grad_norm may be fp16's loss scaler skipping a step (fp16, or not known)."""
        return self.precision in (None, "fp16")

    @property
    def finetune(self) -> str | None:
        return self.cfg("model.finetune")

    @property
    def is_grpo(self) -> bool:
        return self.kind == "grpo"

    def checkpoint_at(self, step: int) -> str | None:
        return self.checkpoints.get(step)

    def status(self, alive: bool) -> str:
        """running, completed, stopped, failed, or ended (no run_finished and no live engine)."""
        if self.finished:
            return str(self.finished.get("status") or "finished")
        if self.error and not alive:
            return "failed"
        return "running" if alive else ("ended" if self.processes else "not started")

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Remaining time from the live process's pace so far."""
        if not self.total_steps or self.training_started_at is None or self.finished or self.step is None:
            return None
        done = self.step - self.training_start_step
        if done <= 0:
            return None
        elapsed = (now or time.time()) - self.training_started_at
        return elapsed / done * (self.total_steps - self.step)

    def chart_lines(self, max_points: int) -> dict[str, list[tuple[str, list[float], list[float]]]]:
        """Chart name -> lines (label, steps, values), each at most `max_points` points."""
        specs = dict(SFT_CHARTS)
        if self.is_grpo:
            specs.update(GRPO_CHARTS)
            fns = sorted(k for k in self.charts if k.startswith("rewards/") and k.endswith("/mean"))
            specs["reward"] = ("reward", *fns)
        out = {}
        for name, keys in specs.items():
            lines = []
            for key in keys:
                series = self.charts.get(key)
                if series is not None and len(series):
                    xs, ys = series.points(max_points)
                    label = key[len("rewards/") : -len("/mean")] if key.startswith("rewards/") else key
                    lines.append((label, xs, ys))
            out[name] = lines
        return out

    def chart_nonfinite_lines(self) -> dict[str, list[tuple[str, list[float], int]]]:
        """Chart name -> (label, steps kept, how many in all) of the NaN/Inf values its lines could not draw."""
        out: dict[str, list[tuple[str, list[float], int]]] = {}
        for name, keys in {**SFT_CHARTS, **GRPO_CHARTS}.items():
            marks = [(key, self.chart_nonfinite[key]) for key in keys if self.chart_nonfinite.get(key)]
            if marks:
                out[name] = [(key, list(m), len(m)) for key, m in marks]
        return out

    # ---- folding events -------------------------------------------------------------------------

    def feed(self, event: dict[str, Any]) -> bool:
        """Fold one event in; False when it repeats a step already folded (it changes nothing)."""
        kind = event.get("type")
        t = number(event.get("time"))
        if t is not None:
            self.last_event_time = t
        step = event.get("step")
        step = int(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else None
        if kind in ("metrics", "eval", "generations") and step is not None:
            # A step the earlier engines reached already comes again after a resume: folded once.
            # Within one engine a step may carry several logs (six eval sets, the closing summary).
            if step <= self._floor.get(kind, -1):
                self.repeated += 1
                if kind == "metrics":  # the live process is back here: progress follows it
                    self.step = step
                return False
            if kind == "metrics" and step < self._high.get(kind, -1):
                # A step going backwards within one process: two runs' logs in one file (a restart
                # appended to the same log). Named, and folded as a resume: the repeats are skipped.
                self.backtracks.append((self._high[kind], step))
                self._floor = dict(self._high)
                self.repeated += 1
                self.step = step
                return False
            self._high[kind] = max(step, self._high.get(kind, -1))
        if step is not None:
            self.step = step
        handler = getattr(self, "_on_" + str(kind), None)
        if handler is not None:
            handler(event)
        return True

    def _on_run_started(self, event: dict[str, Any]) -> None:
        self._floor = dict(self._high)
        self.processes.append(Process(event.get("pid"), number(event.get("time")), event.get("resumed_from")))
        self.phase, self.message = "starting", ""
        self.training_started_at = None
        config = event.get("config")
        if isinstance(config, dict):
            self.config = config
            run_type = (config.get("run") or {}).get("type")
            self._lr_set = number((config.get("train") or {}).get("learning_rate")) or self._lr_set
            if run_type in ("sft", "grpo"):
                self.kind_hint = run_type
                self.kind = run_type

    def _process(self) -> Process:
        if not self.processes:  # a stream cut before its run_started (a log read from the middle)
            self.processes.append(Process(None, self.last_event_time))
        return self.processes[-1]

    def _on_status(self, event: dict[str, Any]) -> None:
        self.phase = event.get("phase", self.phase)
        self.message = event.get("message", "")
        plan = event.get("plan")
        if isinstance(plan, dict):
            self.plan = plan
            self.training_started_at = number(event.get("time"))
            self.training_start_step = self.step or 0
            if self._lr_set is None:
                self._lr_set = number(plan.get("learning_rate"))

    def _on_dataset(self, event: dict[str, Any]) -> None:
        self.dataset = event

    def _on_samples(self, event: dict[str, Any]) -> None:
        samples = event.get("samples")
        if isinstance(samples, list):
            self.samples = [s for s in samples if isinstance(s, dict)]

    def _on_memory(self, event: dict[str, Any]) -> None:
        self.memory = event

    def _on_estimate(self, event: dict[str, Any]) -> None:
        self.estimate = event

    def _on_reward_check(self, event: dict[str, Any]) -> None:
        self.reward_check = event
        self.kind = "grpo"

    def _on_generations(self, event: dict[str, Any]) -> None:
        self.generations.append(event)
        self.kind = "grpo"
        zero: list[float] = []
        for group in event.get("groups") or []:
            totals = [number(c.get("total")) for c in group.get("completions") or [] if isinstance(c, dict)]
            totals = [t for t in totals if t is not None and math.isfinite(t)]
            if not totals:
                continue
            self.groups_seen += 1
            self.group_lo = min(totals) if self.group_lo is None else min(self.group_lo, *totals)
            self.group_hi = max(totals) if self.group_hi is None else max(self.group_hi, *totals)
            if max(totals) - min(totals) <= 1e-9:
                zero.append(totals[0])
        self.zero_std_groups = zero

    def _on_checkpoint(self, event: dict[str, Any]) -> None:
        step = self.step if self.step is not None else 0
        self.checkpoints[step] = str(event.get("path") or f"checkpoint-{step}")

    def _on_error(self, event: dict[str, Any]) -> None:
        self.errors.append(event)
        self._process().errors.append(event)

    def _on_run_finished(self, event: dict[str, Any]) -> None:
        self._process().finished = event
        self.phase = str(event.get("status") or "finished")

    def _on_eval(self, event: dict[str, Any]) -> None:
        self.eval = event
        self.n_evals += 1
        step = self.step if self.step is not None else 0
        epoch = number(event.get("epoch"))
        found = False
        for key, raw in event.items():
            match = _EVAL_LOSS.fullmatch(key)
            if not match:
                continue
            value = number(raw)
            if value is None:
                continue
            found = True
            name = match.group(1) or ""
            eval_set = self.eval_sets.get(name)
            if eval_set is None:
                eval_set = self.eval_sets[name] = EvalSet(name)
            eval_set.add(step, value, epoch, self.level)
            if not name:
                self._chart("eval_loss", step, value)
        for key, raw in event.items():
            if key.startswith("eval_") and not _EVAL_LOSS.fullmatch(key) and key not in _EVAL_PACE:
                value = number(raw)
                if value is not None and math.isfinite(value):
                    series = self.eval_metrics.get(key)
                    if series is None:
                        series = self.eval_metrics[key] = Series()
                    series.add(step, value)
        if not found:
            self.evals_without_loss += 1
        keys = best.keys_for(self.kind)
        score = best.score(event, keys)
        if best.better(score, self._best_score):
            self._best_score, self.best_eval = score, {"step": step, **best.ranked(event, keys)}

    def _on_test_eval(self, event: dict[str, Any]) -> None:
        self.tests[str(event.get("name"))] = event

    def _chart(self, key: str, step: float, value: float | None) -> None:
        if value is None:
            return
        if not math.isfinite(value):
            marks = self.chart_nonfinite.get(key)
            if marks is None:
                marks = self.chart_nonfinite[key] = Marks()
            marks.append(step)
            return
        series = self.charts.get(key)
        if series is None:
            series = self.charts[key] = Series()
        series.add(step, value)

def fold(events) -> RunState:
    """A whole stream folded."""
    state = RunState()
    for event in events:
        state.feed(event)
    return state
