"""The first-class options: one table for `cockpit run`'s flags, the TUI's form fields and the way
a fix is written (`--lr 5e-5`, `--qlora`, `--set train.max_grad_norm=1`). Their help is the schema's
field docstring. Standard library only, so the CLI builds its help without importing anything heavy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """One option: its Python name, the config key it sets, its flag and, where the form shows it, its label.

    A switch (`value` set) puts that value in the key when given: --full sets model.finetune=full.
    """

    name: str
    key: str
    flag: str
    short: str | None = None
    label: str | None = None  # the new-run form's label, for the options the form shows
    value: Any = None  # a switch's value
    help: str | None = None  # where the schema's docstring is not what the flag does
    grpo_only: bool = False  # a form field for GRPO runs only
    sft_only: bool = False  # a form field for SFT runs only
    kind: type | None = None  # the flag's value type where the key's default does not say it (None default, or parsed text)

    @property
    def is_switch(self) -> bool:
        return self.value is not None


OPTIONS: tuple[Option, ...] = (
    Option("dataset", "data.path", "--dataset", "-d", help="Training data: a JSON, JSONL or CSV file, a dir saved by datasets' save_to_disk, or hf:NAME[:CONFIG][@SPLIT] "
           "(datasets.load_dataset: a hub id or a local data dir)."),
    Option("eval_dataset", "data.eval_path", "--eval-dataset"),
    Option("model", "model.name_or_path", "--model", "-m"),
    Option("name", "run.name", "--name"),
    Option("tag", "run.tags", "--tag", help="A label for the run (repeatable), shown on home and in compare."),
    Option("epochs", "train.num_train_epochs", "--epochs", label="epochs"),
    Option("max_steps", "train.max_steps", "--max-steps", label="max steps"),
    Option("batch_size", "train.per_device_train_batch_size", "--batch-size", label="batch size"),
    Option("grad_accum", "train.gradient_accumulation_steps", "--grad-accum", label="grad accum"),
    Option("lr", "train.learning_rate", "--lr", label="learning rate"),
    Option("weight_decay", "train.weight_decay", "--weight-decay"),
    Option("warmup_ratio", "train.warmup_ratio", "--warmup-ratio"),
    Option("max_length", "train.max_length", "--max-length", label="max length", sft_only=True),
    Option("eval_split", "data.eval_split", "--eval-split", label="eval split"),
    Option("eval_steps", "train.eval_steps", "--eval-steps"),
    Option("save_steps", "train.save_steps", "--save-steps", kind=int),
    Option("epoch_models", "train.epoch_models", "--epoch-models"),
    Option("log_steps", "train.logging_steps", "--log-steps"),
    Option("seed", "train.seed", "--seed"),
    Option("lora_r", "lora.r", "--lora-r", label="LoRA r"),
    Option("lora_alpha", "lora.alpha", "--lora-alpha"),
    Option("loss_on", "data.loss_on", "--loss-on", label="loss on", sft_only=True),
    Option("full", "model.finetune", "--full", value="full", help="Full fine-tuning instead of LoRA."),
    Option("qlora", "model.finetune", "--qlora", value="qlora", help="QLoRA: 4-bit base model (CUDA)."),
    Option("finetune", "model.finetune", "--finetune", label="fine-tune"),
    Option("bf16", "model.dtype", "--bf16", value="bf16", help="Force bf16 (default: chosen automatically)."),
    Option("fp16", "model.dtype", "--fp16", value="fp16", help="Force fp16 (default: chosen automatically)."),
    Option("report_to", "train.report_to", "--report-to"),
    Option("optim", "train.optim", "--optim"),
    Option("longest_first", "train.longest_first", "--longest-first"),
    Option("gradient_checkpointing", "train.gradient_checkpointing", "--gradient-checkpointing", label="grad checkpointing"),
    Option("reward", "grpo.reward_files", "--reward"),
    Option("num_generations", "grpo.num_generations", "--num-generations", label="generations", grpo_only=True),
    Option("max_completion_length", "grpo.max_completion_length", "--max-completion-length", label="completion length", grpo_only=True),
    Option("rewards", "grpo.rewards", "--rewards", label="rewards", grpo_only=True,
           help="GRPO reward functions and weights, e.g. '{correctness: 1.0, exact_format: 0.5}'."),
    Option("no_nan_guard", "train.nan_guard", "--no-nan-guard", value=False,
           help="Train on through NaN/Inf losses and weights, as TRL does (the NaN guard stops the run by default)."),
    Option("skip_reward_check", "grpo.reward_check", "--skip-reward-check", value=False,
           help="GRPO: train even when the reward check before training finds no learning signal."),
    Option("gpus", "run.gpus", "--gpus", label="GPUs", kind=str,
           help="GPUs to train on, one process each: a count (--gpus 2), all (every visible GPU), or indices (--gpus 0,2; "
                "--gpus 1, for GPU 1 alone). More than one launches the engine under torchrun."),
    Option("distributed", "run.distributed", "--distributed"),
    Option("launcher_args", "run.launcher_args", "--launcher-args"),
)
BY_NAME = {o.name: o for o in OPTIONS}
# The flag a fix is written with, for keys that have one (switches are written by value below).
FLAG_OF_KEY = {o.key: o.flag for o in OPTIONS if not o.is_switch}
FORM_OPTIONS = tuple(o for o in OPTIONS if o.label)


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
    for option in OPTIONS:
        if option.key == key and option.is_switch and type(option.value) is type(value) and option.value == value:
            return option.flag
    if key in FLAG_OF_KEY and isinstance(value, bool):  # an on/off flag: --longest-first, --no-longest-first
        return FLAG_OF_KEY[key] if value else "--no-" + FLAG_OF_KEY[key][2:]
    if key in FLAG_OF_KEY and not isinstance(value, (list, dict)):
        return f"{FLAG_OF_KEY[key]} {num(value)}"
    return f"--set {key}={_yaml_value(value)}"


def _yaml_value(value: Any) -> str:
    if isinstance(value, (list, dict)):
        import json

        return "'" + json.dumps(value) + "'"
    return num(value)


def flags(overrides: dict[str, Any]) -> str:
    """All overrides as flags, in order."""
    return " ".join(flag(k, v) for k, v in overrides.items())


def lower_lr(lr: float | None, finetune: str | None) -> float:
    """A safer learning rate after divergence: a quarter of what diverged, never above the usual
    ceiling (2e-4 for LoRA/QLoRA adapters, 2e-5 for full fine-tuning)."""
    ceiling = 2e-5 if finetune == "full" else 2e-4
    if lr is None or not math.isfinite(lr) or lr <= 0:
        return ceiling / 2
    return float(f"{min(lr / 4, ceiling):.1g}")
