"""A sweep as given: the run every trial starts from, the params its trials vary, how they are picked
(sampler), judged (objective) and cut short (pruner). Built from `cockpit sweep`'s options and an
optional sweep file, checked whole before any trial starts (checks.py), and kept in the sweep dir (sweep.yaml)
so that `--resume` and `--join` run exactly the same trials.

A sweep file (YAML; paths in it are relative to it):

    preset: small-dataset            # or config: base.yaml; the run every trial starts from
    set:                             # what every trial shares
      data.path: my.jsonl
    params:                          # what the trials vary: a list of values, or a range
      train.learning_rate: log-uniform 1e-6..1e-4
      train.num_train_epochs: int 5..20
      lora.r: [8, 16, 32]
    trials: 20
    sampler: tpe                     # grid (lists and int ranges only), random, tpe
    objective: eval_loss             # the default; GRPO: eval_answer_accuracy when its data has answers
    pruner: median                   # median, hyperband, successive-halving, threshold, none; or {name: ..., options}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.sweep.space import (
    Param, SweepError, check_item, param_from_set, param_from_yaml, parse_values, set_text, yaml_text,
)
from engine.config import ConfigError, read_yaml
from engine.config.layers import PATH_KEYS
from engine.config.options import BY_NAME
from engine.config.validate import nearest

PRUNERS = ("median", "hyperband", "successive-halving", "threshold", "percentile", "none")
FILE_KEYS = ("name", "preset", "config", "set", "params", "trials", "max_trials", "sampler", "objective", "direction",
             "pruner", "seed", "gpus", "gpus_per_trial")
_PATH_KEYS = {f"{section}.{key}" for section, key in PATH_KEYS}
_PATH_OPTIONS = ("dataset", "eval_dataset", "model")


@dataclass
class SweepSpec:
    """Everything that decides which trials run; `gpus` and `gpus_per_trial` only decide where."""

    preset: str | None = None
    config_file: str | None = None
    values: dict[str, Any] = field(default_factory=dict)  # run options by name (engine/config/options.py)
    sets: list[str] = field(default_factory=list)  # section.key=value every trial shares
    params: list[Param] = field(default_factory=list)
    sampler: str | None = None
    trials: int | None = None
    max_trials: int | None = None
    objective: str | None = None
    direction: str | None = None
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "median"})
    seed: int = 0
    name: str | None = None
    gpus: str | None = None  # the GPUs the sweep trains on, as --gpus takes them: a count, all, or indices
    gpus_per_trial: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "preset": self.preset, "config": self.config_file, "values": dict(self.values),
            "set": list(self.sets), "params": {p.key: p.to_dict() for p in self.params}, "sampler": self.sampler,
            "trials": self.trials, "max_trials": self.max_trials, "objective": self.objective, "direction": self.direction,
            "pruner": dict(self.pruner), "seed": self.seed, "gpus": self.gpus, "gpus_per_trial": self.gpus_per_trial,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepSpec:
        return cls(
            preset=data.get("preset"), config_file=data.get("config"), values=dict(data.get("values") or {}),
            sets=list(data.get("set") or []), params=[Param.from_dict(k, v) for k, v in (data.get("params") or {}).items()],
            sampler=data.get("sampler"), trials=data.get("trials"), max_trials=data.get("max_trials"),
            objective=data.get("objective"), direction=data.get("direction"), pruner=dict(data.get("pruner") or {"name": "median"}),
            seed=int(data.get("seed") or 0), name=data.get("name"), gpus=data.get("gpus"),
            gpus_per_trial=int(data.get("gpus_per_trial") or 1),
        )

    def fingerprint(self) -> str:
        """Same fingerprint, same trials: how the same command again finds the sweep it continues."""
        data = self.to_dict()
        data.pop("gpus_per_trial")
        data.pop("gpus")
        if self.config_file:
            try:
                data["config_text"] = hashlib.sha256(Path(self.config_file).read_bytes()).hexdigest()
            except OSError:
                pass
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def trial_sets(self, sampled: dict[str, Any]) -> list[str]:
        """The --set texts of one trial: what every trial shares, then its own values (the last layer)."""
        return list(self.sets) + [set_text(key, value) for key, value in sampled.items()]

    def trial_values(self) -> dict[str, Any]:
        values = dict(self.values)
        if self.gpus_per_trial > 1:
            values["gpus"] = self.gpus_per_trial
        return values


# ---- building a spec from a file and the command line ------------------------------------------------


def _absolute(path: str, base: Path, only_existing: bool = False) -> str:
    """A local path made absolute against `base`, so a worker started elsewhere (--join) finds it.

    `only_existing`: a model, which may be a hub id (gpt2, owner/name) unless such a path exists here.
    """
    if not isinstance(path, str) or not path or path.startswith(("hf:", "builtin:")):
        return path
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return str(candidate)
    resolved = (base / candidate).resolve()
    return str(resolved) if resolved.exists() or not only_existing else path


def _absolute_set(text: str, base: Path) -> str:
    key, _, raw = text.partition("=")
    if key.strip() in _PATH_KEYS and raw.strip():
        return f"{key.strip()}={_absolute(raw.strip(), base)}"
    if key.strip() == "model.name_or_path" and raw.strip():
        return f"{key.strip()}={_absolute(raw.strip(), base, only_existing=True)}"
    return text


def _file_sets(value: Any, source: str, base: Path) -> list[str]:
    """A sweep file's `set:` (a mapping of section.key: value, or a list of section.key=value)."""
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [_absolute_set(v, base) for v in value]
    if not isinstance(value, dict):
        raise SweepError(f"{source}: set: must map section.key to a value, e.g. set: {{train.weight_decay: 0.001}}")
    out = []
    for key, item in value.items():
        check_item(str(key), item, f"{source}: set: {key}")
        if str(key) in _PATH_KEYS and isinstance(item, str):
            item = _absolute(item, base)
        elif str(key) == "model.name_or_path" and isinstance(item, str):
            item = _absolute(item, base, only_existing=True)
        out.append(set_text(str(key), item))
    return out


