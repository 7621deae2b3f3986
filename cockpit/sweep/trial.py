"""One trial in flight: started (or resumed, or attached to) through the one launch path, followed
through its event stream, reported to Optuna at each eval, stopped early when the pruner or a red
finding says so, and told to the study when its engine ends.

A trial is an ordinary run dir, so everything here is what `cockpit run` does for a run, plus the
study: the same RunHandle fold, the same Diagnoser findings (saved to findings.json).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cockpit import launch
from cockpit.diagnose import Finding, save_findings
from cockpit.supervisor import RunDirError, RunHandle
from cockpit.sweep import study as study_mod
from cockpit.sweep.claims import Flock
from cockpit.sweep.devices import Slot
from cockpit.sweep.spec import SweepSpec
from cockpit.sweep.sweep_dir import INTERRUPTED
from engine import checkpoints
from engine import run_dir as names
from engine.errors import EngineError
from engine.events import number as as_number
from engine.run_dir import RunDirBusy

# Red findings no more steps will cure: a trial that raises one is stopped (and counted as pruned).
PRUNE_CODES = ("labels-masked", "loss-nan", "grad-nan", "divergence", "reward-zero-std")


class Reporter(Protocol):
    """Where a sweep says what happens (the terminal for `cockpit sweep`)."""

    def trial_line(self, run: TrialRun, text: str, style: str = "") -> None: ...

    def finding(self, run: TrialRun, finding: Finding) -> None: ...


@dataclass
class Outcome:
    """How a trial's turn ended: complete, pruned, failed, or interrupted (left for a resume)."""

    number: int
    state: str
    value: float | None = None
    why: str = ""


