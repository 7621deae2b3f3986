"""Supervised fine-tuning with TRL's SFTTrainer, from a resolved config to final/ and best/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.data import load as data_loader
from engine.errors import EngineError
from engine.model import load as models
from engine.train import outputs, preflight, trl_args

# Formats whose records are conversations already; the others are rendered as one user turn.
CHAT_NATIVE = {"messages", "sharegpt"}


def load_data(cfg: dict[str, Any], chat: bool | None = None, **overrides: Any) -> data_loader.Splits:
    """The train/eval rows; raises DataError (code, one-line message) on data a run cannot use.

    `overrides` replace the data section's loader options (GRPO maps its answer column this way).
    """
    dcfg, tcfg = cfg["data"], cfg["train"]
    options = {
        "eval_path": dcfg["eval_path"],
        "format": dcfg["format"],
        "eval_split": dcfg["eval_split"],
        "split_field": dcfg["split_field"],
        "prompt_template": dcfg["prompt_template"],
        "completion_template": dcfg["completion_template"],
        "system_prompt": dcfg["system_prompt"],
        "loss_on": dcfg["loss_on"],
        "chat": dcfg["chat"] if chat is None else chat,
        "seed": tcfg["seed"],
        "eval_required": tcfg["eval_strategy"] != "no",
    }
    return data_loader.load_splits(dcfg["path"], **{**options, **overrides})


def check_chat_template(cfg: dict[str, Any], tokenizer: Any, splits: Any, reload: Any) -> Any:
    """Data needs a chat template to be rendered; without one, plain formats fall back to text."""
    if tokenizer.chat_template:
        return splits
    if splits.format in CHAT_NATIVE:
        raise EngineError(
            "config",
            f"model '{cfg['model']['name_or_path']}' has no chat template and {splits.format} data needs one; "
            "give one with --set model.chat_template=PATH.jinja, or use an instruct model",
            code="no_chat_template", key="model.chat_template",
        )
    if not cfg["data"]["chat"]:
        return splits
    splits = reload(cfg, chat=False)
    splits.warnings.append("the tokenizer has no chat template: prompts and completions are trained as plain text")
    return splits


def kept_separator(tokenizer: Any) -> str:
    """The first plain-text separator the tokenizer gives back as it was (some normalise newlines away)."""
    from engine.data.formats import PLAIN_SEPARATORS

    for separator in PLAIN_SEPARATORS:
        text = f"Is it?{separator}Yes"
        if tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text:
            return separator
    return PLAIN_SEPARATORS[-1]


def with_kept_separator(cfg: dict[str, Any], tokenizer: Any, splits: Any) -> Any:
    """Plain-text rows (data.chat=false, or no chat template) joined by a separator this tokenizer keeps:
    read again with a space where it drops the newline the loader puts between prompt and completion."""
    from engine.data.formats import PLAIN_SEPARATORS

    if not splits.train or not isinstance(splits.train[0].get("prompt"), str):
        return splits
    separator = kept_separator(tokenizer)
    if separator == PLAIN_SEPARATORS[0]:
        return splits
    reloaded = load_data(cfg, chat=False, separator=separator)
    reloaded.warnings += [w for w in splits.warnings if w not in reloaded.warnings]
    reloaded.warnings.append(f"the tokenizer drops newlines: prompts and completions are joined by {separator!r}")
    return reloaded


def sft_config(cfg: dict[str, Any], run_dir: Path, precision: str, has_eval: bool):
    """TRL's SFTConfig from our schema, plus the `trl:` pass-through keys checked against it."""
    from trl import SFTConfig

    t = cfg["train"]
    loss_on = cfg["data"]["loss_on"]
    kwargs = trl_args.shared_kwargs(cfg, run_dir, precision, has_eval)
    kwargs.update(
        max_length=t["max_length"],
        truncation_mode=t["truncation_mode"],
        packing=t["packing"],
        completion_only_loss=loss_on == "completion",
        assistant_only_loss=loss_on == "assistant",
    )
    return trl_args.build(SFTConfig, kwargs, cfg.get("trl", {}))


