"""GRPO with TRL's GRPOTrainer and LoRA, from a resolved config to final/ and best/.

Besides what TRL logs (reward mean/std per function, frac_reward_zero_std, kl, entropy, completion
lengths, clipped ratio; all passed through as `metrics` events), the run writes `generations`
events (a few groups: each completion, its reward per function, total and whether it was clipped)
and, on the eval split, `eval_answer_accuracy` and `eval_format_accuracy`.

`train.per_device_train_batch_size` counts prompts here, as in the seed trainer: each micro batch
holds that many prompts times grpo.num_generations completions (TRL counts completions).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from engine.data import prompts as grpo_data
from engine.model import load as models
from engine.train import rewards as rewards_mod
from engine.train import trl_args
from engine.errors import EngineError
from engine.train import best, outputs
from engine.train.sft import check_chat_template, to_dataset


def preflight(cfg: dict[str, Any], tokenizer: Any, splits: Any) -> dict[str, Any]:
    """Prompt token lengths per split; prompts over grpo.max_prompt_length are dropped and counted,
    then the eval prompts are cut to grpo.eval_prompts (`records` evaluated of `available`)."""
    limit = cfg["grpo"]["max_prompt_length"]
    report: dict[str, Any] = {}
    from engine.data.tokens import stats

    for name in ("train", "eval"):
        rows = getattr(splits, name)
        if not rows:
            continue
        try:
            texts = [render_prompt(r["prompt"], tokenizer) for r in rows]
        except Exception as exc:  # jinja errors: the template cannot render these messages
            raise EngineError("data", f"{splits.path}: the chat template of '{cfg['model']['name_or_path']}' cannot render a {name} prompt: "
                              f"{str(exc).splitlines()[0]}; use a model whose template knows these roles, or set model.chat_template",
                              code="template_error") from None
        lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        kept = [r for r, n in zip(rows, lengths) if n <= limit]
        dropped = len(rows) - len(kept)
        setattr(splits, name, kept)
        report[name] = {
            "records": len(kept),
            "dropped": dropped,
            "dropped_reasons": {f"prompt longer than grpo.max_prompt_length ({limit} tokens)": dropped} if dropped else {},
            "truncated": 0,
            "completion_lost": 0,
            "with_answer": sum(1 for r in kept if r["answer"]),
            "tokens": {"prompt": stats(lengths)},
        }
        if dropped:
            splits.warnings.append(f"{dropped} {name} prompt(s) longer than {limit} tokens dropped; raise grpo.max_prompt_length to keep them")
    if "eval" in report:
        available = grpo_data.eval_subset(splits, cfg["grpo"]["eval_prompts"])
        report["eval"].update(records=len(splits.eval), available=available, with_answer=sum(1 for r in splits.eval if r["answer"]))
    if not splits.train:
        longest = report["train"]["tokens"]["prompt"]["max"]
        raise EngineError("data", f"{splits.path}: every training prompt is longer than grpo.max_prompt_length={limit} tokens; "
                          f"use --set grpo.max_prompt_length={longest}", code="prompt_too_long",
                          overrides={"grpo.max_prompt_length": longest})
    return report


def render_prompt(prompt: Any, tokenizer: Any) -> str:
    """A prompt as the trainer feeds it to generation."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def grpo_config(cfg: dict[str, Any], run_dir: Path, precision: str, has_eval: bool, weights: list[float], end_ids: list[int] | None = None):
    """TRL's GRPOConfig from our schema, plus the `trl:` pass-through keys checked against it.

    `end_ids`: the tokens that end a completion, for grpo.end_bias."""
    from trl import GRPOConfig

    g, t = cfg["grpo"], cfg["train"]
    kwargs = trl_args.shared_kwargs(cfg, run_dir, precision, has_eval)
    group = g["num_generations"]
    kwargs.update(
        # Our batch counts prompts; TRL's counts completions (prompts x generations).
        per_device_train_batch_size=t["per_device_train_batch_size"] * group,
        per_device_eval_batch_size=(t["per_device_eval_batch_size"] or t["per_device_train_batch_size"]) * group,
        num_generations=group,
        beta=g["beta"],
        epsilon=g["epsilon"],
        temperature=g["temperature"],
        top_k=g["top_k"],
        top_p=g["top_p"],
        max_completion_length=g["max_completion_length"],
        reward_weights=weights,
        log_completions=False,  # our generations events carry them
    )
    if g["end_bias"] and end_ids:
        # A logit bias on the end tokens while sampling (transformers' sequence_bias): a model that
        # never ends its turn (a base or random model) finishes some completions, so stopping can be learned.
        kwargs["generation_kwargs"] = {"sequence_bias": [[[i], float(g["end_bias"])] for i in end_ids]}
    return trl_args.build(GRPOConfig, kwargs, cfg.get("trl", {}))


