"""Supervised fine-tuning with TRL's SFTTrainer, from a resolved config to final/ and best/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import data as data_loader
from engine import models, tokens, trl_args
from engine.errors import EngineError

# Formats whose records are conversations already; the others are rendered as one user turn.
CHAT_NATIVE = {"messages", "sharegpt"}


def load_data(cfg: dict[str, Any], chat: bool | None = None, **overrides: Any) -> data_loader.Splits:
    """The train/eval rows, or an EngineError of kind data with the loader's one-line message.

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
    try:
        return data_loader.load_splits(dcfg["path"], **{**options, **overrides})
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


def lint_warnings(cfg: dict[str, Any]) -> list[str]:
    """What `cockpit lint` warns about in the run's data (its structure checks; tokens are counted by preflight)."""
    from engine import lint

    options = {**lint.options_from_config(cfg), "max_length": None}
    return [f.line() for path in filter(None, (cfg["data"]["path"], cfg["data"]["eval_path"])) for f in lint.lint_file(path, **options).warnings]


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
            f"(TRL would drop them); use --max-length {keep} to keep every record whole, or shorten those prompts",
        )
    return report


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

    from engine.oom import BatchTracking, LongestFirst

    return type("CockpitSFTTrainer", (BatchTracking, LongestFirst, SFTTrainer), {"longest_first": longest_first})


def last_checkpoint(run_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = run_dir / "checkpoints"
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def run(cfg: dict[str, Any], run_dir: Path, events: Any, flag: Any, resume: bool, precision: str) -> dict[str, Any]:
    """Train; returns the run_finished payload (status, outputs, final metrics)."""
    from engine.callbacks import ControlCallback, EventsCallback

    trl_args.check_train(cfg)
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
        warnings=splits.warnings + lint_warnings(cfg),
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

    callback = EventsCallback(events, run_dir, len(splits.train), len(splits.eval), cfg["train"]["save_best"])
    trainer = trainer_class(cfg["train"]["longest_first"])(
        model=model,
        args=args,
        train_dataset=to_dataset(splits.train),
        eval_dataset=to_dataset(splits.eval) if splits.eval else None,
        processing_class=tokenizer,
        peft_config=models.peft_config(cfg),
        callbacks=[callback, ControlCallback(flag)],
    )
    callback.trainer = trainer
    from engine.samples import sample_payload

    events.emit("samples", samples=sample_payload(trainer.train_dataset, tokenizer, cfg["data"]["samples"], args.max_length))

    trainer.train(resume_from_checkpoint=checkpoint)
    step = trainer.state.global_step
    outputs: dict[str, Any] = {"checkpoints": str(run_dir / "checkpoints")}
    if callback.best_step is not None:
        outputs["best"] = str(run_dir / "best")
    if flag.stop:
        return {"status": "stopped", "step": step, "total_steps": trainer.state.max_steps, "metrics": callback.summary, "memory": callback.memory_report, "outputs": outputs}

    events.emit("status", step=step, phase="saving", message="saving the final model")
    final = run_dir / "final"
    trainer.save_model(str(final))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(final))
    outputs["final"] = str(final)
    return {"status": "completed", "step": step, "total_steps": trainer.state.max_steps, "metrics": callback.summary, "memory": callback.memory_report, "outputs": outputs}
