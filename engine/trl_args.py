"""TRL config objects from our schema: the training arguments every run type shares, and the `trl:`
pass-through keys checked against the TRL class they go to (so every TRL option is reachable)."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

from engine.errors import EngineError


def shared_kwargs(cfg: dict[str, Any], run_dir: Path, precision: str, has_eval: bool) -> dict[str, Any]:
    """TrainingArguments fields that SFT and GRPO set the same way from the `train` section."""
    t = cfg["train"]
    return {
        "output_dir": str(run_dir / "checkpoints"),
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
        "save_strategy": t["save_strategy"],
        "save_steps": t["save_steps"],
        "save_total_limit": t["save_total_limit"],
        "seed": t["seed"],
        "optim": t["optim"],
        "activation_checkpointing": t["gradient_checkpointing"],
        "report_to": t["report_to"],
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def build(config_cls: type, kwargs: dict[str, Any], passthrough: dict[str, Any]) -> Any:
    """`config_cls(**kwargs)` with the `trl:` keys layered on; unknown keys and TRL's refusals are config errors."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    kwargs = dict(kwargs)
    for key, value in (passthrough or {}).items():
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean 'trl.{near[0]}'?" if near else ""
            raise EngineError("config", f"unknown TRL option 'trl.{key}' (not a field of trl.{config_cls.__name__}){hint}")
        kwargs[key] = value
    try:
        return config_cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise EngineError("config", f"TRL rejects this config: {str(exc).splitlines()[0]}") from None
