"""How a fix is written: config keys as the CLI flag a user types, numbers short and readable."""

from __future__ import annotations

import math
from typing import Any

# Config keys that have a first-class flag on `cockpit run`; every other key goes through --set.
FLAGS = {
    "train.num_train_epochs": "--epochs",
    "train.learning_rate": "--lr",
    "train.per_device_train_batch_size": "--batch-size",
    "train.gradient_accumulation_steps": "--grad-accum",
    "train.max_length": "--max-length",
    "data.eval_split": "--eval-split",
    "lora.r": "--lora-r",
    "train.max_steps": "--max-steps",
    "train.warmup_ratio": "--warmup-ratio",
    "train.eval_steps": "--eval-steps",
    "data.loss_on": "--loss-on",
    "train.optim": "--optim",
    "train.longest_first": "--longest-first",
}


def num(value: Any, digits: int = 3) -> str:
    """A number as a person writes it: 2e-4 not 0.0002, 1.25 not 1.2500001, 3 not 3.0."""
    if value is None:
        return "?"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Inf" if value > 0 else "-Inf"
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        if value != 0 and abs(value) < 1e-3:
            mantissa, exp = f"{value:.{digits - 1}e}".split("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exp)}"
        if abs(value) >= 1e4:
            return str(round(value))
        return f"{value:.{digits + 1}g}"
    return str(value)


def flag(key: str, value: Any) -> str:
    """The command-line spelling of one override: `--lr 5e-5`, `--qlora`, `--set train.max_grad_norm=1`."""
    if key == "model.finetune" and value in ("qlora", "full"):
        return f"--{value}"
    if key in FLAGS and isinstance(value, bool):  # an on/off flag: --longest-first, --no-longest-first
        return FLAGS[key] if value else "--no-" + FLAGS[key][2:]
    if key in FLAGS:
        return f"{FLAGS[key]} {num(value)}"
    return f"--set {key}={num(value)}"


def flags(overrides: dict[str, Any]) -> str:
    """All overrides as flags, in order."""
    return " ".join(flag(k, v) for k, v in overrides.items())


def clean(value: Any) -> Any:
    """Evidence made JSON-safe: NaN/Inf as strings, floats rounded to 6 significant digits."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def round_up(value: float, multiple: int = 64) -> int:
    """Rounded up to a multiple (token lengths: 64, the granularity kernels like)."""
    return int(math.ceil(value / multiple) * multiple)


def lower_lr(lr: float | None, finetune: str | None) -> float:
    """A safer learning rate after divergence: a quarter of what diverged, never above the usual
    ceiling (2e-4 for LoRA/QLoRA adapters, 2e-5 for full fine-tuning)."""
    ceiling = 2e-5 if finetune == "full" else 2e-4
    if lr is None or not math.isfinite(lr) or lr <= 0:
        return ceiling / 2
    return float(f"{min(lr / 4, ceiling):.1g}")
