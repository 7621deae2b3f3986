"""model.gguf beside an exported model, for llama.cpp and the tools built on it (the `gguf` package).

Written here for the families whose layout and tokenizer this knows: Llama and Mistral (GGUF's llama
architecture, q/k rows permuted as llama.cpp's converter does) and Qwen2, each with a byte-level BPE
tokenizer (Llama 3, Qwen2, builtin:tiny). Matrices in float16, norms in float32, as llama.cpp's
converter writes with --outtype f16. For any other model the error names llama.cpp's own converter.
The file is checked by loading it back with transformers' GGUF reader and comparing its logits with
the exported model's.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from engine.export.plan import ExportError

FILE = "model.gguf"
# transformers model_type -> (GGUF architecture, whether q/k rows are permuted for llama.cpp's rope)
ARCHITECTURES = {"llama": ("llama", True), "mistral": ("llama", True), "qwen2": ("qwen2", False)}
CONVERTER = "llama.cpp's convert_hf_to_gguf.py MODEL_DIR --outtype f16"


def check_supported(config: dict[str, Any], tokenizer_json: dict[str, Any] | None) -> None:
    """Refuse a model this writer does not know, before any work is done."""
    kind = config.get("model_type")
    if kind not in ARCHITECTURES:
        raise ExportError(f"--gguf: {kind} models are not written here (llama, mistral, qwen2 are); export without --gguf "
                          f"and run {CONVERTER}", key="gguf")
    model = (tokenizer_json or {}).get("model") or {}
    pre = json.dumps((tokenizer_json or {}).get("pre_tokenizer") or {})
    if model.get("type") != "BPE" or "ByteLevel" not in pre:
        raise ExportError(f"--gguf: the tokenizer is not byte-level BPE (a SentencePiece one needs scores this writer does not "
                          f"make); export without --gguf and run {CONVERTER}", key="gguf")


def _permute(weights: Any, heads: int) -> Any:
    """HF's rotary layout (halves) to llama.cpp's (interleaved pairs), as its converter does."""
    return weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _tokenizer(writer: Any, model_dir: Path, config: dict[str, Any], kind: str) -> None:
    import gguf

    data = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    settings = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    vocab: dict[str, int] = dict(data["model"]["vocab"])
    special = {t["content"] for t in data.get("added_tokens", []) if t.get("special")}
    for token in data.get("added_tokens", []):
        vocab[token["content"]] = token["id"]
    size = max(config["vocab_size"], max(vocab.values()) + 1)
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for text, index in vocab.items():
        tokens[index] = text
        types[index] = gguf.TokenType.CONTROL if text in special else gguf.TokenType.NORMAL
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2" if kind == "qwen2" else "llama-bpe" if size > 100_000 else "gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for key, add in (("bos_token", writer.add_bos_token_id), ("eos_token", writer.add_eos_token_id), ("pad_token", writer.add_pad_token_id)):
        text = settings.get(key)
        text = text.get("content") if isinstance(text, dict) else text
        if text in vocab:
            add(vocab[text])
    template = model_dir / "chat_template.jinja"
    chat = template.read_text(encoding="utf-8") if template.is_file() else settings.get("chat_template")
    if chat:
        writer.add_chat_template(chat)


def write(model_dir: Path, target: Path) -> None:
    """model_dir (a saved transformers model) as one GGUF file."""
    import gguf
    import numpy as np
    from safetensors import safe_open

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    kind = config["model_type"]
    arch_name, permute = ARCHITECTURES[kind]
    arch = gguf.MODEL_ARCH.LLAMA if arch_name == "llama" else gguf.MODEL_ARCH.QWEN2
    layers, heads = config["num_hidden_layers"], config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    rope = config.get("rope_parameters") or {}
    writer = gguf.GGUFWriter(str(target), arch_name)
    writer.add_name(model_dir.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(layers)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    _tokenizer(writer, model_dir, config, kind)

    names = gguf.get_tensor_name_map(arch, layers)
    files = sorted(model_dir.glob("*.safetensors"))
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                if key == "lm_head.weight" and config.get("tie_word_embeddings"):
                    continue  # llama.cpp reads the tied output from token_embd
                name = names.get_name(key, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise ExportError(f"--gguf: no GGUF name for tensor {key}; run {CONVERTER}", key="gguf")
                array = f.get_tensor(key).float().numpy()
                if permute and key.endswith("q_proj.weight"):
                    array = _permute(array, heads)
                elif permute and key.endswith("k_proj.weight"):
                    array = _permute(array, kv_heads)
                writer.add_tensor(name, array.astype(np.float16) if array.ndim > 1 else array.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_and_check(model_dir: Path, cfg: dict[str, Any]) -> str:
    """Write model_dir/model.gguf, load it back with transformers' GGUF reader, compare logits; the line to print."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.export.check import compare, logits, prompt_ids

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    tokenizer_file = model_dir / "tokenizer.json"
    check_supported(config, json.loads(tokenizer_file.read_text(encoding="utf-8")) if tokenizer_file.is_file() else None)
    target = model_dir / FILE
    write(model_dir, target)
    ids = prompt_ids(AutoTokenizer.from_pretrained(str(model_dir)))
    reference = logits(AutoModelForCausalLM.from_pretrained(str(model_dir)).eval(), ids)
    with contextlib.redirect_stderr(io.StringIO()):  # transformers' GGUF reader draws a progress bar of its own
        loaded = AutoModelForCausalLM.from_pretrained(str(model_dir), gguf_file=FILE).eval()
    line = compare(reference, logits(loaded, ids), "fp16", f"{FILE} (float16) read back by transformers")
    return f"{line}; {FILE}: {target.stat().st_size / 2**20:.1f} MiB"
