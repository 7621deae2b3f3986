"""Supervised fine-tuning with TRL's SFTTrainer, from a resolved config to final/ and best/."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from engine import data as data_loader
from engine import models, tokens
from engine.errors import EngineError

# Formats whose records are conversations already; the others are rendered as one user turn.
CHAT_NATIVE = {"messages", "sharegpt"}


def load_data(cfg: dict[str, Any], chat: bool | None = None) -> data_loader.Splits:
    """The train/eval rows, or an EngineError of kind data with the loader's one-line message."""
    dcfg, tcfg = cfg["data"], cfg["train"]
    try:
        return data_loader.load_splits(
            dcfg["path"],
            eval_path=dcfg["eval_path"],
            format=dcfg["format"],
            eval_split=dcfg["eval_split"],
            split_field=dcfg["split_field"],
            prompt_template=dcfg["prompt_template"],
            completion_template=dcfg["completion_template"],
            system_prompt=dcfg["system_prompt"],
            loss_on=dcfg["loss_on"],
            chat=dcfg["chat"] if chat is None else chat,
            seed=tcfg["seed"],
            eval_required=tcfg["eval_strategy"] != "no",
        )
    except data_loader.DataError as exc:
        raise EngineError("data", str(exc)) from None


def _check_chat_template(cfg: dict[str, Any], tokenizer: Any, splits: data_loader.Splits) -> data_loader.Splits:
    """Data needs a chat template to be rendered; without one, plain formats fall back to text."""
    if tokenizer.chat_template:
        return splits
    if splits.format in CHAT_NATIVE:
        raise EngineError(
            "config",
            f"model '{cfg['model']['name_or_path']}' has no chat template and {splits.format} data needs one; "
            "give one with --set model.chat_template=PATH.jinja, or use an instruct model",
        )
    if not cfg["data"]["chat"]:
        return splits
    splits = load_data(cfg, chat=False)
    splits.warnings.append("the tokenizer has no chat template: prompts and completions are trained as plain text")
    return splits


def preflight(cfg: dict[str, Any], tokenizer: Any, splits: data_loader.Splits) -> dict[str, Any]:
    """Token lengths of every split, checked against max_length before any model loads."""
    max_length = cfg["train"]["max_length"]
    mode = cfg["train"]["truncation_mode"]
    report: dict[str, Any] = {}
    for name, rows in (("train", splits.train), ("eval", splits.eval)):
        if not rows:
            continue
        try:
            prompt_lens, total_lens = tokens.lengths(rows, tokenizer)
        except tokens.RenderError as exc:
            raise EngineError(
                "data",
                f"{splits.path}: the chat template of '{cfg['model']['name_or_path']}' cannot render {name} record {exc.index + 1}: "
                f"{exc}; use a model whose template knows these roles/tools, or set model.chat_template",
            ) from None
        report[name] = tokens.length_report(prompt_lens, total_lens, max_length, mode)
    train = report.get("train", {})
    lost = train.get("completion_lost", 0)
    if lost and cfg["data"]["loss_on"] == "completion":
        keep = train["keep_max_length"]["p100"]
        raise EngineError(
            "data",
            f"{splits.path}: max_length {max_length} cuts away the whole completion of {lost} of {train['records']} training records "
            f"(TRL would drop them); use --max-length {keep} to keep every record whole, "
            "or --set train.truncation_mode=keep_end",
        )
    return report


