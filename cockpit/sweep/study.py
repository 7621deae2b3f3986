"""The sweep's Optuna study: a journal file in the sweep dir, Optuna's samplers and pruners.

JournalStorage with a JournalFileBackend: no database server, an append-only log that survives
kill -9 (a half-written last line is skipped on read), and that workers on several machines share
through a shared filesystem (`cockpit sweep --join`). Optuna is imported here only, inside the
functions, so `cockpit --help` and the home screen never pay for it.

A trial's record in the study: its params (the swept config values), its state (RUNNING while a
worker trains it, or after an interrupt), its eval reports (intermediate values by step), and user
attributes: `run_dir` (its dir's name) and, when it stopped early, `stopped_by` (why).
"""

from __future__ import annotations

import inspect
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.sweep.space import Param, SweepError

JOURNAL = "study.journal"
STUDY_NAME = "sweep"
PRUNER_CLASSES = {
    "median": "MedianPruner",
    "hyperband": "HyperbandPruner",
    "successive-halving": "SuccessiveHalvingPruner",
    "threshold": "ThresholdPruner",
    "percentile": "PercentilePruner",
    "none": "NopPruner",
}


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its INFO lines would interleave with the sweep's own
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def storage(sweep_dir: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    _optuna()
    return JournalStorage(JournalFileBackend(str(Path(sweep_dir) / JOURNAL)))


def make_pruner(spec_pruner: dict[str, Any]):
    """Optuna's pruner by name, with the options given (e.g. {name: threshold, upper: 2.0})."""
    optuna = _optuna()
    options = {k: v for k, v in spec_pruner.items() if k != "name"}
    name = spec_pruner.get("name", "median")
    cls = getattr(optuna.pruners, PRUNER_CLASSES[name])
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        params = ", ".join(p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs"))
        raise SweepError(f"pruner {name}: {exc} (its options: {params or 'none'})") from None


def check_pruner(spec_pruner: dict[str, Any]) -> None:
    make_pruner(spec_pruner)


def make_sampler(sampler: str, params: list[Param], seed: int):
    """Optuna's GridSampler, RandomSampler or TPESampler.

    The grid's seed must be the sweep's on every worker: it shuffles the grid, and workers name
    grid points by their index in it. Random and TPE get a seed per worker so that joined or
    resumed workers do not propose the same points again.
    """
    optuna = _optuna()
    if sampler == "grid":
        return optuna.samplers.GridSampler({p.key: p.optuna_choices() for p in params}, seed=seed)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar: trials running side by side count as their pessimistic guess, so parallel ones spread out.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def open_study(sweep_dir: Path, spec: Any, worker_seed: int | None = None):
    """The sweep's study (created on the first call), with the spec's sampler, pruner and direction."""
    optuna = _optuna()
    store = storage(sweep_dir)
    seed = spec.seed
    if spec.sampler != "grid":
        try:  # trials already in the study move a resumed worker's seed on
            seed += len(optuna.load_study(study_name=STUDY_NAME, storage=store).trials)
        except KeyError:
            pass
        seed += worker_seed or 0
    return optuna.create_study(
        storage=store, study_name=STUDY_NAME, sampler=make_sampler(spec.sampler, spec.params, seed),
        pruner=make_pruner(spec.pruner), direction=spec.direction, load_if_exists=True,
    )


def load(sweep_dir: Path):
    """The study to read (compare, the TUI): no sampler or pruner needed; None when there is no journal."""
    if not (Path(sweep_dir) / JOURNAL).is_file():
        return None
    optuna = _optuna()
    try:
        return optuna.load_study(study_name=STUDY_NAME, storage=storage(sweep_dir))
    except KeyError:  # the journal holds no study yet (a sweep killed as it began)
        return None


def suggest(trial: Any, params: list[Param]) -> dict[str, Any]:
    """The trial's config values, sampled (or, for a trial that ran before, read back) by Optuna."""
    out: dict[str, Any] = {}
    for p in params:
        if p.kind == "choices":
            out[p.key] = p.decode(trial.suggest_categorical(p.key, p.optuna_choices()))
        elif p.kind in ("int", "log-int"):
            out[p.key] = trial.suggest_int(p.key, int(p.low), int(p.high), step=int(p.step or 1), log=p.kind == "log-int")
        else:
            out[p.key] = trial.suggest_float(p.key, p.low, p.high, step=p.step, log=p.kind == "log-uniform")
    return out


def trial_object(study: Any, number: int):
    """A live Trial handle on an existing trial (an interrupted one being resumed): report and prune go through it."""
    optuna = _optuna()
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    return optuna.trial.Trial(study, frozen._trial_id)


def tell(study: Any, trial: Any, value: float | None, state: str) -> None:
    """Record how a trial ended: complete (with its value), pruned, or failed.

    GridSampler calls Study.stop() after the last grid point, which raises outside study.optimize
    (optuna#5141, documented for ask-and-tell); the state is stored before that, so the error only
    says the grid is done.
    """
    optuna = _optuna()
    states = {"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED,
              "failed": optuna.trial.TrialState.FAIL}
    try:
        study.tell(trial, value if state == "complete" else None, state=states[state], skip_if_finished=True)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


@dataclass
class TrialRecord:
    """One trial as the study holds it."""

    number: int
    state: str  # running, complete, pruned, failed, waiting
    value: float | None
    params: dict[str, Any]
    run_dir: str
    stopped_by: dict[str, Any] | None = None
    failure: str | None = None
    reports: dict[int, float] = field(default_factory=dict)


def records(study: Any) -> list[TrialRecord]:
    """Every trial of the study, by number."""
    out = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        out.append(TrialRecord(
            number=t.number,
            state={"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
                   "WAITING": "waiting"}.get(t.state.name, t.state.name.lower()),
            value=t.value if t.state.name == "COMPLETE" else None,
            params=dict(t.params),
            run_dir=attrs.get("run_dir") or trial_dir_name(t.number),
            stopped_by=attrs.get("stopped_by"),
            failure=attrs.get("failure"),
            reports=dict(t.intermediate_values),
        ))
    return sorted(out, key=lambda r: r.number)


def best_number(study: Any) -> int | None:
    """The number of the best complete trial (Optuna's best_trial), None before one completes."""
    try:
        return study.best_trial.number
    except ValueError:
        return None


def trial_dir_name(number: int) -> str:
    return f"trial-{number:03d}"


def worker_seed() -> int:
    """A seed offset for a joining worker, so that it samples other points than the first one."""
    return os.getpid() % 10_000
