"""A sweep checked whole before any trial starts: every trial's config resolves, the data is what a
run accepts, the grid is a grid of a sane size, the objective is an eval metric every trial logs
(with a direction), the pruner is one Optuna has. `resolve` also fills in what was left to defaults
(sampler, trials, objective, direction), so that sweep.yaml records the sweep exactly.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from cockpit.sweep.space import Param, SweepError, grid_size
from cockpit.sweep.spec import SweepSpec
from engine.config.options import BY_NAME
from engine.config.validate import nearest
from engine.errors import EngineError

SAMPLERS = ("grid", "random", "tpe")
MAX_GRID = 50  # a bigger grid is more GPU time than anyone means by accident: --max-trials says it is meant
DEFAULT_SEARCH_TRIALS = 20
# Eval metrics each kind of run logs (the GRPO ones per reward function: eval_rewards/<name>/mean).
SFT_METRICS = ("eval_loss", "eval_mean_token_accuracy", "eval_entropy")
GRPO_METRICS = ("eval_answer_accuracy", "eval_format_accuracy", "eval_reward", "eval_reward_std", "eval_loss", "eval_kl",
                "eval_entropy", "eval_completions/mean_length", "eval_completions/clipped_ratio", "eval_frac_reward_zero_std")



def _grid_points(params: list[Param], limit: int) -> list[dict[str, Any]]:
    """The first `limit` points of the grid (each a key -> value mapping), in written order."""
    grids = [p.grid() or [] for p in params]
    return [dict(zip([p.key for p in params], combo)) for combo in itertools.islice(itertools.product(*grids), limit)]


def _corners(params: list[Param]) -> list[dict[str, Any]]:
    """Configs at the lows and at the highs of every range (with the first and last of each list)."""
    def pick(p: Param, end: int) -> Any:
        if p.kind == "choices":
            return p.choices[end]
        return p.low if end == 0 else p.high
    return [{p.key: pick(p, end) for p in params} for end in (0, -1)]


def direction_of(metric: str) -> str | None:
    """minimize for losses, maximize for accuracies and rewards; None when the name does not say."""
    if "loss" in metric or metric.endswith(("kl", "clipped_ratio", "zero_std")):
        return "minimize"
    if ("accuracy" in metric or "reward" in metric) and "std" not in metric:
        return "maximize"
    return None


def known_metrics(cfg: dict[str, Any]) -> list[str]:
    if cfg["run"]["type"] == "grpo":
        from engine.config import reward_weights

        names = [n for n, _ in reward_weights(cfg["grpo"]["rewards"])]
        names += [str(f).rsplit(":", 1)[-1] for f in cfg["grpo"]["reward_files"]]
        return list(GRPO_METRICS) + [f"eval_rewards/{n}/mean" for n in names]
    return list(SFT_METRICS)


def _grpo_has_answers(cfg: dict[str, Any]) -> bool:
    """Whether every eval prompt has a ground truth (only then does GRPO log eval_answer_accuracy)."""
    from engine.data import prompts

    key = json.dumps({s: cfg[s] for s in ("data", "grpo", "train")}, sort_keys=True, default=str)
    if key not in _ANSWERS:
        evals = prompts.load(cfg).eval
        _ANSWERS[key] = bool(evals) and all(row.get("answer") for row in evals)
    return _ANSWERS[key]


_ANSWERS: dict[str, bool] = {}  # the prompts are read once per data config, not once per check


def resolve(spec: SweepSpec, visible_gpus: int) -> dict[str, Any]:
    """Check the whole sweep and fill in what was left to defaults; returns the base run's config.

    Raises SweepError (one line) for: nothing to sweep, a key both swept and shared, a grid over
    ranges or bigger than MAX_GRID without --max-trials, a trial config that does not resolve, data
    a run would refuse, an objective no trial would log, a pruner or sampler Optuna does not have,
    more GPUs per trial than are visible.
    """
    from cockpit import launch

    if not spec.params:
        raise SweepError("nothing to sweep: give a key several values (--set train.learning_rate=1e-5,5e-6), a range "
                         "(--set 'train.learning_rate=log-uniform 1e-6..1e-4') or a sweep file with params:")
    if spec.preset is None and spec.config_file is None and not spec.values.get("dataset"):
        raise SweepError("nothing to train: give --preset NAME (see `cockpit presets list`), --config FILE or --dataset PATH")
    shared = {t.split("=", 1)[0].strip() for t in spec.sets}
    shared |= {BY_NAME[n].key for n in spec.values}
    for param in spec.params:
        if param.key in shared:
            raise SweepError(f"{param.key} is both swept ({param.describe()}) and given one value; drop one of them")
    if any(p.key in ("run.gpus", "run.gpu_ids") for p in spec.params):
        raise SweepError("the GPUs cannot be swept: --gpus chooses the sweep's GPUs and --gpus-per-trial K how many "
                         "each trial takes")
    _check_gpus(spec, visible_gpus)
    if spec.sampler is None:
        spec.sampler = "grid" if all(p.grid() is not None for p in spec.params) else "tpe"
    if spec.sampler not in SAMPLERS:
        raise SweepError(f"unknown sampler '{spec.sampler}'{nearest(spec.sampler, list(SAMPLERS))}")
    cap = spec.trials or spec.max_trials
    if spec.sampler == "grid":
        ranged = [p for p in spec.params if p.grid() is None]
        if ranged:
            p = ranged[0]
            raise SweepError(f"{p.key} is a range ({p.describe()}); a grid needs values: list them "
                             f"({p.key}=a,b,c) or use --sampler random or --sampler tpe with --trials N")
        size = grid_size(spec.params) or 0
        if cap is None and size > MAX_GRID:
            shape = " x ".join(str(len(p.grid() or [])) for p in spec.params)
            raise SweepError(f"the grid has {size} trials ({shape}), more than {MAX_GRID}; give --max-trials {size} to run "
                             f"them all (or --max-trials N for N of them), or fewer values")
        spec.trials = min(size, cap) if cap else size
        points = _grid_points(spec.params, spec.trials)
    else:
        spec.trials = cap or DEFAULT_SEARCH_TRIALS
        points = _corners(spec.params)
    try:
        base = launch.build_config(spec.preset, Path(spec.config_file) if spec.config_file else None, spec.trial_values(), spec.sets)
        configs = [launch.build_config(spec.preset, Path(spec.config_file) if spec.config_file else None,
                                       spec.trial_values(), spec.trial_sets(point)) for point in points]
    except EngineError as exc:
        raise SweepError(str(exc)) from None
    _check_objective(spec, base, configs)
    try:
        launch.check_data(base)
    except EngineError as exc:
        raise SweepError(str(exc)) from None
    if spec.objective == "eval_answer_accuracy" and not _grpo_has_answers(base):
        raise SweepError("objective eval_answer_accuracy: no eval prompt has a ground truth, so no trial would log it; "
                         "use --objective eval_reward, or give the answers (grpo.answer_field)")
    from cockpit.sweep.study import check_pruner

    check_pruner(spec.pruner)
    return base


def _check_gpus(spec: SweepSpec, visible: int) -> None:
    """--gpus names GPUs this machine has, and --gpus-per-trial fits in them at least once."""
    from cockpit.sweep.devices import pool_size

    if spec.gpus is not None and visible == 0:
        raise SweepError(f"--gpus {spec.gpus}: no CUDA GPU is visible here; on a CPU the trials run one at a time "
                         "(--gpus-per-trial K trains each with K processes)")
    try:
        pool = pool_size(spec.gpus, visible) if visible else 0
    except ValueError as exc:
        raise SweepError(str(exc)) from None
    if pool and spec.gpus_per_trial > pool:
        raise SweepError(f"--gpus-per-trial {spec.gpus_per_trial} but the sweep has {pool} GPU(s); use --gpus-per-trial {pool}, "
                         "or give the sweep more with --gpus")


def _check_objective(spec: SweepSpec, base: dict[str, Any], configs: list[dict[str, Any]]) -> None:
    """The objective is an eval metric every trial logs, with a direction."""
    grpo = base["run"]["type"] == "grpo"
    if spec.objective is None:
        spec.objective = "eval_answer_accuracy" if grpo and _grpo_has_answers(base) else ("eval_reward" if grpo else "eval_loss")
    known = known_metrics(base)
    if spec.objective not in known and not (grpo and spec.objective.startswith("eval_rewards/")):
        raise SweepError(f"objective '{spec.objective}': no trial logs it{nearest(spec.objective, known)} "
                         f"({base['run']['type'].upper()} runs log {', '.join(known[:6])}, ...)")
    for cfg in configs:
        if cfg["train"]["eval_strategy"] == "no":
            raise SweepError(f"objective {spec.objective}: the trials never evaluate (train.eval_strategy=no), so none would "
                             "log it; set train.eval_strategy=steps (and --eval-steps N)")
    if spec.direction is not None and spec.direction not in ("minimize", "maximize"):
        raise SweepError(f"--direction takes minimize or maximize, got {spec.direction!r}")
    if spec.direction is None:
        spec.direction = direction_of(spec.objective)
    if spec.direction is None:
        raise SweepError(f"objective {spec.objective}: say whether lower or higher is better: --direction minimize or "
                         "--direction maximize")