def end_ids(tokenizer: Any) -> list[int]:
    """The tokens that end a completion (what grpo.end_bias favours)."""
    return [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []


class GenerationLog:
    """What the trainer's reward step saw: the latest training groups, and eval accuracies.

    Fed by the trainer subclass below after each reward computation; read by GenerationsCallback.
    """

    def __init__(self, names: list[str], weights: list[float], tags: rewards_mod.Tags, keep_groups: int):
        self.names, self.weights, self.tags, self.keep_groups = names, weights, tags, keep_groups
        self.groups: list[dict[str, Any]] = []
        self.fresh = False

    def record(self, trainer: Any, inputs: list[dict], prompts: list, completions: list, completion_ids: list, rewards: Any) -> None:
        start = trainer.accelerator.process_index * len(prompts)
        rows = rewards[start : start + len(prompts)].tolist()  # rewards are gathered over processes
        ends = set(trainer.eos_token_ids) | {trainer._tokenizer.pad_token_id}
        clipped = [bool(ids) and ids[-1] not in ends for ids in completion_ids]  # TRL's own test for clipped_ratio
        texts = [rewards_mod.completion_text(c) for c in completions]
        if not trainer.model.training:
            self._eval_metrics(trainer, inputs, texts)
            return
        groups: list[dict[str, Any]] = []
        size = trainer.num_generations  # TRL repeats each prompt that many times in a row: a group
        for i, prompt in enumerate(prompts):
            if i % size == 0:  # by position, not by text: two draws of one prompt are two groups
                if len(groups) == self.keep_groups:
                    break
                groups.append({"group": i // size, "prompt": grpo_data.prompt_display(prompt), "answer": inputs[i].get("answer"), "completions": []})
            values = {n: (None if math.isnan(v) else round(v, 4)) for n, v in zip(self.names, rows[i])}
            scored = [(w * v) for w, v in zip(self.weights, values.values()) if v is not None]
            groups[-1]["completions"].append(
                {"text": texts[i], "rewards": values, "total": round(sum(scored), 4) if scored else None, "clipped": clipped[i]}
            )
        for group in groups:
            totals = [c["total"] for c in group["completions"] if c["total"] is not None]
            group["zero_std"] = len(set(totals)) <= 1
        self.groups, self.fresh = groups, True

    def _eval_metrics(self, trainer: Any, inputs: list[dict], texts: list[str]) -> None:
        metrics = trainer._metrics["eval"]
        metrics["format_accuracy"].append(sum(rewards_mod.format_ok(t, self.tags) for t in texts) / len(texts))
        truths = [x.get("answer") for x in inputs]
        if all(truths):
            correct = sum(rewards_mod.answer_correct(t, a, self.tags) for t, a in zip(texts, truths))
            metrics["answer_accuracy"].append(correct / len(texts))


def _trainer_class():
    from trl import GRPOTrainer

    from engine.memory.oom import BatchTracking

    class CockpitGRPOTrainer(BatchTracking, GRPOTrainer):
        """GRPOTrainer that shows each reward computation to a GenerationLog and notes each batch (for an out-of-memory report)."""

        generation_log: GenerationLog | None = None

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            if self.generation_log is not None:
                self.generation_log.record(self, inputs, prompts, completions, completion_ids_list, rewards)
            return rewards

    return CockpitGRPOTrainer


def _callback_classes():
    from transformers import TrainerCallback

    class GenerationsCallback(TrainerCallback):
        """Writes a generations event with each training log."""

        def __init__(self, events: Any, log: GenerationLog):
            self.events, self.log = events, log

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs or "reward" not in logs or not self.log.fresh:
                return
            self.events.emit("generations", step=state.global_step, groups=self.log.groups)
            self.log.fresh = False

    return GenerationsCallback


def _samples(rows: list[dict[str, Any]], tokenizer: Any, count: int) -> list[dict[str, Any]]:
    """The first prompts as the model sees them (nothing is trained on them directly), with their truth."""
    out = []
    for index, row in enumerate(rows[:count]):
        text = render_prompt(row["prompt"], tokenizer)
        tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        out.append({"index": index, "split": "train", "segments": [{"text": text, "trained": False}], "text": text,
                    "tokens": tokens, "trained_tokens": 0, "truncated": False, "answer": row["answer"], "prompt_only": True})
    return out


def run(cfg: dict[str, Any], run_dir: Path, events: Any, flag: Any, checkpoint: str | None, precision: str) -> dict[str, Any]:
    """Train; returns the run_finished payload (status, outputs, final metrics)."""
    from engine.train.callbacks import ControlCallback, EventsCallback
    from engine.train.nan_guard import NanGuard
    from engine.train.saving import EpochSaves

    g = cfg["grpo"]
    trl_args.check_train(cfg)
    events.emit("status", phase="preparing data", message=f"reading {cfg['data']['path']}")
    splits = grpo_data.load(cfg)
    # Rewards before the model: a broken reward file must fail in seconds, not after loading weights.
    tags = rewards_mod.Tags.from_config(g)
    reward_set = rewards_mod.build(g)
    if reward_set.needs_answer() and not all(r["answer"] for r in splits.train):
        missing = sum(1 for r in splits.train if not r["answer"])
        raise EngineError("data", f"{splits.path}: {missing} training record(s) have no ground truth, which "
                          f"{', '.join(n for n in reward_set.names if n in rewards_mod.NEEDS_ANSWER)} need; set grpo.answer_field to its column",
                          code="no_answer", key="grpo.answer_field")
    rewards_mod.check_shapes(reward_set, splits.train, tags)

    events.emit("status", phase="loading model", message=f"loading tokenizer of {cfg['model']['name_or_path']}")
    tokenizer = models.load_tokenizer(cfg)
    splits = check_chat_template(cfg, tokenizer, splits, grpo_data.load)
    report = preflight(cfg, tokenizer, splits)
    for reason, count in splits.dropped.items():
        report["train"].setdefault("dropped_reasons", {})[reason] = count
    events.emit(
        "dataset",
        format=splits.format,
        path=splits.path,
        run_type="grpo",
        max_length=g["max_prompt_length"],
        max_completion_length=g["max_completion_length"],
        loss_on="completion",
        splits=report,
        keep_max_length=None,
        warnings=splits.warnings,
        lint=[],  # prompts and answers: lint's record checks are SFT's
        has_chat_template=bool(tokenizer.chat_template),
        chat_template_ok=True,
        rewards=[{"name": n, "weight": w} for n, w in zip(reward_set.names, reward_set.weights)],
    )
    events.emit("samples", samples=_samples(splits.train, tokenizer, cfg["data"]["samples"]))

    args = grpo_config(cfg, run_dir, precision, has_eval=bool(splits.eval), weights=reward_set.weights, end_ids=end_ids(tokenizer))
    events.emit("status", phase="loading model", message=f"loading {cfg['model']['name_or_path']} ({cfg['model']['finetune']}, {precision})")
    model = models.load_model(cfg, precision)

    log = GenerationLog(reward_set.names, reward_set.weights, tags, g["generations_to_log"])
    save_best = cfg["train"]["save_best"] and bool(splits.eval)
    # GRPO's eval loss is ~0 by construction: best/ keeps the best answer accuracy (engine/train/best.py).
    callback = EventsCallback(
        events, run_dir, len(splits.train), len(splits.eval), save_best, group_size=g["num_generations"],
        best_keys=best.GRPO, keep=cfg["train"]["save_total_limit"],
    )
    guard = NanGuard(events, run_dir, fp16=precision == "fp16", finetune=cfg["model"]["finetune"])
    generations = _callback_classes()(events, log)
    epochs = EpochSaves(cfg["train"], run_dir, events, guard if cfg["train"]["nan_guard"] else None)
    trainer = _trainer_class()(
        model=model,
        reward_funcs=reward_set.funcs,
        args=args,
        train_dataset=to_dataset(splits.train),
        eval_dataset=to_dataset(splits.eval) if splits.eval else None,
        processing_class=tokenizer,
        peft_config=models.peft_config(cfg),
        callbacks=[callback, generations, ControlCallback(flag)] + ([guard] if cfg["train"]["nan_guard"] else []) + [epochs],
    )
    trainer.generation_log = log
    callback.trainer = epochs.trainer = trainer
    if checkpoint is None:  # a resumed run was checked when it started
        from engine.train import reward_check

        reward_check.check(cfg, trainer, tokenizer, reward_set, splits.train, events, lambda p: render_prompt(p, tokenizer))

    outputs.train(trainer, checkpoint, events)
    return outputs.finish(trainer, callback, flag, run_dir, tokenizer, events, guard)
