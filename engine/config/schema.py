"""The schema of a run: sections of typed, bounded fields whose docstrings become the help.

Plain dataclasses with `annotated_types` bounds, so importing the schema costs nothing (the CLI's
help is built from it); engine/config/validate.py checks values against it with pydantic.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le, Lt

Count = Annotated[int, Ge(1)]  # a positive count
NonNeg = Annotated[int, Ge(0)]
Rate = Annotated[float, Ge(0)]  # finite (validate.py refuses NaN and Inf), not negative
Share = Annotated[float, Ge(0), Lt(1)]  # a probability or share in [0, 1)
Seed = Annotated[int, Ge(0), Lt(2**32)]
DEFAULT_SAVE_STEPS = 500  # train.save_steps when save_strategy is steps and none is given
# Run names become dir names: no separators, no "..", nothing hidden.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$"


def _doc(text: str, **kw: Any) -> Any:
    """A field with its help text kept in the metadata (the CLI's --help and `cockpit presets show`)."""
    return field(metadata={"help": text}, **kw)


@dataclass
class RunSection:
    type: Literal["sft", "grpo"] = _doc("What to train: supervised fine-tuning or GRPO.", default="sft")
    name: str | None = _doc("Run name; the run dir is runs/<name>-<timestamp>. Defaults to the preset. Letters, digits, . _ + - only.", default=None)
    runs_dir: str = _doc("Where new run dirs are made.", default="runs")
    tags: list[str] = _doc("Labels for the run (--tag, repeatable), shown on home and in compare.", default_factory=list)
    gpus: Count = _doc(
        "Processes to train with, one per GPU (--gpus); more than 1 launches the engine under torchrun. "
        "On a machine without CUDA they are CPU processes talking over gloo.",
        default=1,
    )
    gpu_ids: list[Annotated[int, Ge(0)]] | None = _doc(
        "Which GPUs, by their index among the visible ones (nvidia-smi's numbers when CUDA_VISIBLE_DEVICES is unset), "
        "one process each: --gpus 0,2 (a trailing comma picks one: --gpus 1, is GPU 1 alone). Null: the first run.gpus of them.",
        default=None,
    )
    distributed: Literal["ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"] = _doc(
        "How several processes share the model (--distributed): ddp copies it to every GPU; fsdp and "
        "deepspeed-zero3 shard weights, gradients and optimizer states; deepspeed-zero2 shards gradients and optimizer states.",
        default="ddp",
    )
    launcher_args: list[str] = _doc(
        "Extra torchrun options, for several machines: [--nnodes=2, --node-rank=0, --master-addr=HOST, --master-port=29500] "
        "(run the same command on every machine with its own --node-rank).",
        default_factory=list,
    )


@dataclass
class ModelSection:
    name_or_path: str = _doc(
        "Hub id, local directory, builtin:tiny (a small random model, no download), or builtin:shape:NAME (a random model "
        "with a real one's shapes, for measuring a GPU: qwen2.5-0.5b, llama-3.2-1b, mistral-7b).",
        default="builtin:tiny",
    )
    finetune: Literal["lora", "qlora", "full"] = _doc("LoRA adapters, QLoRA (4-bit base, CUDA only), or full fine-tuning.", default="lora")
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = _doc("Training precision; auto: bf16 where the GPU has it, else fp16, fp32 on CPU.", default="auto")
    tiny_seed: Seed = _doc("Seed that initialises the weights of builtin:tiny and builtin:shape:NAME.", default=0)
    chat_template: str | None = _doc("A .jinja file that replaces the tokenizer's chat template (for models that have none).", default=None)
    trust_remote_code: bool = _doc("Allow model code from the hub repo to run.", default=False)
    attn_implementation: str | None = _doc("Attention kernel, e.g. sdpa, eager, flash_attention_2.", default=None)
    revision: str | None = _doc("Hub revision (branch, tag or commit).", default=None)


@dataclass
class LoraSection:
    r: Count = _doc("LoRA rank.", default=16)
    alpha: Annotated[float, Gt(0)] = _doc("LoRA alpha (scale = alpha / r).", default=32)
    dropout: Share = _doc("Dropout on the LoRA path, in [0, 1).", default=0.05)
    target_modules: str | list[str] = _doc("Modules to adapt: all-linear, or a list such as [q_proj, v_proj].", default="all-linear")
    bias: Literal["none", "all", "lora_only"] = _doc("Which biases train.", default="none")


@dataclass
class DataSection:
    path: str | None = _doc("Training data: JSON, JSONL or CSV, a save_to_disk dir, or hf:NAME[:CONFIG][@SPLIT].", default=None)
    eval_path: str | None = _doc("Separate eval data (as data.path, e.g. hf:NAME@test); otherwise `metadata` or eval_split decides.", default=None)
    format: str = _doc("auto, or one of: messages, sharegpt, prompt-completion, alpaca, input-output, question-answer, nli, text, mapped.", default="auto")
    eval_split: Rate = _doc("Records held out for eval when the data has no train/eval metadata: a share below 1 (0.1), or a count (50); 0: none.", default=0.1)
    split_field: str = _doc("Record field whose value, exactly train or eval, decides the split.", default="metadata")
    prompt_template: str | None = _doc("Prompt from any columns, e.g. 'Premise: {premise}\\nHypothesis: {hypothesis}'.", default=None)
    completion_template: str | None = _doc("Completion from any columns, e.g. '{label}'.", default=None)
    system_prompt: str | None = _doc("System message added to records that have none.", default=None)
    loss_on: Literal["completion", "assistant", "all"] = _doc("Train on the last assistant turn (completion), every assistant turn, or every token.", default="completion")
    chat: bool = _doc("Render prompt/completion data through the chat template (false: plain text).", default=True)
    too_long: Literal["truncate", "drop", "refuse"] = _doc(
        "Records longer than max_length: truncate them (TRL's way), drop them before training (counted in the dataset "
        "report), or refuse to start.",
        default="truncate",
    )
    samples: NonNeg = _doc("How many prepared training examples to show, decoded with their masks.", default=3)


@dataclass
class TrainSection:
    num_train_epochs: Rate = _doc("Passes over the training data.", default=3.0)
    max_steps: Annotated[int, Ge(-1)] = _doc("Stop after this many optimizer steps (-1: run all epochs).", default=-1)
    per_device_train_batch_size: Count = _doc("Micro batch per device; lower it when out of memory.", default=4)
    per_device_eval_batch_size: Count | None = _doc("Eval batch per device (default: the train batch).", default=None)
    gradient_accumulation_steps: Count = _doc("Micro batches per optimizer step; effective batch = batch x this x GPUs.", default=1)
    learning_rate: Rate = _doc("Peak learning rate.", default=2e-4)
    weight_decay: Rate = _doc("AdamW weight decay.", default=0.0)
    warmup_ratio: Share = _doc("Share of steps spent warming up the learning rate, in [0, 1).", default=0.0)
    warmup_steps: NonNeg = _doc("Warm-up steps (overrides warmup_ratio when > 0).", default=0)
    lr_scheduler_type: str = _doc("linear, cosine, constant, constant_with_warmup, ...", default="linear")
    max_grad_norm: Rate = _doc("Gradient clipping norm (0: no clipping).", default=1.0)
    max_length: Annotated[int, Ge(8)] = _doc("Max tokens of prompt + completion; longer examples are handled as data.too_long says.", default=1024)
    truncation_mode: Literal["keep_start", "keep_end"] = _doc("Which end of a long example to keep.", default="keep_start")
    logging_steps: Count = _doc("Log metrics every N optimizer steps (--log-steps).", default=10)
    eval_strategy: Literal["no", "steps", "epoch"] = _doc("When to evaluate.", default="steps")
    eval_steps: Count | None = _doc("Evaluate every N steps (default: every logging_steps x 5).", default=None)
    save_strategy: Literal["no", "steps", "epoch"] = _doc(
        "When to save resumable checkpoints (checkpoints/checkpoint-STEP): every save_steps, or at the end of every epoch "
        "(and every save_steps too when save_steps is given).",
        default="steps",
    )
    save_steps: Count | None = _doc(
        f"Save a checkpoint every N steps (--save-steps; default {DEFAULT_SAVE_STEPS} with save_strategy steps). With save_strategy epoch "
        "it adds step saves to the epoch ones.",
        default=None,
    )
    epoch_models: bool = _doc(
        "After every complete epoch, save the model with its tokenizer to RUN_DIR/epoch_N/ (like final/: loadable, "
        "never rotated), as the PyTorch pipeline's epoch_N/ (--epoch-models).",
        default=False,
    )
    save_total_limit: Count | None = _doc("Keep at most this many checkpoints (the newest complete and healthy one is never removed).", default=3)
    save_best: bool = _doc("Keep the model with the best eval metric in best/ (eval_loss; GRPO: answer accuracy, else reward).", default=True)
    seed: Seed = _doc("Seed for data order, dropout and the eval split.", default=42)
    optim: str = _doc(
        "Optimizer, a name of transformers' OptimizerNames (--optim): adamw_torch; adamw_8bit or paged_adamw_8bit keep "
        "its states in 8 bits, a quarter of the memory (bitsandbytes, CUDA; the usual pick with QLoRA).",
        default="adamw_torch",
    )
    gradient_checkpointing: bool = _doc("Recompute activations to save memory.", default=False)
    packing: bool = _doc("Pack several examples into one sequence of max_length.", default=False)
    fast: bool = _doc(
        "On a CUDA GPU, train faster than TRL's defaults with what works here, each named in one line as the run starts: "
        "Liger kernels, packing (best-fit decreasing, padding-free), gradient checkpointing only when memory needs it, "
        "dataloader workers (SFT; engine/train/fast.py). Nothing changes on a CPU; a key you set under trl: wins.",
        default=False,
    )
    longest_first: bool = _doc(
        "Train the first optimizer step on the longest examples, the rest in the usual shuffled order (--longest-first): "
        "a run whose longest batch does not fit in memory fails in its first minute, not after an hour. SFT without packing.",
        default=False,
    )
    nan_guard: bool = _doc(
        "Stop the run within one log when the loss or the weights turn NaN/Inf, and never save non-finite weights "
        "(--no-nan-guard: train on, as TRL does).",
        default=True,
    )
    report_to: str | list[str] = _doc("Trackers: none, tensorboard, wandb, trackio (events.jsonl is written whatever this says).", default="none")


# The seed's answer format: reasoning, then the answer between tags.
DEFAULT_GRPO_SYSTEM_PROMPT = (
    "You are given a problem. Think about the problem and provide your reasoning. Place it between "
    "<reasoning> and </reasoning>. Then, provide the final answer (i.e., just one numerical value) "
    "between <answer> and </answer>."
)


def _default_rewards() -> list[dict[str, Any]]:
    return [
        {"name": "exact_format", "weight": 1.0},
        {"name": "soft_format", "weight": 1.0},
        {"name": "correctness", "weight": 1.0},
        {"name": "number_match", "weight": 1.0},
    ]


@dataclass
class GrpoSection:
    num_generations: Annotated[int, Ge(2)] = _doc("Completions sampled per prompt (the group whose rewards are compared); at least 2.", default=4)
    beta: Rate = _doc("KL penalty against the frozen base model (0: no reference pass, less memory).", default=0.08)
    epsilon: Annotated[float, Gt(0)] = _doc("PPO-style clipping range of the probability ratio.", default=0.2)
    temperature: Annotated[float, Gt(0)] = _doc("Sampling temperature of the completions.", default=0.9)
    top_k: NonNeg = _doc("Sample from the k most likely tokens (0: all).", default=50)
    top_p: Annotated[float, Gt(0), Le(1)] = _doc("Nucleus sampling threshold, in (0, 1] (1.0: off).", default=1.0)
    max_prompt_length: Count = _doc("Prompts longer than this many tokens (system prompt and template included) are dropped before training.", default=256)
    max_completion_length: Count = _doc("Most new tokens per completion; longer ones are cut off (clipped).", default=512)
    rewards: list[dict[str, Any]] | dict[str, float] = _doc(
        "Reward functions and their weights: [{name: correctness, weight: 1.0}, ...] or {correctness: 1.0, ...}. "
        "Names: exact_format, soft_format, correctness, number_match (built in), TRL's think_format_reward, "
        "accuracy_reward, reasoning_accuracy_reward, or a function from grpo.reward_files.",
        default_factory=_default_rewards,
    )
    reward_files: list[str] = _doc(
        "Your own reward functions as path.py:function (repeatable --reward); each gets weight 1.0 unless grpo.rewards names it. "
        "Called as fn(prompts, completions, answer, **columns) -> one float (or None) per completion.",
        default_factory=list,
    )
    system_prompt: str | None = _doc("System message asking for the answer format, added to prompts that have none (null: none).", default=DEFAULT_GRPO_SYSTEM_PROMPT)
    answer_field: str | None = _doc("Column holding the ground truth; default: the record's completion (for GSM8K, the number after ####).", default=None)
    reasoning_start: str = _doc("Tag that opens the reasoning (format rewards).", default="<reasoning>")
    reasoning_end: str = _doc("Tag that closes the reasoning.", default="</reasoning>")
    answer_start: str = _doc("Tag that opens the answer (format and correctness rewards).", default="<answer>")
    answer_end: str = _doc("Tag that closes the answer.", default="</answer>")
    eval_prompts: NonNeg = _doc("Evaluate on at most this many validation prompts (each is generated for; 0: all).", default=64)
    generations_to_log: NonNeg = _doc("Prompt groups shown in each generations event (with every completion and its rewards).", default=2)
    reward_check: bool = _doc(
        "Before training, sample one group for a few prompts and score it with the run's rewards: a red finding when no group "
        "has any reward spread, every completion is clipped, or a reward function scores every completion alike; the run "
        "refuses to train when no group has any spread (--skip-reward-check: train anyway).",
        default=True,
    )
    reward_check_prompts: Count = _doc("Prompts the reward check samples a group for.", default=4)
    end_bias: Rate = _doc(
        "Logit bias toward the end-of-turn token while sampling completions (0: none). A model that never ends its turn "
        "(a base model, builtin:tiny) then finishes some completions, so a reward for stopping has something to reward.",
        default=0.0,
    )


SECTIONS: dict[str, type] = {
    "run": RunSection,
    "model": ModelSection,
    "lora": LoraSection,
    "data": DataSection,
    "train": TrainSection,
    "grpo": GrpoSection,
}
# Free-form sections: keys passed to TRL's own config class, checked against it by the engine.
PASSTHROUGH = ("trl",)
# TRL keys the run dir owns: a run must keep its checkpoints where --resume finds them.
RUN_DIR_OWNED = ("output_dir", "overwrite_output_dir", "resume_from_checkpoint", "logging_dir")
# Preset-only keys.
PRESET_META = ("builtin_tiny",)


def section_fields(section: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(SECTIONS[section])}


def known_keys() -> list[str]:
    return [f"{s}.{k}" for s in SECTIONS for k in section_fields(s)]


def defaults() -> dict[str, dict[str, Any]]:
    """The schema's defaults as a nested dict."""
    out: dict[str, dict[str, Any]] = {s: dataclasses.asdict(cls()) for s, cls in SECTIONS.items()}
    for s in PASSTHROUGH:
        out[s] = {}
    return out


def field_help() -> dict[str, str]:
    """section.key -> help text, for the CLI, the form and `presets show`."""
    return {f"{s}.{k}": f.metadata.get("help", "") for s in SECTIONS for k, f in section_fields(s).items()}
