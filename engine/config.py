"""One schema for every run: sections of typed fields whose docstrings become the help.

Layers, later wins: schema defaults < preset (< its `builtin_tiny` block when the model is
builtin:tiny) < `--config` file < flags < `--set section.key=value`. Unknown keys are errors that
name the nearest known key. YAML is read with the safe loader; no config executes code.
Standard library and PyYAML only: the cockpit validates a config before it starts the engine.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"


class ConfigError(ValueError):
    """A config a user wrote that cannot run; the message is one line naming the key and the fix."""


def _doc(text: str, **kw: Any) -> Any:
    """A field with its help text kept in the metadata (shown by `cockpit presets show`)."""
    return field(metadata={"help": text}, **kw)


@dataclass
class RunSection:
    type: Literal["sft", "grpo"] = _doc("What to train: supervised fine-tuning or GRPO.", default="sft")
    name: str | None = _doc("Run name; the run dir is runs/<name>-<timestamp>. Defaults to the preset.", default=None)
    runs_dir: str = _doc("Where new run dirs are made.", default="runs")
    gpus: int = _doc(
        "Processes to train with, one per GPU (--gpus); more than 1 launches the engine under torchrun. "
        "On a machine without CUDA they are CPU processes talking over gloo.",
        default=1,
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
    name_or_path: str = _doc("Hub id, local directory, or builtin:tiny (a small random model, no download).", default="builtin:tiny")
    finetune: Literal["lora", "qlora", "full"] = _doc("LoRA adapters, QLoRA (4-bit base, CUDA only), or full fine-tuning.", default="lora")
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = _doc("Training precision; auto: bf16 where the GPU has it, else fp16, fp32 on CPU.", default="auto")
    tiny_seed: int = _doc("Seed that initialises builtin:tiny's weights.", default=0)
    chat_template: str | None = _doc("A .jinja file that replaces the tokenizer's chat template (for models that have none).", default=None)
    trust_remote_code: bool = _doc("Allow model code from the hub repo to run.", default=False)
    attn_implementation: str | None = _doc("Attention kernel, e.g. sdpa, eager, flash_attention_2.", default=None)
    revision: str | None = _doc("Hub revision (branch, tag or commit).", default=None)


@dataclass
class LoraSection:
    r: int = _doc("LoRA rank.", default=16)
    alpha: int = _doc("LoRA alpha (scale = alpha / r).", default=32)
    dropout: float = _doc("Dropout on the LoRA path.", default=0.05)
    target_modules: str | list[str] = _doc("Modules to adapt: all-linear, or a list such as [q_proj, v_proj].", default="all-linear")
    bias: Literal["none", "all", "lora_only"] = _doc("Which biases train.", default="none")


@dataclass
class DataSection:
    path: str | None = _doc("Training data: JSON, JSONL or CSV.", default=None)
    eval_path: str | None = _doc("A separate eval file; otherwise `metadata` or eval_split decides.", default=None)
    format: str = _doc("auto, or one of: messages, sharegpt, prompt-completion, alpaca, input-output, question-answer, nli, text, mapped.", default="auto")
    eval_split: float = _doc("Share of records held out for eval when the data has no train/eval metadata (0: none).", default=0.1)
    split_field: str = _doc("Record field whose value, exactly train or eval, decides the split.", default="metadata")
    prompt_template: str | None = _doc("Prompt from any columns, e.g. 'Premise: {premise}\\nHypothesis: {hypothesis}'.", default=None)
    completion_template: str | None = _doc("Completion from any columns, e.g. '{label}'.", default=None)
    system_prompt: str | None = _doc("System message added to records that have none.", default=None)
    loss_on: Literal["completion", "assistant", "all"] = _doc("Train on the last assistant turn (completion), every assistant turn, or every token.", default="completion")
    chat: bool = _doc("Render prompt/completion data through the chat template (false: plain text).", default=True)
    samples: int = _doc("How many prepared training examples to show, decoded with their masks.", default=3)


@dataclass
class TrainSection:
    num_train_epochs: float = _doc("Passes over the training data.", default=3.0)
    max_steps: int = _doc("Stop after this many optimizer steps (-1: run all epochs).", default=-1)
    per_device_train_batch_size: int = _doc("Micro batch per device; lower it when out of memory.", default=4)
    per_device_eval_batch_size: int | None = _doc("Eval batch per device (default: the train batch).", default=None)
    gradient_accumulation_steps: int = _doc("Micro batches per optimizer step; effective batch = batch x this x GPUs.", default=1)
    learning_rate: float = _doc("Peak learning rate.", default=2e-4)
    weight_decay: float = _doc("AdamW weight decay.", default=0.0)
    warmup_ratio: float = _doc("Share of steps spent warming up the learning rate.", default=0.0)
    warmup_steps: int = _doc("Warm-up steps (overrides warmup_ratio when > 0).", default=0)
    lr_scheduler_type: str = _doc("linear, cosine, constant, constant_with_warmup, ...", default="linear")
    max_grad_norm: float = _doc("Gradient clipping norm.", default=1.0)
    max_length: int = _doc("Max tokens of prompt + completion; longer examples are truncated.", default=1024)
    truncation_mode: Literal["keep_start", "keep_end"] = _doc("Which end of a long example to keep.", default="keep_start")
    logging_steps: int = _doc("Log metrics every N optimizer steps.", default=10)
    eval_strategy: Literal["no", "steps", "epoch"] = _doc("When to evaluate.", default="steps")
    eval_steps: int | None = _doc("Evaluate every N steps (default: every logging_steps x 5).", default=None)
    save_strategy: Literal["no", "steps", "epoch"] = _doc("When to save checkpoints.", default="steps")
    save_steps: int = _doc("Save a checkpoint every N steps.", default=500)
    save_total_limit: int | None = _doc("Keep at most this many checkpoints (the best is kept too).", default=3)
    save_best: bool = _doc("Keep the model with the lowest eval_loss in best/.", default=True)
    seed: int = _doc("Seed for data order, dropout and the eval split.", default=42)
    optim: str = _doc(
        "Optimizer, a name of transformers' OptimizerNames (--optim): adamw_torch; adamw_8bit or paged_adamw_8bit keep "
        "its states in 8 bits, a quarter of the memory (bitsandbytes, CUDA; the usual pick with QLoRA).",
        default="adamw_torch",
    )
    gradient_checkpointing: bool = _doc("Recompute activations to save memory.", default=False)
    packing: bool = _doc("Pack several examples into one sequence of max_length.", default=False)
    longest_first: bool = _doc(
        "Train the first optimizer step on the longest examples, the rest in the usual shuffled order (--longest-first): "
        "a run whose longest batch does not fit in memory fails in its first minute, not after an hour. SFT without packing.",
        default=False,
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
    num_generations: int = _doc("Completions sampled per prompt (the group whose rewards are compared); at least 2.", default=4)
    beta: float = _doc("KL penalty against the frozen base model (0: no reference pass, less memory).", default=0.08)
    epsilon: float = _doc("PPO-style clipping range of the probability ratio.", default=0.2)
    temperature: float = _doc("Sampling temperature of the completions.", default=0.9)
    top_k: int = _doc("Sample from the k most likely tokens (0: all).", default=50)
    top_p: float = _doc("Nucleus sampling threshold (1.0: off).", default=1.0)
    max_prompt_length: int = _doc("Prompts longer than this many tokens (system prompt and template included) are dropped before training.", default=256)
    max_completion_length: int = _doc("Most new tokens per completion; longer ones are cut off (clipped).", default=512)
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
    eval_prompts: int = _doc("Evaluate on at most this many validation prompts (each is generated for; 0: all).", default=64)
    generations_to_log: int = _doc("Prompt groups shown in each generations event (with every completion and its rewards).", default=2)


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
# Preset-only keys.
PRESET_META = ("builtin_tiny",)

_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
SECRET_PATTERN = re.compile(r"(token|api[_-]?key|secret|password)", re.IGNORECASE)


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


def _nearest(key: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else f"; known: {', '.join(candidates)}"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return "list"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, value) for a value against a field type; ints widen to floats, nothing else converts."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return (value in typing.get_args(tp), value)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, v = _coerce(value, arg)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            return False, value
        return all(_coerce(v, item)[0] for v in value), value
    if tp is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            return True, float(value)  # YAML 1.1 reads 1e-5 (no dot) as a string
        if isinstance(value, (int, float)):
            return True, float(value)
        return False, value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is str:
        return isinstance(value, str), value
    return True, value


def _resolved_types(section: str) -> dict[str, Any]:
    return typing.get_type_hints(SECTIONS[section])


def check_section_value(section: str, key: str, value: Any, source: str) -> Any:
    """Validate one value against the schema; returns it coerced. Raises ConfigError."""
    fields = section_fields(section)
    if key not in fields:
        raise ConfigError(f"{source}: unknown key '{section}.{key}'{_nearest(f'{section}.{key}', known_keys())}")
    tp = _resolved_types(section)[key]
    ok, coerced = _coerce(value, tp)
    if not ok:
        raise ConfigError(
            f"{source}: '{section}.{key}' must be {_type_name(tp)}, got {value!r}; "
            f"fix it in {source} (help: {fields[key].metadata.get('help', '')})"
        )
    return coerced


def validate_layer(layer: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    """Check a nested layer (a preset, a config file): known sections, known keys, right types."""
    if not isinstance(layer, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (model:, train:, ...), got {type(layer).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for section, values in layer.items():
        if section in PRESET_META:
            continue
        if section not in SECTIONS and section not in PASSTHROUGH:
            raise ConfigError(f"{source}: unknown section '{section}'{_nearest(str(section), list(SECTIONS) + list(PASSTHROUGH))}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section '{section}' must be a mapping of keys, got {values!r}")
        if section in PASSTHROUGH:
            out[section] = dict(values)
            continue
        out[section] = {k: check_section_value(section, str(k), v, source) for k, v in values.items()}
    return out


def parse_override(text: str, source: str = "--set") -> tuple[str, str, Any]:
    """`section.key=value` -> (section, key, value); the value is read as YAML (1e-5, true, [a, b])."""
    if "=" not in text:
        raise ConfigError(f"{source} {text!r}: expected section.key=value, e.g. --set train.learning_rate=1e-5")
    dotted, raw = text.split("=", 1)
    if "." not in dotted:
        raise ConfigError(f"{source} {text!r}: expected section.key=value, e.g. --set train.learning_rate=1e-5")
    section, key = dotted.strip().split(".", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return section, key, value


def dotted_to_layer(overrides: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    """{"train.max_length": 2048} -> a validated nested layer."""
    layer: dict[str, dict[str, Any]] = {}
    for dotted, value in overrides.items():
        if "." not in dotted:
            raise ConfigError(f"{source}: '{dotted}' is not section.key{_nearest(dotted, known_keys())}")
        section, key = dotted.split(".", 1)
        layer.setdefault(section, {})[key] = value
    return validate_layer(layer, source)


def merge(base: dict[str, dict[str, Any]], layer: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = copy.deepcopy(base)
    for section, values in layer.items():
        out.setdefault(section, {}).update(copy.deepcopy(values))
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)}); fix the file's syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (model:, train:, ...), got {type(data).__name__}")
    return data


PATH_KEYS = (("data", "path"), ("data", "eval_path"), ("model", "chat_template"))


def _resolve_paths(layer: dict[str, dict[str, Any]], base: Path) -> dict[str, dict[str, Any]]:
    """Paths in a config file are relative to that file, so a preset works from any directory."""
    for section, key in PATH_KEYS:
        value = layer.get(section, {}).get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            layer[section][key] = str((base / value).resolve())
    files = layer.get("grpo", {}).get("reward_files")
    if isinstance(files, list):
        layer["grpo"]["reward_files"] = [resolve_reward_file(f, base) for f in files]
    # A relative local model dir in a file, if it exists there.
    name = layer.get("model", {}).get("name_or_path")
    if isinstance(name, str) and name.startswith((".", "/")) and not Path(name).is_absolute():
        layer["model"]["name_or_path"] = str((base / name).resolve())
    return layer


def resolve_reward_file(spec: Any, base: Path) -> Any:
    """`path.py:function` with the path made absolute against `base` (the file that names it)."""
    if not isinstance(spec, str) or ":" not in spec:
        return spec  # check_grpo names the problem
    path, func = spec.rsplit(":", 1)
    if path and not Path(path).expanduser().is_absolute():
        path = str((base / Path(path).expanduser()).resolve())
    return f"{path}:{func}"


def reward_weights(value: Any, source: str = "grpo.rewards") -> list[tuple[str, float]]:
    """grpo.rewards as (name, weight) pairs, from a list of {name, weight} or a {name: weight} mapping."""
    if isinstance(value, dict):
        items = [{"name": k, "weight": v} for k, v in value.items()]
    elif isinstance(value, list):
        items = [{"name": v} if isinstance(v, str) else v for v in value]
    else:
        raise ConfigError(f"{source} must be a list such as [{{name: correctness, weight: 1.0}}] or a mapping {{correctness: 1.0}}, got {value!r}")
    out: list[tuple[str, float]] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or set(item) - {"name", "weight"}:
            raise ConfigError(f"{source}: each entry needs a name and an optional weight, e.g. {{name: correctness, weight: 1.0}}; got {item!r}")
        weight = item.get("weight", 1.0)
        if isinstance(weight, str) and _FLOAT.fullmatch(weight.strip()):
            weight = float(weight)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ConfigError(f"{source}: the weight of '{item['name']}' must be a number, got {weight!r}")
        if item["name"] in (n for n, _ in out):
            raise ConfigError(f"{source}: '{item['name']}' is listed twice; list each reward once")
        out.append((item["name"], float(weight)))
    return out


def check_grpo(cfg: dict[str, dict[str, Any]]) -> None:
    """The grpo section's cross-field rules (checked for every run type: a typo should not wait)."""
    g = cfg.get("grpo") or {}
    if not g:
        return
    if g["num_generations"] < 2:
        raise ConfigError(f"grpo.num_generations must be at least 2 (GRPO compares completions within a group), got {g['num_generations']}")
    for key in ("max_prompt_length", "max_completion_length"):
        if g[key] < 1:
            raise ConfigError(f"grpo.{key} must be at least 1, got {g[key]}")
    if g["temperature"] <= 0:
        raise ConfigError(f"grpo.temperature must be > 0 (sampling), got {g['temperature']}")
    if not 0 < g["top_p"] <= 1:
        raise ConfigError(f"grpo.top_p must be in (0, 1], got {g['top_p']}")
    weights = reward_weights(g["rewards"])
    for spec in g["reward_files"]:
        path, _, func = spec.rpartition(":")
        if not path or not func or not path.endswith(".py"):
            raise ConfigError(f"grpo.reward_files: '{spec}' must be path.py:function, e.g. --reward my_rewards.py:length_penalty")
    if cfg["run"]["type"] == "grpo" and not weights and not g["reward_files"]:
        raise ConfigError("grpo.rewards is empty: name at least one reward, e.g. --set 'grpo.rewards={correctness: 1.0}', or add --reward file.py:function")


