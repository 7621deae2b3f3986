"""Loading the tokenizer and the model: builtin:tiny, builtin:shape:NAME, a local directory, or a hub id.

LoRA through peft by default, QLoRA (4-bit NF4 through bitsandbytes) where CUDA is present, full
fine-tuning by one switch.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from engine.model import builtin_shape, tiny
from engine.errors import EngineError

NO_NETWORK_HINT = "use --model builtin:tiny (no download) or --model ./path/to/a/local/model/dir"



def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the hub, so an offline machine fails in seconds, not after retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def model_source(name: str) -> dict[str, Any]:
    """kwargs that make from_pretrained read a local dir or the cache, or fail fast when offline."""
    if tiny.is_tiny(name) or builtin_shape.is_shape(name):
        return {}
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise EngineError("config", f"model directory {path} has no config.json; point --model at a saved Hugging Face model")
        return {}
    if name.startswith((".", "/", "~")):
        raise EngineError("config", f"model directory {name} does not exist; {NO_NETWORK_HINT}")
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return {"local_files_only": not hub_reachable()}
    if not hub_reachable():
        raise EngineError("config", f"cannot download model '{name}': the Hugging Face hub is not reachable and it is not in the local cache; {NO_NETWORK_HINT}")
    return {}


def load_tokenizer(cfg: dict[str, Any]):
    """The tokenizer with a pad token and, where configured, a replacement chat template."""
    mcfg = cfg["model"]
    name = mcfg["name_or_path"]
    if tiny.is_tiny(name) or builtin_shape.is_shape(name):
        tokenizer = tiny.load_tokenizer()
    else:
        from transformers import AutoTokenizer

        kwargs = model_source(name)
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                name, trust_remote_code=mcfg["trust_remote_code"], revision=mcfg["revision"], **kwargs
            )
        except OSError as exc:
            raise EngineError("config", f"cannot load tokenizer for '{name}': {str(exc).splitlines()[0]}; {NO_NETWORK_HINT}") from None
    if mcfg.get("chat_template"):
        path = Path(mcfg["chat_template"])
        if not path.is_file():
            raise EngineError("config", f"model.chat_template: no such file {path}")
        tokenizer.chat_template = path.read_text(encoding="utf-8")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def torch_dtype(precision: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def load_model(cfg: dict[str, Any], precision: str):
    """The base model in the training precision (4-bit for QLoRA), not yet wrapped by peft."""
    import torch

    mcfg = cfg["model"]
    name = mcfg["name_or_path"]
    finetune = mcfg["finetune"]
    if finetune == "qlora" and not torch.cuda.is_available():
        raise EngineError("config", "QLoRA loads the model in 4-bit through bitsandbytes, which needs a CUDA GPU; use --set model.finetune=lora on this machine")
    # Weights stay fp32 for full fine-tuning under mixed precision (the optimizer needs fp32 masters);
    # a frozen LoRA base can sit in the half precision it computes in.
    if finetune == "full" or precision == "fp32":
        dtype = torch.float32
    else:
        dtype = torch_dtype(precision)
    if tiny.is_tiny(name):
        if finetune == "qlora":
            raise EngineError("config", "builtin:tiny cannot be quantised; use --set model.finetune=lora")
        return tiny.build_model(seed=mcfg["tiny_seed"], dtype=dtype)
    shape = builtin_shape.is_shape(name)
    if shape and finetune != "qlora":
        return builtin_shape.build_model(name, tiny.load_tokenizer(), mcfg["tiny_seed"], dtype, mcfg["attn_implementation"])

    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": mcfg["trust_remote_code"], "revision": mcfg["revision"]}
    kwargs.update(model_source(name))
    if mcfg["attn_implementation"]:
        kwargs["attn_implementation"] = mcfg["attn_implementation"]
    if finetune == "qlora":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise EngineError("config", "QLoRA needs bitsandbytes: pip install bitsandbytes") from None
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if precision == "bf16" else torch.float16
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute
        )
        kwargs["dtype"] = compute
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        kwargs["device_map"] = {"": local_rank}
    try:
        if shape:
            model = builtin_shape.build_quantized(name, tiny.load_tokenizer(), mcfg["tiny_seed"], kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    except OSError as exc:
        raise EngineError("config", f"cannot load model '{name}': {str(exc).splitlines()[0]}; {NO_NETWORK_HINT}") from None
    if finetune == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg["train"]["gradient_checkpointing"])
    return model


def peft_config(cfg: dict[str, Any]):
    """peft's LoraConfig for LoRA and QLoRA; None for full fine-tuning."""
    if cfg["model"]["finetune"] == "full":
        return None
    from peft import LoraConfig

    lcfg = cfg["lora"]
    return LoraConfig(
        r=lcfg["r"],
        lora_alpha=lcfg["alpha"],
        lora_dropout=lcfg["dropout"],
        target_modules=lcfg["target_modules"],
        bias=lcfg["bias"],
        task_type="CAUSAL_LM",
    )
