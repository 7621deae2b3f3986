"""A sweep worker: fills its trial slots (one per GPU, or one on a CPU) with trials until the sweep
has its number of trials, follows them, and tells the study how each ended.

Interrupted trials come first: a trial the study still holds as RUNNING that no live worker claims
was cut short (Ctrl-C, kill -9, a machine that went away), and is resumed, attached to or
concluded before any new trial is asked for. Several workers, on one machine or several sharing
the sweep dir, divide the trials among them through their claims.

Ctrl-C (SIGINT), SIGTERM and SIGHUP stop the trials in flight with a checkpoint and start no new
one; they stay RUNNING in the study for the next `cockpit sweep --resume`. A second Ctrl-C kills.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from cockpit.sweep import claims
from cockpit.sweep import study as study_mod
from cockpit.sweep.devices import Slot
from cockpit.sweep.spec import SweepSpec
from cockpit.sweep.trial import Outcome, Reporter, TrialRun

POLL_S = 0.25
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class Worker:
    """One process's share of a sweep."""

    def __init__(self, sweep_dir: Path, spec: SweepSpec, slots: list[Slot], reporter: Reporter, join: bool = False):
        self.sweep_dir, self.spec, self.slots, self.reporter = Path(sweep_dir), spec, slots, reporter
        self.study = study_mod.open_study(self.sweep_dir, spec, study_mod.worker_seed() if join else None)
        self.running: dict[int, TrialRun] = {}  # slot index -> its trial
        self.outcomes: list[Outcome] = []
        self.stopping = False  # a stop was asked for: no new trials
        self.killed = False
        self._exhausted = False

    # ---- which trial next ------------------------------------------------------------------------------

    def next_trial(self, slot: Slot) -> TrialRun | None:
        """An interrupted trial no worker claims, else a new one while the sweep has fewer than it asks for."""
        mine = {run.number for run in self.running.values()}
        with claims.ask_lock(self.sweep_dir):
            trials = sorted(self.study.get_trials(deepcopy=False), key=lambda t: t.number)
            for t in trials:
                if t.state.name != "RUNNING" or t.number in mine:
                    continue
                claim = claims.trial_claim(self.sweep_dir, t.number)
                if claim.try_acquire():
                    trial = study_mod.trial_object(self.study, t.number)
                    return TrialRun(self.sweep_dir, self.spec, self.study, trial, claim, slot, self.reporter, resumed=True)
            if sum(1 for t in trials if t.state.name != "WAITING") >= (self.spec.trials or 0):
                return None
            trial = self.study.ask()
            claim = claims.trial_claim(self.sweep_dir, trial.number)
            claim.try_acquire()  # a number just handed out: nobody else can hold it
            return TrialRun(self.sweep_dir, self.spec, self.study, trial, claim, slot, self.reporter, resumed=False)

    # ---- the loop ------------------------------------------------------------------------------------

    def run(self) -> list[Outcome]:
        """Run trials until there are none left for this worker (or a stop); the outcomes of this worker's turns."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        registration = claims.register_worker(self.sweep_dir)  # how `--resume` knows this sweep is being worked on
        try:
            while True:
                self._fill()
                if not self.running:
                    break
                for index, run in list(self.running.items()):
                    if not run.step():
                        self._end(index, run, run.conclude())
                tick = getattr(self.reporter, "tick", None)
                if tick is not None:  # progress bars, where the reporter draws them
                    tick(list(self.running.values()))
                time.sleep(POLL_S)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for run in self.running.values():  # only after an error here: their engines go on, resumable
                run.release()
            registration.release()
        return self.outcomes

    def _fill(self) -> None:
        for slot in self.slots:
            while slot.index not in self.running and not self.stopping and not self._exhausted:
                run = self.next_trial(slot)
                if run is None:
                    self._exhausted = True
                    break
                outcome = run.start()
                if outcome is not None:  # refused before training, or had ended already
                    self._end(slot.index, run, outcome)
                    continue
                self.running[slot.index] = run
                if self.stopping:  # the stop came while it was starting
                    run.interrupt()

    def _end(self, index: int, run: TrialRun, outcome: Outcome) -> None:
        self.running.pop(index, None)
        run.release()
        self.outcomes.append(outcome)
        style = {"complete": "green", "pruned": "dark_orange", "failed": "red", "interrupted": "dark_orange"}.get(outcome.state, "")
        text = f"{outcome.state}: {outcome.why}" if outcome.why else outcome.state
        if outcome.state == "complete" and study_mod.best_number(self.study) == run.number:
            text += "  (best so far)"
        self.reporter.trial_line(run, text, style)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stopping and signum != getattr(signal, "SIGHUP", None):
            self.killed = True
            for run in self.running.values():
                run.kill()
            return
        self.stopping = True
        for run in self.running.values():
            run.interrupt()
        from cockpit.headless import note

        what = "the trial in flight saves a checkpoint" if self.running else "no trial is in flight"
        note(f"{signal.Signals(signum).name}: stopping the sweep; {what} first (Ctrl-C again to kill)")


def finished(sweep_dir: Path, spec: SweepSpec) -> bool:
    """Whether a sweep has all its trials, none of them running or interrupted."""
    study = study_mod.load(sweep_dir)
    if study is None:
        return False
    states = [r.state for r in study_mod.records(study)]
    return "running" not in states and len(states) >= (spec.trials or 0)