def check_train(cfg: dict[str, dict[str, Any]]) -> None:
    """The train section's cross-field rules."""
    t = cfg["train"]
    if t.get("longest_first") and t.get("packing"):
        raise ConfigError("train.longest_first does nothing with train.packing=true (every packed sequence is max_length long); drop one of them")
    if t.get("longest_first") and cfg["run"]["type"] == "grpo":
        raise ConfigError("train.longest_first is for SFT: a GRPO batch's length comes from the completions it generates; "
                          "drop --longest-first (grpo.max_completion_length bounds that length)")


# ---- presets ---------------------------------------------------------------------------------


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        names = preset_names()
        raise ConfigError(f"unknown preset '{name}'{_nearest(name, names) if names else ''}; `cockpit presets list` shows them all")
    return path


def preset_summary(name: str) -> str:
    """The first comment line of a preset: what it is for."""
    for line in preset_path(name).read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def load_preset(name: str) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(layer, builtin_tiny layer) of a preset, validated, paths resolved against presets/."""
    path = preset_path(name)
    raw = read_yaml(path)
    layer = _resolve_paths(validate_layer(raw, str(path)), path.parent)
    tiny_raw = raw.get("builtin_tiny") or {}
    if not isinstance(tiny_raw, dict):
        raise ConfigError(f"{path}: 'builtin_tiny' must map section.key to a value")
    tiny = _resolve_paths(dotted_to_layer(tiny_raw, f"{path} (builtin_tiny)"), path.parent)
    return layer, tiny


# ---- resolution ------------------------------------------------------------------------------


def resolve(
    preset: str | None = None,
    config_file: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    sets: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The fully resolved config: defaults < preset (< builtin_tiny block) < file < flags < --set."""
    preset_layer: dict[str, dict[str, Any]] = {}
    tiny_layer: dict[str, dict[str, Any]] = {}
    if preset:
        preset_layer, tiny_layer = load_preset(preset)
        preset_layer = merge(preset_layer, {"run": {"name": preset_layer.get("run", {}).get("name") or preset}})
    file_layer: dict[str, dict[str, Any]] = {}
    if config_file:
        path = Path(config_file)
        raw = read_yaml(path)
        file_layer = _resolve_paths(validate_layer(raw, str(path)), path.resolve().parent)
    flag_layer = dotted_to_layer({k: v for k, v in (flags or {}).items() if v is not None}, "flag")
    set_layer: dict[str, dict[str, Any]] = {}
    for text in sets or []:
        section, key, value = parse_override(text)
        if section in PASSTHROUGH:
            set_layer.setdefault(section, {})[key] = value
        else:
            try:
                checked = validate_layer({section: {key: value}}, f"--set {text}")
            except ConfigError:
                # A template such as "Premise: {premise}" reads as a YAML mapping; a str field takes the raw text.
                raw = text.split("=", 1)[1]
                if value == raw:
                    raise
                checked = validate_layer({section: {key: raw}}, f"--set {text}")
            set_layer = merge(set_layer, checked)

    layers = [preset_layer, file_layer, flag_layer, set_layer]
    cfg = defaults()
    for layer in layers:
        cfg = merge(cfg, layer)
    if tiny_layer and is_builtin_tiny(cfg["model"]["name_or_path"]):
        cfg = defaults()
        for layer in [preset_layer, tiny_layer, *layers[1:]]:
            cfg = merge(cfg, layer)
    check_consistency(cfg)
    return cfg


