"""The one way a run starts: `cockpit run`, the TUI's new-run form and `cockpit sweep` all come here.

request (options by the names of the one options table, presets, config files, --set)
  -> config resolved and validated (engine.config)
  -> what the engine would refuse only after the model loads: trackers, `trl:` keys, precision
  -> the data read and linted once (a blocking finding refuses, with its code and fix)
  -> launch checks (the distributed strategy, GPUs against the visible ones)
  -> a resumed run: the run dir is a run, no engine holds it, its config still loads
  -> the run dir made atomically, config.yaml (+ .secrets.yaml) and lint.json written
  -> the engine started under a RunHandle.

Every refusal is an EngineError (or its ConfigError/DataError), a RunDirError or a RunDirBusy:
one line naming the key, file or run dir and the fix. Nothing here imports torch or Textual.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.supervisor import MULTI_NODE_OPTIONS, RunDirError, RunHandle, new_run_dir, write_config
from engine import config as config_mod
from engine import run_dir as names
from engine.config.options import BY_NAME
from engine.errors import EngineError


@dataclass
class Request:
    """What a user asked for: the config's layers, the run dir, and what to resume."""

    preset: str | None = None
    config_file: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)  # option name (engine/config/options.py) -> value
    sets: list[str] = field(default_factory=list)  # --set section.key=value texts
    output_dir: Path | None = None
    resume: Path | None = None  # continue this run dir with its saved config
    resume_from: Path | None = None  # a new run that continues from another run's checkpoint
    partial_resume: bool = False  # resume from a checkpoint without optimizer/scheduler/RNG state; they start fresh


@dataclass
class Prepared:
    """A run that passed every check and may start: its config, and what to tell the user."""

    cfg: dict[str, Any]
    request: Request
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reports: list[Any] = field(default_factory=list)  # the data's LintReports, handed to the engine
    run_dir: Path | None = None  # set for a resume; made by `start` for a new run


def option_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """Options by name -> config keys, as the options table maps them (switches set their value)."""
    dotted: dict[str, Any] = {}
    for name, value in values.items():
        option = BY_NAME.get(name)
        if option is None or value is None or value == [] or value == "" or (option.is_switch and value is False):
            continue
        if option.is_switch:
            dotted[option.key] = option.value
        elif name == "reward":  # path.py:function, the path relative to where the command runs
            dotted[option.key] = [config_mod.resolve_reward_file(spec, Path.cwd()) for spec in value]
        elif name == "launcher_args":
            dotted[option.key] = shlex.split(value) if isinstance(value, str) else list(value)
        elif name == "gpus":
            dotted.update(gpu_choice(str(value)))
        elif name == "rewards" and isinstance(value, str):
            dotted[option.key] = config_mod.parse_override(f"{option.key}={value}", option.flag)[2]
        else:
            dotted[option.key] = str(value) if isinstance(value, Path) else value
    return dotted


def gpu_choice(text: str) -> dict[str, Any]:
    """--gpus as config keys: a count, every visible GPU (`all`; one process on the CPU where there is
    none), or GPUs by index (run.gpu_ids). Raises ConfigError."""
    from engine.memory.gpu import parse_gpus, visible_gpus

    try:
        count, ids = parse_gpus(text)
    except ValueError as exc:
        raise config_mod.ConfigError(str(exc), key="run.gpus") from None
    if count is None:
        count = max(1, len(visible_gpus()))
    return {"run.gpus": count, **({"run.gpu_ids": ids} if ids else {})}


