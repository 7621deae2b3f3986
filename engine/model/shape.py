"""A model's shape without loading it: parameter counts, linear layers and sizes, for the memory estimate.

Standard library only (json, struct, pathlib): `cockpit run` and the TUI's form read it before
anything starts. Where a model's numbers come from, best first:

- builtin:tiny: engine/model/tiny.py's constants and the shipped tokenizer's vocabulary;
- builtin:shape:NAME: its shipped config.json (engine/model/builtin_shape.py builds the model from it);
- safetensors headers of a local directory or of a hub id in the Hugging Face cache: exact counts
  and per-tensor shapes. A file starts with a little-endian u64 header length and a JSON header
  {name: {dtype, shape, data_offsets}}; only that header is read, never the weights.
  `model.safetensors.index.json` names the shards;
- config.json alone (a hub id whose weights are not downloaded yet): the Llama / Qwen / Mistral /
  Gemma decoder formula from hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
  num_key_value_heads, head_dim, vocab_size and tie_word_embeddings (plus experts for MoE configs).

`model_shape()` returns None with a reason when nothing is known (an uncached hub id, offline).
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.model import builtin_shape, tiny

# A header longer than this is not a safetensors header (a guard against reading a wrong file whole).
MAX_HEADER_BYTES = 100 * 2**20
# Decoder families whose config.json leaves tie_word_embeddings out because they do not tie.
UNTIED_BY_DEFAULT = {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3", "olmo2"}
# Families whose q/k/v projections carry a bias.
QKV_BIAS = {"qwen2", "qwen2_moe"}


@dataclass
class Linear:
    """One linear layer (an nn.Linear's weight): its module name and its in/out features."""

    name: str
    in_features: int
    out_features: int

    @property
    def params(self) -> int:
        return self.in_features * self.out_features


@dataclass
class ModelShape:
    """What the estimate needs to know about a model."""

    name: str
    source: str  # "builtin:tiny", "safetensors headers", "config.json"
    params: int  # every parameter, tied weights once
    linears: list[Linear]  # 2-D weights outside the embeddings and the LM head (what LoRA and 4-bit touch)
    hidden_size: int
    intermediate_size: int  # per expert for MoE
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tied: bool
    experts_per_token: int = 1  # MoE: how many experts each token runs through
    model_type: str = ""  # config.json's model_type, e.g. "qwen2"
    stored_dtype: str = ""  # the checkpoint's dtype, e.g. "BF16" (informative)
    notes: list[str] = field(default_factory=list)

    @property
    def linear_params(self) -> int:
        return sum(lin.params for lin in self.linears)


class ShapeUnknown(Exception):
    """Nothing on this machine tells the model's size; the message says why in a few words."""


# ---- config.json ----------------------------------------------------------------------------


def _first(cfg: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if cfg.get(key) is not None:
            return cfg[key]
    return default


def _text_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The language model's part of a config (multimodal configs nest it under text_config)."""
    if "hidden_size" not in cfg and isinstance(cfg.get("text_config"), dict):
        merged = {k: v for k, v in cfg.items() if k != "text_config"}
        merged.update(cfg["text_config"])
        if "tie_word_embeddings" in cfg:
            merged["tie_word_embeddings"] = cfg["tie_word_embeddings"]
        return merged
    return cfg


@dataclass
class _Dims:
    hidden: int
    inter: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    experts: int
    experts_per_token: int
    shared_inter: int
    model_type: str


def _dims(cfg: dict[str, Any]) -> _Dims:
    cfg = _text_config(cfg)
    hidden = _first(cfg, "hidden_size", "n_embd", "d_model")
    layers = _first(cfg, "num_hidden_layers", "n_layer", "num_layers")
    heads = _first(cfg, "num_attention_heads", "n_head")
    vocab = _first(cfg, "vocab_size")
    if not all(isinstance(v, int) and v > 0 for v in (hidden, layers, heads, vocab)):
        raise ShapeUnknown("config.json lacks hidden_size, num_hidden_layers, num_attention_heads or vocab_size")
    model_type = str(cfg.get("model_type", ""))
    experts = int(_first(cfg, "num_local_experts", "num_experts", "n_routed_experts", default=0) or 0)
    inter = _first(cfg, "moe_intermediate_size") if experts else None
    inter = inter or _first(cfg, "intermediate_size", "n_inner", "ffn_dim", default=4 * hidden)
    return _Dims(
        hidden=hidden,
        inter=int(inter),
        layers=layers,
        heads=heads,
        kv_heads=int(_first(cfg, "num_key_value_heads", "num_kv_heads", default=heads)),
        head_dim=int(_first(cfg, "head_dim", default=hidden // heads)),
        vocab=vocab,
        tied=bool(cfg.get("tie_word_embeddings", model_type not in UNTIED_BY_DEFAULT)),
        experts=experts,
        experts_per_token=int(_first(cfg, "num_experts_per_tok", "moe_top_k", default=1) or 1) if experts else 1,
        shared_inter=int(_first(cfg, "shared_expert_intermediate_size", default=0) or 0),
        model_type=model_type,
    )


def _formula_linears(d: _Dims) -> list[Linear]:
    """The decoder's linear layers as Llama-family models lay them out."""
    out: list[Linear] = []
    q, kv = d.heads * d.head_dim, d.kv_heads * d.head_dim
    for i in range(d.layers):
        p = f"model.layers.{i}"
        out += [
            Linear(f"{p}.self_attn.q_proj", d.hidden, q),
            Linear(f"{p}.self_attn.k_proj", d.hidden, kv),
            Linear(f"{p}.self_attn.v_proj", d.hidden, kv),
            Linear(f"{p}.self_attn.o_proj", q, d.hidden),
        ]
        mlps = [f"{p}.mlp"] if not d.experts else [f"{p}.mlp.experts.{e}" for e in range(d.experts)]
        if d.experts:
            out.append(Linear(f"{p}.mlp.gate", d.hidden, d.experts))
            if d.shared_inter:
                out += [
                    Linear(f"{p}.mlp.shared_expert.gate_proj", d.hidden, d.shared_inter),
                    Linear(f"{p}.mlp.shared_expert.up_proj", d.hidden, d.shared_inter),
                    Linear(f"{p}.mlp.shared_expert.down_proj", d.shared_inter, d.hidden),
                ]
        for m in mlps:
            out += [
                Linear(f"{m}.gate_proj", d.hidden, d.inter),
                Linear(f"{m}.up_proj", d.hidden, d.inter),
                Linear(f"{m}.down_proj", d.inter, d.hidden),
            ]
    return out


def _shape_from_dims(name: str, source: str, d: _Dims, linears: list[Linear], params: int) -> ModelShape:
    return ModelShape(
        name=name,
        source=source,
        params=params,
        linears=linears,
        hidden_size=d.hidden,
        intermediate_size=d.inter,
        num_layers=d.layers,
        num_heads=d.heads,
        num_kv_heads=d.kv_heads,
        head_dim=d.head_dim,
        vocab_size=d.vocab,
        tied=d.tied,
        experts_per_token=d.experts_per_token,
        model_type=d.model_type,
    )


def from_config(cfg: dict[str, Any], name: str) -> ModelShape:
    """The shape by formula from a config.json dict (no weights on disk)."""
    d = _dims(cfg)
    linears = _formula_linears(d)
    q, kv = d.heads * d.head_dim, d.kv_heads * d.head_dim
    norms = d.layers * 2 * d.hidden + d.hidden
    if d.model_type.startswith(("gemma2", "gemma3")):
        norms += d.layers * 2 * d.hidden  # pre- and post-feedforward norms
    if d.model_type.startswith(("qwen3", "gemma3", "olmo2")):
        norms += d.layers * 2 * d.head_dim  # q_norm, k_norm
    bias = d.layers * (q + 2 * kv) if (d.model_type in QKV_BIAS or _text_config(cfg).get("attention_bias")) else 0
    embed = d.vocab * d.hidden * (1 if d.tied else 2)
    shape = _shape_from_dims(name, "config.json", d, linears, sum(lin.params for lin in linears) + norms + bias + embed)
    shape.stored_dtype = str(_text_config(cfg).get("torch_dtype") or _text_config(cfg).get("dtype") or "")
    if isinstance(cfg.get("vision_config"), dict):
        shape.notes.append("the vision tower is not counted (config.json describes the language model)")
    return shape


# ---- safetensors headers --------------------------------------------------------------------


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of one .safetensors file: {tensor name: {dtype, shape, data_offsets}}."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path}: too short for a safetensors file")
        (length,) = struct.unpack("<Q", raw)
        if not 0 < length <= MAX_HEADER_BYTES:
            raise ValueError(f"{path}: not a safetensors header (length {length})")
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    return header


def _weight_files(folder: Path) -> list[Path] | None:
    """The safetensors files of a model folder (all shards), or None when some are missing."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()))
        files = [folder / s for s in shards]
        return files if files and all(f.is_file() for f in files) else None
    single = folder / "model.safetensors"
    return [single] if single.is_file() else None


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def from_folder(folder: Path, name: str) -> ModelShape:
    """A model folder: exact counts from its safetensors headers where present, else the config formula."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ShapeUnknown(f"{folder} has no config.json")
    cfg = json.loads(config_path.read_text(encoding="utf-8"))
    files = _weight_files(folder)
    if files is None or cfg.get("quantization_config"):
        shape = from_config(cfg, name)
        if cfg.get("quantization_config"):
            shape.notes.append("a pre-quantised checkpoint: counts from config.json")
        return shape
    tensors: dict[str, dict[str, Any]] = {}
    for path in files:
        tensors.update(read_header(path))
    d = _dims(cfg)
    params, linears, dtypes, head = 0, [], {}, 0
    for tname, info in tensors.items():
        shape = info.get("shape", [])
        n = _numel(shape)
        params += n
        dtypes[info.get("dtype", "")] = dtypes.get(info.get("dtype", ""), 0) + n
        if "lm_head" in tname:
            head += n
        elif len(shape) == 2 and tname.endswith(".weight") and not re.search(r"embed|\bwte\b|\bwpe\b", tname):
            linears.append(Linear(tname[: -len(".weight")], int(shape[1]), int(shape[0])))
    if head and d.tied:
        params -= head  # a tied head saved anyway is the embedding matrix again, one parameter
    d.tied = d.tied or not head
    out = _shape_from_dims(name, "safetensors headers", d, linears, params)
    out.stored_dtype = max(dtypes, key=dtypes.get) if dtypes else ""
    return out


# ---- where a name points --------------------------------------------------------------------


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, as huggingface_hub finds it (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = Path(os.environ["XDG_CACHE_HOME"]).expanduser() if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The cache folder of a hub model's snapshot holding config.json, or None when it is not cached."""
    repo = hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / (revision or "main")
    candidates: list[Path] = []
    if ref.is_file():
        candidates.append(snapshots / ref.read_text(encoding="utf-8").strip())
    if revision:
        candidates.append(snapshots / revision)  # a commit hash
    else:
        candidates += sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((c for c in candidates if (c / "config.json").is_file()), None)


def tiny_shape() -> ModelShape:
    """builtin:tiny from its constants and its tokenizer's vocabulary (no torch)."""
    data = json.loads((tiny.FILES_DIR / "tokenizer.json").read_text(encoding="utf-8"))
    ids = list(data["model"]["vocab"].values()) + [t["id"] for t in data.get("added_tokens", [])]
    cfg = {
        "model_type": "llama",
        "hidden_size": tiny.HIDDEN_SIZE,
        "intermediate_size": tiny.INTERMEDIATE_SIZE,
        "num_hidden_layers": tiny.NUM_LAYERS,
        "num_attention_heads": tiny.NUM_HEADS,
        "num_key_value_heads": tiny.NUM_KV_HEADS,
        "vocab_size": max(ids) + 1,  # len(tokenizer): the vocabulary and the added tokens
        "tie_word_embeddings": True,
    }
    shape = from_config(cfg, tiny.TINY_ID)
    shape.source = tiny.TINY_ID
    return shape


_CACHE: dict[tuple[Any, ...], ModelShape | str] = {}


def _cache_key(name: str, revision: str | None) -> tuple[Any, ...]:
    """Keyed by the files' modification times too, so a model saved again is read again."""
    path = Path(name).expanduser()
    folder = path if path.is_dir() else None
    if folder is None and not tiny.is_tiny(name) and not builtin_shape.is_shape(name) and not name.startswith((".", "/", "~")):
        folder = cached_snapshot(name, revision)
    stamps = tuple(
        (f.name, f.stat().st_mtime_ns) for f in (folder.iterdir() if folder else []) if f.suffix in (".json", ".safetensors")
    )
    return (name, revision, str(folder), stamps)


def model_shape(name: str, revision: str | None = None) -> ModelShape:
    """The shape of `--model` NAME: builtin:tiny, a local directory, or a hub id in the local cache.

    Raises ShapeUnknown when nothing on this machine tells (an uncached hub id, a broken file).
    Results are cached per name and file modification times: the TUI asks at every keystroke.
    """
    key = _cache_key(name, revision)
    if key in _CACHE:
        found = _CACHE[key]
        if isinstance(found, str):
            raise ShapeUnknown(found)
        return found
    try:
        shape = _model_shape(name, revision)
    except ShapeUnknown as exc:
        _CACHE[key] = str(exc)
        raise
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:  # a broken or foreign file
        _CACHE[key] = f"cannot read {name}: {exc}"
        raise ShapeUnknown(_CACHE[key]) from None
    _CACHE[key] = shape
    return shape


def _model_shape(name: str, revision: str | None) -> ModelShape:
    if tiny.is_tiny(name):
        return tiny_shape()
    if builtin_shape.is_shape(name):
        problem = builtin_shape.check_name(name)
        if problem:
            raise ShapeUnknown(problem)
        shape = from_config(builtin_shape.config_dict(name), name)
        shape.source = "builtin shape (config.json)"
        return shape
    path = Path(name).expanduser()
    if path.is_dir():
        return from_folder(path, name)
    if name.startswith((".", "/", "~")) or path.exists():
        raise ShapeUnknown(f"{name} is not a model directory")
    snapshot = cached_snapshot(name, revision)
    if snapshot is None:
        raise ShapeUnknown(f"{name} is not in the local Hugging Face cache")
    shape = from_folder(snapshot, name)
    if shape.source == "config.json":
        shape.notes.append("weights not downloaded yet: sizes from config.json")
    return shape