def is_builtin_tiny(name: str) -> bool:
    return name == "builtin:tiny"


def check_consistency(cfg: dict[str, dict[str, Any]]) -> None:
    """Cross-field rules that no single value can break."""
    if not cfg["data"].get("path"):
        raise ConfigError("no dataset: pass --dataset PATH (or set data.path in the preset or --config file)")
    split = cfg["data"]["eval_split"]
    if not 0.0 <= split < 1.0:
        raise ConfigError(f"data.eval_split must be in [0, 1), got {split}; e.g. --eval-split 0.1")
    train = cfg["train"]
    for key in ("per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "logging_steps", "save_steps"):
        if train[key] < 1:
            raise ConfigError(f"train.{key} must be at least 1, got {train[key]}")
    if train["learning_rate"] < 0:
        raise ConfigError(f"train.learning_rate must be >= 0, got {train['learning_rate']}")
    if train["num_train_epochs"] <= 0 and train["max_steps"] <= 0:
        raise ConfigError("train.num_train_epochs must be > 0 (or set train.max_steps)")
    check_grpo(cfg)
    check_train(cfg)
    if cfg["run"]["gpus"] < 1:
        raise ConfigError(f"run.gpus must be at least 1, got {cfg['run']['gpus']}; e.g. --gpus 2")
    if cfg["model"]["finetune"] == "full" and cfg["lora"] != defaults()["lora"]:
        pass  # lora settings are simply unused with full fine-tuning


def redact(cfg: Any) -> Any:
    """A copy with secrets (tokens, API keys, passwords) replaced, for config.yaml and events."""
    if isinstance(cfg, dict):
        return {k: ("***" if SECRET_PATTERN.search(str(k)) and v not in (None, "", False) else redact(v)) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [redact(v) for v in cfg]
    return cfg


def dump(cfg: dict[str, Any]) -> str:
    return yaml.safe_dump(redact(cfg), sort_keys=False, allow_unicode=True)


def load_run_config(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The resolved config saved in a run dir, validated again."""
    path = Path(run_dir) / "config.yaml"
    raw = read_yaml(path)
    cfg = merge(defaults(), validate_layer(raw, str(path)))
    return cfg


def field_help() -> dict[str, str]:
    """section.key -> help text, for documentation and `presets show`."""
    return {f"{s}.{k}": f.metadata.get("help", "") for s in SECTIONS for k, f in section_fields(s).items()}