def _pruner(value: Any, source: str) -> dict[str, Any]:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise SweepError(f"{source}: pruner: give a name ({', '.join(PRUNERS)}) or {{name: threshold, upper: 2.0}}")
    if value["name"] not in PRUNERS:
        raise SweepError(f"{source}: unknown pruner '{value['name']}'{nearest(value['name'], list(PRUNERS))}")
    return dict(value)


def _count(value: Any, what: str, source: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SweepError(f"{source}: {what} must be a whole number of at least 1, got {value!r}")
    return value


def read_file(path: Path) -> tuple[SweepSpec, list[Param]]:
    """A sweep file: (the spec it gives, its params); one SweepError line for anything wrong in it."""
    source = str(path)
    try:
        data = read_yaml(path)
    except ConfigError as exc:
        raise SweepError(str(exc)) from None
    unknown = [k for k in data if k not in FILE_KEYS]
    if unknown:
        raise SweepError(f"{source}: unknown key '{unknown[0]}'{nearest(str(unknown[0]), list(FILE_KEYS))}")
    base = path.resolve().parent
    params_raw = data.get("params") or {}
    if not isinstance(params_raw, dict):
        raise SweepError(f"{source}: params: must map section.key to values or a range, e.g. train.learning_rate: [1e-5, 5e-6]")
    params = [_absolute_param(param_from_yaml(str(k), v, source), base) for k, v in params_raw.items()]
    spec = SweepSpec(
        preset=data.get("preset"),
        config_file=_absolute(str(data["config"]), base) if data.get("config") else None,
        sets=_file_sets(data.get("set"), source, base),
        sampler=data.get("sampler"),
        trials=_count(data.get("trials"), "trials", source),
        max_trials=_count(data.get("max_trials"), "max_trials", source),
        objective=data.get("objective"),
        direction=data.get("direction"),
        pruner=_pruner(data.get("pruner", "median"), source),
        seed=int(data.get("seed") or 0),
        name=data.get("name"),
        gpus=str(data["gpus"]) if data.get("gpus") is not None else None,
        gpus_per_trial=_count(data.get("gpus_per_trial"), "gpus_per_trial", source) or 1,
    )
    return spec, params


def from_command(file: Path | None, cli: dict[str, Any]) -> SweepSpec:
    """The spec of `cockpit sweep [FILE] [options]`: the file, then the command line over it.

    `cli`: preset, config_file, values (run options by name, as typed), sets (--set texts), and the
    sweep's own options (trials, max_trials, sampler, objective, direction, pruner, seed, name,
    gpus_per_trial), None where not given. A value list or range in a flag (--lr 1e-5,5e-6) or a
    --set is a param; a single value is shared by every trial.
    """
    spec, params = read_file(file) if file is not None else (SweepSpec(), [])
    cwd = Path.cwd()
    if cli.get("preset"):
        spec.preset = cli["preset"]
    if cli.get("config_file"):
        spec.config_file = _absolute(str(cli["config_file"]), cwd)
    by_key = {p.key: p for p in params}
    for name, value in (cli.get("values") or {}).items():
        option = BY_NAME[name]
        flag = option.flag
        if name == "gpus":  # which GPUs the sweep uses; each trial takes --gpus-per-trial of them
            spec.gpus = str(value)
            continue
        param = None
        if isinstance(value, str) and not option.is_switch and name not in ("launcher_args", "rewards", "reward", "tag"):
            param = parse_values(option.key, value, f"{flag} {value}")
        if param is not None:
            by_key[option.key] = param
            continue
        if name in _PATH_OPTIONS and isinstance(value, str):
            value = _absolute(value, cwd, only_existing=name == "model")
        elif name == "reward":
            value = [_absolute_reward(v, cwd) for v in value]
        spec.values[name] = value
    for text in cli.get("sets") or []:
        param = param_from_set(text)
        if param is not None:
            by_key[param.key] = param
        else:
            spec.sets.append(_absolute_set(text, cwd))
    spec.params = [_absolute_param(p, cwd) for p in by_key.values()]
    for key in ("sampler", "objective", "direction", "name"):
        if cli.get(key) is not None:
            setattr(spec, key, cli[key])
    for key in ("trials", "max_trials", "gpus_per_trial"):
        if cli.get(key) is not None:
            setattr(spec, key, _count(cli[key], "--" + key.replace("_", "-"), "cockpit sweep"))
    if cli.get("seed") is not None:
        spec.seed = int(cli["seed"])
    if cli.get("pruner") is not None:
        spec.pruner = _pruner(cli["pruner"], "--pruner")
    return spec


def _absolute_param(param: Param, base: Path) -> Param:
    """Swept data files (data.path=a.jsonl,b.jsonl) made absolute, as a shared one is."""
    if param.kind != "choices" or param.key not in _PATH_KEYS | {"model.name_or_path"}:
        return param
    only_existing = param.key == "model.name_or_path"
    choices = tuple(_absolute(v, base, only_existing) if isinstance(v, str) else v for v in param.choices)
    return Param(param.key, "choices", choices)


def _absolute_reward(spec: str, base: Path) -> str:
    path, sep, func = str(spec).rpartition(":")
    return f"{_absolute(path, base)}:{func}" if sep and path else spec


def describe(spec: SweepSpec) -> str:
    """One line: what the sweep varies and how."""
    params = "; ".join(f"{p.key}: {p.describe()}" for p in spec.params)
    return (f"{spec.trials} trials ({spec.sampler}) over {params}; objective {spec.objective} ({spec.direction}), "
            f"pruner {spec.pruner.get('name')}")


__all__ = ["SweepSpec", "SweepError", "from_command", "read_file", "describe", "yaml_text"]