def to_dataset(rows: list[dict[str, Any]]):
    from datasets import Dataset

    return Dataset.from_list(rows)


def trainer_class(longest_first: bool) -> type:
    """SFTTrainer that notes each batch (for an out-of-memory report) and can train the longest batch first."""
    from trl import SFTTrainer

    from engine.memory.oom import BatchTracking, LongestFirst

    return type("CockpitSFTTrainer", (BatchTracking, LongestFirst, SFTTrainer), {"longest_first": longest_first})


def run(cfg: dict[str, Any], run_dir: Path, events: Any, flag: Any, checkpoint: str | None, precision: str) -> dict[str, Any]:
    """Train; returns the run_finished payload (status, outputs, final metrics)."""
    from engine.train.callbacks import ControlCallback, EventsCallback
    from engine.train.nan_guard import NanGuard
    from engine.train.saving import EpochSaves

    trl_args.check_train(cfg)
    events.emit("status", phase="preparing data", message=f"reading {cfg['data']['path']}")
    findings = [f for r in preflight.lint_reports(cfg, run_dir) for f in r.findings]
    error = preflight.blocking_error(findings)
    if error is not None:
        raise error
    splits = load_data(cfg)

    events.emit("status", phase="loading model", message=f"loading tokenizer of {cfg['model']['name_or_path']}")
    tokenizer = models.load_tokenizer(cfg)
    splits = with_kept_separator(cfg, tokenizer, check_chat_template(cfg, tokenizer, splits, load_data))
    report, token_found = preflight.token_check(cfg, tokenizer, splits)
    for name, count in splits.dropped.items():
        report.setdefault("train", {}).setdefault("dropped_reasons", {})[name] = count
    events.emit(
        "dataset",
        format=splits.format,
        path=splits.path,
        max_length=cfg["train"]["max_length"],
        loss_on=cfg["data"]["loss_on"],
        splits=report,
        keep_max_length=report.get("train", {}).get("keep_max_length"),
        warnings=splits.warnings,
        lint=[f.to_dict() for f in findings + token_found],
        has_chat_template=bool(tokenizer.chat_template),
        chat_template_ok=True,
    )

    from engine.train import fast

    median = report.get("train", {}).get("tokens", {}).get("total", {}).get("median")
    choice = fast.choose(cfg, fast.probe(cfg, median))  # train.fast: each setting that works here, one line each
    for line in choice.lines:
        events.emit("status", phase="loading model", message=line)
    cfg = fast.apply(cfg, choice)
    args = sft_config(cfg, run_dir, precision, has_eval=bool(splits.eval))  # TRL's refusals come before the model loads
    events.emit("status", phase="loading model", message=f"loading {cfg['model']['name_or_path']} ({cfg['model']['finetune']}, {precision})")
    model = models.load_model(cfg, precision)

    callback = EventsCallback(events, run_dir, len(splits.train), len(splits.eval), cfg["train"]["save_best"],
                              keep=cfg["train"]["save_total_limit"])
    guard = NanGuard(events, run_dir, fp16=precision == "fp16", finetune=cfg["model"]["finetune"])
    epochs = EpochSaves(cfg["train"], run_dir, events, guard if cfg["train"]["nan_guard"] else None)
    trainer = trainer_class(cfg["train"]["longest_first"])(
        model=model,
        args=args,
        train_dataset=to_dataset(splits.train),
        eval_dataset=to_dataset(splits.eval) if splits.eval else None,
        processing_class=tokenizer,
        peft_config=models.peft_config(cfg),
        callbacks=[callback, ControlCallback(flag)] + ([guard] if cfg["train"]["nan_guard"] else []) + [epochs],
    )
    callback.trainer = epochs.trainer = trainer
    from engine.data.samples import sample_payload

    events.emit("samples", samples=sample_payload(trainer.train_dataset, tokenizer, cfg["data"]["samples"], args.max_length,
                                                  truncation_mode=args.truncation_mode))

    outputs.train(trainer, checkpoint, events)
    return outputs.finish(trainer, callback, flag, run_dir, tokenizer, events, guard)