def build_config(preset: str | None, config_file: Path | None, values: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """Resolve the layers into one config; raises ConfigError."""
    return config_mod.resolve(preset=preset, config_file=config_file, flags=option_overrides(values), sets=sets)


def check_data(cfg: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """Read and lint the data the way the engine will, before any model loads.

    Returns the loader's warnings and the lint reports (the engine reads them from lint.json rather
    than lint again). Raises DataError for data that would fail or train nothing: the first
    blocking lint finding, with its code and overrides.
    """
    from engine.data import lint  # light: the loader and lint (without a tokenizer) are standard library only
    from engine.train.preflight import blocking_error, data_files

    if cfg["run"]["type"] == "grpo":  # prompts + ground truth, e.g. through grpo.answer_field
        from engine.data.prompts import load

        return list(load(cfg).warnings), []
    from engine.train.sft import load_data

    reports = [lint.lint_file(path, **{**lint.options_from_config(cfg), "max_length": None}) for path in data_files(cfg)]
    for report in reports:
        if report.fatal:
            raise EngineError("data", report.fatal, code="unreadable", key="data.path")
        more = len(report.blocking) - 1
        error = blocking_error(report.blocking, (f" (and {more} more problems)" if more else "")
                               + f"; `cockpit lint {report.path}` lists them all")
        if error is not None:
            raise error
    return list(load_data(cfg).warnings), reports


def check_trackers(cfg: dict[str, Any]) -> None:
    """train.report_to: names transformers knows, their packages installed (ConfigError, one line)."""
    from engine.config import trackers

    trackers.check(cfg["train"]["report_to"])


def check_trl_keys(cfg: dict[str, Any]) -> None:
    """`trl:` keys are fields of the TRL config class they go to (EngineError naming the nearest one).

    trl is imported only when there are such keys: a few seconds, instead of after the model has loaded.
    """
    if not cfg.get("trl"):
        return
    from engine.train import trl_args

    trl_args.check_passthrough(trl_args.config_class(cfg["run"]["type"]), cfg["trl"])


def check_precision(cfg: dict[str, Any]) -> None:
    """--bf16/--fp16 on GPUs that have them (EngineError in the cockpit's words, before TRL's)."""
    from engine.memory.gpu import chosen, precision_problem, visible_gpus

    problem = precision_problem(cfg["model"]["dtype"], chosen(visible_gpus(), cfg["run"]))
    if problem:
        raise EngineError("config", problem, code="precision", key="model.dtype", overrides={"model.dtype": "auto"})


def check_launch(cfg: dict[str, Any]) -> list[str]:
    """Refuse a multi-process launch that cannot start (EngineError kind config); notes to print otherwise."""
    from engine.train import distributed

    from engine.memory.gpu import check_ids, visible_gpus

    run = cfg["run"]
    gpus, strategy = run["gpus"], run["distributed"]
    seen = visible_gpus()
    problem = check_ids(run["gpu_ids"], seen)
    if problem:
        raise EngineError("config", problem, code="gpus_not_visible", key="run.gpu_ids")
    if gpus <= 1 and not run["launcher_args"]:
        return []
    distributed.check_strategy(cfg)

    multi_node = any(str(a).split("=")[0] in MULTI_NODE_OPTIONS for a in run["launcher_args"])
    visible = len(seen)
    here = f"{gpus} process{'es' if gpus > 1 else ''} on this machine"
    if multi_node:
        here += f", joined to the others by torchrun ({' '.join(run['launcher_args'])})"
    if visible == 0:
        return [f"no CUDA GPU here: {here}, on the CPU, talking over gloo"]
    if gpus > visible:  # per machine, also when several machines join
        raise EngineError("config", f"--gpus {gpus} but {visible} GPU(s) are visible; use --gpus {visible} (or CUDA_VISIBLE_DEVICES)",
                          code="gpus_not_visible", key="run.gpus", overrides={"run.gpus": visible})
    return [f"{here} under torchrun, {strategy}"]


def checkpoint_bytes(cfg: dict[str, Any]) -> tuple[int, int] | None:
    """About what one checkpoint of this run writes, and what one model dir (best/, final/, epoch_N/) holds:
    the trained weights with their optimizer states, and the trained weights alone."""
    from engine.memory import estimate

    est = estimate.estimate(cfg, search_fix=False)
    parts = est.components or {}
    if not parts:
        return None
    trained = parts.get("weights", 0) if cfg["model"]["finetune"] == "full" else parts.get("adapter", 0)
    return int(trained + parts.get("optimizer", 0) + 2**20), int(trained + 2**20)


def check_disk(cfg: dict[str, Any], where: Path) -> None:
    """Refuse a run whose disk cannot hold its checkpoints, best/, final/ and epoch_N/ (RunDirError, one line)."""
    import math

    sizes = checkpoint_bytes(cfg)
    if sizes is None:
        return
    size, model = sizes
    t = cfg["train"]
    keep = t["save_total_limit"] or 10
    epochs = math.ceil(t["num_train_epochs"]) if t["epoch_models"] else 0
    need = size * (keep + 1) + model * (2 + epochs)  # the checkpoints kept, the one being written, best/, final/, epoch_N/
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        also = f", {epochs} epoch models" if epochs else ""
        raise RunDirError(f"{probe}: {free / 2**20:.0f} MiB free, and this run writes about {need / 2**20:.0f} MiB "
                          f"({keep} checkpoints of {size / 2**20:.0f} MiB, best/ and final/{also}); free space, choose another "
                          "--output-dir, or lower train.save_total_limit")


def check_resume(run_dir: Path) -> dict[str, Any]:
    """The saved config of a run dir that may be continued; raises RunDirError or RunDirBusy."""
    if not (run_dir / names.CONFIG).is_file():
        raise RunDirError(f"{run_dir} is not a run dir (no {names.CONFIG}); give the dir `cockpit run` printed")
    names.check_free(run_dir)
    return config_mod.load_run_config(run_dir)


def prepare(request: Request) -> Prepared:
    """Every check a run must pass before anything is written."""
    if request.resume is not None:
        cfg = check_resume(Path(request.resume))
        prepared = Prepared(cfg, request, run_dir=Path(request.resume))
    else:
        cfg = build_config(request.preset, request.config_file, request.values, request.sets)
        prepared = Prepared(cfg, request)
    check_trackers(cfg)
    check_trl_keys(cfg)
    check_precision(cfg)
    prepared.warnings, prepared.reports = check_data(cfg)
    prepared.notes = check_launch(cfg)
    check_disk(cfg, prepared.run_dir or Path(request.output_dir or cfg["run"]["runs_dir"]))
    return prepared


def start(prepared: Prepared, handle: RunHandle | None = None, env: dict[str, str] | None = None) -> RunHandle:
    """Make the run dir (a new run), hand the config and lint over, and start the engine.

    `handle`: a handle that folded the resumed run's events already. `env`: added to the engine's
    environment (a sweep gives each trial its GPUs through CUDA_VISIBLE_DEVICES). A new run whose
    engine cannot be started leaves no run dir behind.
    """
    from engine.train.preflight import write_lint

    request = prepared.request
    resume = request.resume is not None or request.resume_from is not None
    created = prepared.run_dir is None
    if created:
        try:
            prepared.run_dir = new_run_dir(prepared.cfg, request.output_dir)
        except OSError as exc:  # read-only, no permission, full
            raise RunDirError(f"{request.output_dir or prepared.cfg['run']['runs_dir']}: cannot make the run dir "
                              f"({exc.strerror}); choose another --output-dir") from None
    run_dir = prepared.run_dir
    try:
        if created:
            write_config(run_dir, prepared.cfg)
            if request.resume_from is not None:
                # The engine resumes from RUN_DIR/checkpoints: the source run's checkpoint is copied there.
                shutil.copytree(request.resume_from, run_dir / names.CHECKPOINTS / Path(request.resume_from).name)
        else:
            names.check_free(run_dir)  # a second cockpit may have resumed it since prepare()
        write_lint(run_dir, prepared.reports)
        return RunHandle.start(run_dir, resume=resume, env=env, handle=handle, partial=request.partial_resume)
    except OSError as exc:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise RunDirError(f"{run_dir}: cannot write the run dir ({exc.strerror}); choose another --output-dir") from None
    except BaseException:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def discard_if_refused(state: Any, run_dir: Path, exit_code: int | None = None) -> bool:
    """Remove the dir of a run the engine refused as bad input (a config or data error, a model it
    cannot download; or its exit code 2) before it saved anything: nothing was trained, and the fix
    is the user's, as `cockpit run` leaves no half-made run behind. True when removed. `state`: the
    run's RunState."""
    from engine.errors import BAD_INPUT_KINDS

    error = state.error
    refused = (error is not None and error.get("kind") in BAD_INPUT_KINDS) or exit_code == 2
    if not refused or state.checkpoints or names.checkpoint_dirs(run_dir):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


def launch(request: Request) -> tuple[RunHandle, Prepared]:
    """prepare + start, for callers with nothing to show in between."""
    prepared = prepare(request)
    return start(prepared), prepared