def sft_config(cfg: dict[str, Any], run_dir: Path, precision: str, has_eval: bool):
    """TRL's SFTConfig from our schema, plus the `trl:` pass-through keys checked against it."""
    from trl import SFTConfig

    t = cfg["train"]
    loss_on = cfg["data"]["loss_on"]
    eval_strategy = t["eval_strategy"] if has_eval else "no"
    kwargs: dict[str, Any] = {
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
        "max_length": t["max_length"],
        "truncation_mode": t["truncation_mode"],
        "logging_steps": t["logging_steps"],
        "logging_first_step": True,
        "eval_strategy": eval_strategy,
        "eval_steps": t["eval_steps"],
        "save_strategy": t["save_strategy"],
        "save_steps": t["save_steps"],
        "save_total_limit": t["save_total_limit"],
        "seed": t["seed"],
        "optim": t["optim"],
        "gradient_checkpointing": t["gradient_checkpointing"],
        "packing": t["packing"],
        "report_to": t["report_to"],
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "completion_only_loss": loss_on == "completion",
        "assistant_only_loss": loss_on == "assistant",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }
    known = {f.name for f in dataclasses.fields(SFTConfig)}
    for key, value in cfg.get("trl", {}).items():
        if key not in known:
            import difflib

            near = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean 'trl.{near[0]}'?" if near else ""
            raise EngineError("config", f"unknown TRL option 'trl.{key}' (not a field of trl.SFTConfig){hint}")
        kwargs[key] = value
    try:
        return SFTConfig(**kwargs)
    except (ValueError, TypeError) as exc:
        raise EngineError("config", f"TRL rejects this config: {str(exc).splitlines()[0]}") from None


def to_dataset(rows: list[dict[str, Any]]):
    from datasets import Dataset

    return Dataset.from_list(rows)


def last_checkpoint(run_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = run_dir / "checkpoints"
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def run(cfg: dict[str, Any], run_dir: Path, events: Any, flag: Any, resume: bool, precision: str) -> dict[str, Any]:
    """Train; returns the run_finished payload (status, outputs, final metrics)."""
    from engine.callbacks import ControlCallback, EventsCallback

    events.emit("status", phase="preparing data", message=f"reading {cfg['data']['path']}")
    splits = load_data(cfg)

    events.emit("status", phase="loading model", message=f"loading tokenizer of {cfg['model']['name_or_path']}")
    tokenizer = models.load_tokenizer(cfg)
    splits = _check_chat_template(cfg, tokenizer, splits)
    report = preflight(cfg, tokenizer, splits)
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
        has_chat_template=bool(tokenizer.chat_template),
        chat_template_ok=True,
    )

    checkpoint = None
    if resume:
        checkpoint = last_checkpoint(run_dir)
        if checkpoint is None:
            raise EngineError("config", f"{run_dir}/checkpoints holds no checkpoint to resume from; start a new run instead")

    events.emit("status", phase="loading model", message=f"loading {cfg['model']['name_or_path']} ({cfg['model']['finetune']}, {precision})")
    model = models.load_model(cfg, precision)
    args = sft_config(cfg, run_dir, precision, has_eval=bool(splits.eval))

    from trl import SFTTrainer

    callback = EventsCallback(events, run_dir, len(splits.train), len(splits.eval), cfg["train"]["save_best"])
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=to_dataset(splits.train),
        eval_dataset=to_dataset(splits.eval) if splits.eval else None,
        processing_class=tokenizer,
        peft_config=models.peft_config(cfg),
        callbacks=[callback, ControlCallback(flag)],
    )
    from engine.samples import sample_payload

    events.emit("samples", samples=sample_payload(trainer.train_dataset, tokenizer, cfg["data"]["samples"], args.max_length))

    trainer.train(resume_from_checkpoint=checkpoint)
    step = trainer.state.global_step
    outputs: dict[str, Any] = {"checkpoints": str(run_dir / "checkpoints")}
    if callback.best_step is not None:
        outputs["best"] = str(run_dir / "best")
    if flag.stop:
        return {"status": "stopped", "step": step, "total_steps": trainer.state.max_steps, "metrics": callback.summary, "outputs": outputs}

    events.emit("status", step=step, phase="saving", message="saving the final model")
    final = run_dir / "final"
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    outputs["final"] = str(final)
    return {"status": "completed", "step": step, "total_steps": trainer.state.max_steps, "metrics": callback.summary, "outputs": outputs}
