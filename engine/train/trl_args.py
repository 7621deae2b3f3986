"""TRL config objects from our schema: the training arguments every run type shares, and the `trl:`
pass-through keys checked against the TRL class they go to (so every TRL option is reachable)."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

from engine import run_dir as names
from engine.errors import EngineError


def shared_kwargs(cfg: dict[str, Any], run_dir: Path, precision: str, has_eval: bool) -> dict[str, Any]:
    """TrainingArguments fields that SFT and GRPO set the same way from the `train` section."""
    from engine.config import trackers
    from engine.train import distributed

    trackers.set_log_dirs(run_dir)
    t = cfg["train"]
    return {
        "output_dir": str(run_dir / names.CHECKPOINTS),
        "num_train_epochs": t["num_train_epochs"],
        "max_steps": t["max_steps"],
        "per_device_train_batch_size": t["per_device_train_batch_size"],
        "per_device_eval_batch_size": t["per_device_eval_batch_size"] or t["per_device_train_batch_size"],
        "gradient_accumulation_steps": t["gradient_accumulation_steps"],
        "learning_rate": t["learning_rate"],
        "weight_decay": t["weight_decay"],
        # transformers 5 reads a warmup_steps below 1 as a ratio of the total steps.
        "warmup_steps": t["warmup_steps"] if t["warmup_steps"] > 0 else t["warmup_ratio"],
        "lr_scheduler_type": t["lr_scheduler_type"],
        "max_grad_norm": t["max_grad_norm"],
        "logging_steps": t["logging_steps"],
        "logging_first_step": True,
        "eval_strategy": t["eval_strategy"] if has_eval else "no",
        "eval_steps": t["eval_steps"],
        **save_kwargs(t),
        "save_total_limit": None,  # rotation is the EventsCallback's: only after the new checkpoint is sealed
        "seed": t["seed"],
        "optim": t["optim"],
        checkpointing_key(): t["gradient_checkpointing"],
        "report_to": t["report_to"],
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        **distributed.trainer_kwargs(cfg, precision),
    }


def save_kwargs(train: dict[str, Any]) -> dict[str, Any]:
    """TRL's save_strategy and save_steps for our train section. TRL takes one strategy: with
    save_strategy epoch and save_steps given it saves by steps, and engine/train/saving.py adds the
    epoch ends."""
    from engine.config.schema import DEFAULT_SAVE_STEPS

    strategy, steps = train["save_strategy"], train["save_steps"]
    if strategy == "epoch" and steps:
        return {"save_strategy": "steps", "save_steps": steps}
    return {"save_strategy": strategy, "save_steps": steps or DEFAULT_SAVE_STEPS}


def checkpointing_key() -> str:
    """TrainingArguments' name for gradient checkpointing: `activation_checkpointing` since transformers
    5.20 (`gradient_checkpointing` stays as its deprecated alias), `gradient_checkpointing` before."""
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def _needs_bitsandbytes(name: str) -> bool:
    """8-bit, paged and the other bitsandbytes optimizers (transformers' own list where it has one)."""
    try:
        from transformers.trainer_optimizer import _BITSANDBYTES_OPTIMIZERS

        return name in {str(getattr(o, "value", o)) for o in _BITSANDBYTES_OPTIMIZERS}
    except ImportError:  # transformers moved its list: the names say it
        return name == "adamw_8bit" or name.startswith(("adamw_bnb", "paged_", "lion_", "rmsprop_bnb", "ademamix"))


def check_optim(name: str) -> None:
    """train.optim names an optimizer transformers has and that can run on this machine."""
    import importlib.util

    from transformers.training_args import OptimizerNames

    known = [o.value for o in OptimizerNames]
    if name not in known:
        near = difflib.get_close_matches(name, known, n=1, cutoff=0.8)  # a typo
        if not near and name.startswith("adam"):
            near = ["adamw_torch"]  # adam, adamw, the removed adamw_hf: the usual AdamW
        near = near or sorted((k for k in known if k.startswith(name)), key=len)[:1] or difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"did you mean '{near[0]}'?" if near else "e.g. adamw_torch, adamw_8bit, paged_adamw_8bit"
        raise EngineError("config", f"train.optim '{name}' is not an optimizer transformers knows; {hint} (--optim NAME)")
    if not _needs_bitsandbytes(name):
        return
    import torch

    if not torch.cuda.is_available():
        raise EngineError("config", f"train.optim {name} (bitsandbytes) needs a CUDA GPU; use --optim adamw_torch here")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise EngineError("config", f"train.optim {name} needs bitsandbytes: pip install bitsandbytes (or --optim adamw_torch)")


def check_train(cfg: dict[str, Any]) -> None:
    """What the engine checks in the train section before it reads data or loads a model."""
    from engine import config as config_mod

    try:
        config_mod.check_train(cfg)  # again here: a config.yaml written by hand skips the cockpit's checks
    except config_mod.ConfigError as exc:
        raise EngineError("config", str(exc)) from None
    check_optim(cfg["train"]["optim"])
    from engine.config import trackers

    try:
        trackers.check(cfg["train"]["report_to"])
    except config_mod.ConfigError as exc:
        raise EngineError("config", str(exc), key=exc.key) from None


def config_class(run_type: str) -> type:
    """The TRL config class a run's `trl:` keys go to (imports trl: seconds)."""
    if run_type == "grpo":
        from trl import GRPOConfig

        return GRPOConfig
    from trl import SFTConfig

    return SFTConfig


def check_passthrough(config_cls: type, passthrough: dict[str, Any]) -> None:
    """Every `trl:` key is a field of `config_cls`; an unknown one is refused with the nearest field."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    for key in passthrough or {}:
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean 'trl.{near[0]}'?" if near else ""
            raise EngineError("config", f"unknown TRL option 'trl.{key}' (not a field of trl.{config_cls.__name__}){hint}",
                              code="unknown_key", key=f"trl.{key}")


def build(config_cls: type, kwargs: dict[str, Any], passthrough: dict[str, Any]) -> Any:
    """`config_cls(**kwargs)` with the `trl:` keys layered on; unknown keys and TRL's refusals are config errors."""
    check_passthrough(config_cls, passthrough)
    kwargs = {**kwargs, **(passthrough or {})}
    try:
        return config_cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise EngineError("config", f"TRL rejects this config: {str(exc).splitlines()[0]}") from None
