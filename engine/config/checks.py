"""Rules across fields that no single value can break (the schema bounds each value on its own)."""

from __future__ import annotations

import re
from typing import Any

from engine.errors import ConfigError

_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def reward_weights(value: Any, source: str = "grpo.rewards") -> list[tuple[str, float]]:
    """grpo.rewards as (name, weight) pairs, from a list of {name, weight} or a {name: weight} mapping."""
    if isinstance(value, dict):
        items = [{"name": k, "weight": v} for k, v in value.items()]
    elif isinstance(value, list):
        items = [{"name": v} if isinstance(v, str) else v for v in value]
    else:
        raise ConfigError(f"{source} must be a list such as [{{name: correctness, weight: 1.0}}] or a mapping {{correctness: 1.0}}, got {value!r}",
                          key="grpo.rewards")
    out: list[tuple[str, float]] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or set(item) - {"name", "weight"}:
            raise ConfigError(f"{source}: each entry needs a name and an optional weight, e.g. {{name: correctness, weight: 1.0}}; got {item!r}",
                              key="grpo.rewards")
        weight = item.get("weight", 1.0)
        if isinstance(weight, str) and _FLOAT.fullmatch(weight.strip()):
            weight = float(weight)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight != weight or abs(weight) == float("inf"):
            raise ConfigError(f"{source}: the weight of '{item['name']}' must be a finite number, got {weight!r}", key="grpo.rewards")
        if item["name"] in (n for n, _ in out):
            raise ConfigError(f"{source}: '{item['name']}' is listed twice; list each reward once", key="grpo.rewards")
        out.append((item["name"], float(weight)))
    return out


def check_grpo(cfg: dict[str, dict[str, Any]]) -> None:
    """The grpo section's cross-field rules (checked for every run type: a typo should not wait)."""
    g = cfg.get("grpo") or {}
    if not g:
        return
    weights = reward_weights(g["rewards"])
    for spec in g["reward_files"]:
        path, _, func = spec.rpartition(":")
        if not path or not func or not path.endswith(".py"):
            raise ConfigError(f"grpo.reward_files: '{spec}' must be path.py:function, e.g. --reward my_rewards.py:length_penalty",
                              key="grpo.reward_files")
    if cfg["run"]["type"] == "grpo" and not weights and not g["reward_files"]:
        raise ConfigError("grpo.rewards is empty: name at least one reward, e.g. --set 'grpo.rewards={correctness: 1.0}', or add --reward file.py:function",
                          key="grpo.rewards")


def check_train(cfg: dict[str, dict[str, Any]]) -> None:
    """The train section's cross-field rules."""
    t = cfg["train"]
    if t["num_train_epochs"] <= 0 and t["max_steps"] <= 0:
        raise ConfigError("train.num_train_epochs must be > 0 (or set train.max_steps)", key="train.num_train_epochs")
    if t["max_steps"] == 0:
        raise ConfigError("train.max_steps=0 trains nothing; give a number of steps, or -1 to run all epochs", key="train.max_steps")
    if t.get("longest_first") and t.get("packing"):
        raise ConfigError("train.longest_first does nothing with train.packing=true (every packed sequence is max_length long); drop one of them",
                          key="train.longest_first")
    if t.get("longest_first") and cfg["run"]["type"] == "grpo":
        raise ConfigError("train.longest_first is for SFT: a GRPO batch's length comes from the completions it generates; "
                          "drop --longest-first (grpo.max_completion_length bounds that length)", key="train.longest_first")


def check_run(cfg: dict[str, dict[str, Any]]) -> None:
    """The run section's cross-field rules."""
    run = cfg["run"]
    ids = run.get("gpu_ids")
    if ids and run["gpus"] != len(ids):
        raise ConfigError(f"run.gpu_ids names {len(ids)} GPU(s) and run.gpus is {run['gpus']}: one process trains on each GPU; "
                          f"set run.gpus={len(ids)} too (--gpus {','.join(map(str, ids))}{',' if len(ids) == 1 else ''} sets both)",
                          key="run.gpus", overrides={"run.gpus": len(ids)})


def check_consistency(cfg: dict[str, dict[str, Any]]) -> None:
    """Cross-field rules; raises ConfigError naming the key."""
    if not cfg["data"].get("path"):
        raise ConfigError("no dataset: pass --dataset PATH (or set data.path in the preset or --config file)", key="data.path",
                          problem="no dataset given")
    split = cfg["data"]["eval_split"]
    if split >= 1 and split != int(split):
        raise ConfigError(f"data.eval_split {split}: a share is below 1 (0.1) and a count is a whole number (50)", key="data.eval_split")
    from engine.model.builtin_shape import check_name

    problem = check_name(cfg["model"]["name_or_path"])
    if problem:
        raise ConfigError(problem, key="model.name_or_path")
    check_run(cfg)
    check_train(cfg)
    check_grpo(cfg)