class TrialRun:
    """A trial this worker holds (its claim), with its run dir's handle once the engine started."""

    def __init__(self, sweep_dir: Path, spec: SweepSpec, study: Any, trial: Any, claim: Flock, slot: Slot, reporter: Reporter,
                 resumed: bool):
        self.sweep_dir, self.spec, self.study, self.trial = Path(sweep_dir), spec, study, trial
        self.claim, self.slot, self.reporter = claim, slot, reporter
        self.number: int = trial.number
        self.name = study_mod.trial_dir_name(self.number)
        self.run_dir = self.sweep_dir / self.name
        self.resumed = resumed
        self.params = study_mod.suggest(trial, spec.params)  # a resumed trial reads its values back
        self.handle: RunHandle | None = None
        frozen = self._frozen()
        self.reported: set[int] = set(frozen.intermediate_values) if frozen else set()
        self.stopped_by: dict[str, Any] | None = (frozen.user_attrs.get("stopped_by") if frozen else None)
        self.best: float | None = None
        self.best_step: int | None = None
        self.interrupted = False  # the sweep asked it to stop (Ctrl-C): it stays RUNNING, to be resumed
        self._stop_sent = False
        self._findings_changed = False
        self.quiet = False  # while catching up on a run's earlier events: reported, not printed

    def _frozen(self) -> Any:
        for t in self.study.get_trials(deepcopy=False):
            if t.number == self.number:
                return t
        return None

    @property
    def values_text(self) -> str:
        from engine.config.options import num

        return "  ".join(f"{k}={num(v) if isinstance(v, (int, float)) else v}" for k, v in self.params.items())

    # ---- starting ------------------------------------------------------------------------------------

    def start(self) -> Outcome | None:
        """Start, resume or attach to the trial's engine; an Outcome when it ends before training."""
        self.trial.set_user_attr("run_dir", self.name)
        try:
            if self.resumed and names.is_run_dir(self.run_dir):
                return self._continue()
            return self._start_fresh()
        except (EngineError, RunDirError, RunDirBusy) as exc:
            return self._fail(str(exc))

    def _start_fresh(self) -> Outcome | None:
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            self._set_aside()
        sets = self.spec.trial_sets(self.params)
        if self.slot.env is not None:  # the slot's CUDA_VISIBLE_DEVICES are the trial's GPUs: no indices of a preset's apply
            sets.append("run.gpu_ids=null")
        request = launch.Request(preset=self.spec.preset, config_file=Path(self.spec.config_file) if self.spec.config_file else None,
                                 values=self.spec.trial_values(), sets=sets, output_dir=self.run_dir)
        prepared = launch.prepare(request)
        self.handle = launch.start(prepared, env=self.slot.env)
        self.reporter.trial_line(self, f"started  {self.values_text}  ({self.slot.label})")
        return None

    def _continue(self) -> Outcome | None:
        """An interrupted trial: attach to its engine if one still trains it, else resume it from its
        checkpoint, else (nothing saved yet) start it again; a run that had ended is only concluded."""
        handle = RunHandle.attach(self.run_dir)
        self.handle = handle
        self.quiet = True
        while True:  # its events so far, folded once; evals the study missed are reported now
            batch = handle.poll(4 * 2**20)
            if not batch:
                break
            self._consume(batch)
        self.quiet = False
        if names.holder(self.run_dir) is not None:
            self.reporter.trial_line(self, f"following its engine, still training at step {handle.state.step} (pid {handle.engine_pid})")
            return None
        state = handle.state
        status = state.status(False)
        if self.stopped_by or status in ("completed", "failed"):
            return None  # it ended (a failure with a cause is not retried): step() sees that and concludes
        if checkpoints.pick(self.run_dir)[0] is not None:
            # A stop request the engine never read would stop the resumed engine at its first step.
            (self.run_dir / names.CONTROL).unlink(missing_ok=True)
            prepared = launch.prepare(launch.Request(resume=self.run_dir))
            self.handle = launch.start(prepared, handle, env=self.slot.env)
            self.reporter.trial_line(self, f"resumed from step {state.step} ({self.slot.label})")
            return None
        self.handle = None
        return self._start_fresh()

    def _set_aside(self) -> None:
        """An earlier attempt with nothing to resume from goes to interrupted/ (never deleted)."""
        folder = self.sweep_dir / INTERRUPTED
        folder.mkdir(exist_ok=True)
        k = 1
        while (folder / f"{self.name}-{k}").exists():
            k += 1
        shutil.move(str(self.run_dir), str(folder / f"{self.name}-{k}"))
        self.reporter.trial_line(self, f"its earlier attempt saved no checkpoint; kept in {folder / f'{self.name}-{k}'}, starting again", "dim")

    # ---- following -----------------------------------------------------------------------------------

    def step(self) -> bool:
        """Fold what the engine wrote since the last call, report evals, prune; False once the engine has ended."""
        handle = self.handle
        if handle is None:
            return False
        alive = handle.is_running()
        self._consume(handle.poll())
        if self.stopped_by and alive and not self._stop_sent:
            self._stop_sent = True
            handle.request_stop()
            self.reporter.trial_line(self, f"stopping: {self.stopped_by['why']}", "dark_orange")
        if alive:
            return True
        self._consume(handle.poll())  # the last lines land between the poll and the exit
        handle.wait(timeout=5)
        return False

    def _consume(self, batch: list[tuple[dict[str, Any], bool, list[Finding]]]) -> None:
        objective = self.spec.objective
        if any(changed for _, _, changed in batch):
            self._findings_changed = True
        for event, fresh, changed in batch:
            if fresh and event.get("type") == "eval":
                self._on_eval(event, objective)
            for finding in changed:
                if finding.updates == 0 and not self.quiet:
                    self.reporter.finding(self, finding)
                if finding.severity == "red" and finding.code in PRUNE_CODES and not self.stopped_by:
                    self._stop_for({"by": "finding", "code": finding.code, "step": finding.step,
                                    "why": f"{finding.code} at step {finding.step}: {finding.title}"})
        if self._findings_changed and not self.quiet:
            self._save_findings()

    def _save_findings(self) -> None:
        """findings.json, as `cockpit run` keeps it: doctor, the TUI and compare read it."""
        if self.handle is None:
            return
        self._findings_changed = False
        try:
            save_findings(self.run_dir, self.handle.diagnoser.findings)
        except OSError:
            pass  # a full disk: the study still gets the outcome

    def _on_eval(self, event: dict[str, Any], objective: str) -> None:
        value, step = as_number(event.get(objective)), event.get("step")
        if value is None or not math.isfinite(value) or not isinstance(step, int):
            return
        better = self.best is None or (value < self.best if self.spec.direction == "minimize" else value > self.best)
        if better:
            self.best, self.best_step = value, step
        if not self.quiet:
            self.reporter.trial_line(self, f"eval step {step}: {objective} {value:.4g}", "dim")
        if step in self.reported:
            return
        self.trial.report(value, step)
        self.reported.add(step)
        if not self.stopped_by and self.trial.should_prune():
            pruner = self.spec.pruner.get("name")
            self._stop_for({"by": "pruner", "pruner": pruner, "step": step, "value": value,
                            "why": f"{pruner} pruner at step {step} ({objective} {value:.4g})"})

    def _stop_for(self, why: dict[str, Any]) -> None:
        # Written to the study before the stop request: a sweep killed meanwhile still knows why it stopped.
        self.stopped_by = why
        self.trial.set_user_attr("stopped_by", why)

    def _prune_finding(self) -> Finding | None:
        if self.handle is None:
            return None
        return next((f for f in self.handle.diagnoser.findings if f.severity == "red" and f.code in PRUNE_CODES), None)

    def interrupt(self) -> None:
        """Ctrl-C: stop with a checkpoint, and leave the trial to be resumed."""
        self.interrupted = True
        if self.handle is not None and self.handle.is_running():
            self.handle.request_stop()

    def kill(self) -> None:
        self.interrupted = True
        if self.handle is not None:
            self.handle.kill()

    # ---- ending --------------------------------------------------------------------------------------

    def conclude(self) -> Outcome:
        """Tell the study how the trial ended (unless it was interrupted and can be resumed)."""
        handle = self.handle
        state = handle.state if handle is not None else None
        if state is not None and state.finished is None and state.processes:
            handle.diagnoser.finish()  # an engine that died without a word: the whole-run rules judge
        self._save_findings()
        status = state.status(False) if state is not None else "not started"
        if self.stopped_by is None and status == "stopped" and not self.interrupted:
            # Stopped from elsewhere (s in the TUI, `cockpit watch`): a person's decision, kept as one.
            self._stop_for({"by": "user", "step": state.step, "why": f"stopped by hand at step {state.step}"})
        if self.stopped_by is None and status != "completed":
            finding = self._prune_finding()
            if finding is not None:
                self._stop_for({"by": "finding", "code": finding.code, "step": finding.step,
                                "why": f"{finding.code} at step {finding.step}: {finding.title}"})
        if self.stopped_by is not None:
            study_mod.tell(self.study, self.trial, None, "pruned")
            return Outcome(self.number, "pruned", self.best, self.stopped_by["why"])
        if self.interrupted and status != "completed":
            return Outcome(self.number, "interrupted", None, f"stopped at step {state.step if state else '-'}")
        if status == "completed":
            if self.best is None:
                return self._fail(f"completed without logging {self.spec.objective}")
            study_mod.tell(self.study, self.trial, self.best, "complete")
            return Outcome(self.number, "complete", self.best, f"{self.spec.objective} {self.best:.4g} at step {self.best_step}")
        error = state.error if state is not None else None
        code = handle.returncode if handle is not None else None
        if error:
            why = f"{error.get('kind')}: {error.get('message')}"
        elif code is not None and code < 0:
            why = f"the engine was killed (signal {-code}) at step {state.step}"
        else:
            why = f"the engine ended ({status}) at step {state.step if state else '-'}; see {self.run_dir / names.LOG}"
        return self._fail(why)

    def _fail(self, why: str) -> Outcome:
        self.trial.set_user_attr("failure", why)
        study_mod.tell(self.study, self.trial, None, "failed")
        return Outcome(self.number, "failed", None, why)

    def release(self) -> None:
        self.claim.release()
