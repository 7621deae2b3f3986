"""`builtin:shape:NAME`: a randomly initialised model with a real model's shapes, for measuring
memory and speed on a GPU without downloading anything.

`engine/model/builtin_shapes/NAME.json` are the config.json files (no weights) of
Qwen/Qwen2.5-0.5B-Instruct (`qwen2.5-0.5b`), meta-llama/Llama-3.2-1B-Instruct (`llama-3.2-1b`) and
mistralai/Mistral-7B-Instruct-v0.3 (`mistral-7b`). The model is built from that config with weights
drawn from `model.tiny_seed`, and trains with builtin:tiny's tokenizer: its ids all sit inside
every shipped vocabulary, so the embeddings and the LM head keep the real model's size (its memory
and its FLOPs) while only their first rows are ever read. The memory estimate reads the same file
(engine/model/shape.py). What it learns means nothing; what it costs is the real model's cost.

Standard library at import: `cockpit run` checks a name before anything heavy loads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engine.errors import EngineError

PREFIX = "builtin:shape:"
FILES_DIR = Path(__file__).resolve().parent / "builtin_shapes"


def is_shape(name: object) -> bool:
    """Whether a `--model` value names a builtin shape (known or not: check_name says which)."""
    return isinstance(name, str) and name.strip().lower().startswith(PREFIX)


def names() -> list[str]:
    """The shipped shapes, e.g. ['llama-3.2-1b', 'mistral-7b', 'qwen2.5-0.5b']."""
    return sorted(p.stem for p in FILES_DIR.glob("*.json"))


def _key(name: str) -> str:
    return name.strip().lower()[len(PREFIX):]


def check_name(name: str) -> str | None:
    """One line naming the problem when `name` is a builtin shape that does not exist; None when it does."""
    if not is_shape(name) or _key(name) in names():
        return None
    known = ", ".join(PREFIX + n for n in names())
    return f"model.name_or_path: no builtin shape '{_key(name)}'; the shipped ones are {known} (or builtin:tiny)"


def config_dict(name: str) -> dict[str, Any]:
    """The shipped config.json of a shape, as a dict (raises EngineError for an unknown name)."""
    problem = check_name(name)
    if problem:
        raise EngineError("config", problem, key="model.name_or_path")
    return json.loads((FILES_DIR / f"{_key(name)}.json").read_text(encoding="utf-8"))


def hf_config(name: str, tokenizer: Any, attn_implementation: str | None = None):
    """The transformers config of a shape, its special token ids those of the builtin tokenizer."""
    from transformers import AutoConfig

    values = config_dict(name)
    if len(tokenizer) > values["vocab_size"]:
        # Ids past the embedding table would index out of range on the GPU (a device-side assert).
        raise EngineError("config", f"{name}: the builtin tokenizer has {len(tokenizer)} ids but the shape's vocabulary "
                          f"only {values['vocab_size']}; use another shape", key="model.name_or_path")
    values.update(bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model_type = values.pop("model_type")
    config = AutoConfig.for_model(model_type, **values)
    if attn_implementation:
        config._attn_implementation = attn_implementation
    return config


def _build_device():
    """Where the weights are drawn: the GPU a single-process run trains on (seconds even for 7B,
    where the CPU takes minutes), else the CPU (several processes: the launcher places them)."""
    import torch

    if torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def build_model(name: str, tokenizer: Any, seed: int, dtype: Any, attn_implementation: str | None = None, device: Any = None):
    """The shape's causal LM with weights drawn from `seed` (the same seed and device give the same weights).

    The seed is applied inside a forked RNG, so the caller's RNG state is untouched.
    """
    import torch
    from transformers import AutoModelForCausalLM

    config = hf_config(name, tokenizer, attn_implementation)
    device = _build_device() if device is None else torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        with device:
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    return model


def build_quantized(name: str, tokenizer: Any, seed: int, load_kwargs: dict[str, Any]):
    """The shape loaded the way a QLoRA run loads a hub model: from_pretrained with its
    quantization_config and device_map, reading the random weights from memory instead of files."""
    import gc

    import torch

    compute = load_kwargs.get("dtype", torch.bfloat16)
    source = build_model(name, tokenizer, seed, compute, attn_implementation=load_kwargs.get("attn_implementation"))
    state = source.state_dict()
    kwargs = {k: v for k, v in load_kwargs.items() if k not in ("revision", "local_files_only")}
    # The concrete class: only PreTrainedModel.from_pretrained takes a state dict without a path.
    model = type(source).from_pretrained(None, config=source.config, state_dict=state, **kwargs)
    del source, state
    gc.collect()
    if torch.cuda.is_available():
        # The full-precision copy the quantiser read from is no part of the run: its memory is given
        # back and forgotten, so the run's peak is what a QLoRA model loaded from disk would reach.
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    return model
