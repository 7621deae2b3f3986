"""The fast settings (`train.fast`): what raises tokens/s over TRL's defaults on a GPU, each chosen
only where this machine, this model and this config can use it, with one line saying what was
chosen or why not. On a machine without CUDA nothing changes.

- Liger kernels (`use_liger_kernel`): fused RMSNorm, RoPE and SwiGLU in Triton, where liger-kernel
  imports and knows the model's type. TRL 1.16 computes the loss in chunks through its own fused LM
  head, so Liger's fused cross-entropy stays off (TRL turns it off) and `chunked_nll` is already
  what `nll` does.
- Packing with TRL's best-fit-decreasing strategy (`packing_strategy=bfd`): whole examples fill rows
  of max_length, and TRL flattens a batch into one padding-free row whose sequences are told apart
  by position_ids. That needs an attention that keeps them apart: flash_attention_2/3 through their
  varlen kernels, or (without flash-attn) sdpa, eager and flex_attention, for which transformers
  builds a block-diagonal mask from the position_ids (masking_utils.find_packed_sequence_indices).
  No packed sequence sees another; padding is gone. The batch keeps its tokens: the rows a step
  packs hold about as many tokens as its examples did (median length x batch x accumulation), so
  the effective batch, and the learning rate tuned for it, stay what they were. Packing makes
  longest-first moot (every row is about max_length), so it is dropped with it.
- Gradient checkpointing only where memory needs it: TRL turns it on by default, at about a third
  more compute per step; here it stays off unless the memory estimate says the run does not fit
  without it, and then it is turned on.
- The dataloader: two worker processes collate the next batches while the GPU works (persistent,
  pinned memory), where the machine has the cores for them.

A setting the config already gives (train.packing, or any of these keys under `trl:`) is left as
given. `probe()` reads the machine; `choose()` is pure, so tests drive it with any machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

# TRL keys each setting owns; a user who sets one of them under `trl:` decides that setting.
OWN_KEYS = {
    "liger": ("use_liger_kernel", "liger_kernel_config"),
    "packing": ("packing", "packing_strategy", "padding_free"),
    "checkpointing": ("gradient_checkpointing", "activation_checkpointing"),
    "dataloader": ("dataloader_num_workers", "dataloader_persistent_workers", "dataloader_pin_memory"),
}
# Attention kernels that take a padding-free batch as such (varlen): nothing to build.
VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3")
# Attention that needs transformers to turn position_ids into a block-diagonal mask.
MASKED_ATTENTION = ("sdpa", "eager", "flex_attention")
DATALOADER_WORKERS = 2


@dataclass
class Machine:
    """What the fast settings depend on, read once by probe()."""

    cuda: bool
    liger_models: frozenset[str] = frozenset()  # model types liger-kernel can patch; empty: not importable
    packed_masks: bool = False  # transformers builds block-diagonal masks from position_ids
    model_type: str = ""
    attention: str = "sdpa"  # the loaded model's attention implementation
    cpus: int = 1
    memory_without_checkpointing: str = "unknown"  # the estimate's verdict with checkpointing off
    memory_line: str = ""  # that estimate, in words
    median_tokens: float | None = None  # the median training example's length, from the data report


@dataclass
class Choice:
    """What the fast settings change: config overrides, TRL keys, and one line per setting."""

    overrides: dict[str, Any] = field(default_factory=dict)  # dotted config keys, e.g. train.packing
    trl: dict[str, Any] = field(default_factory=dict)  # SFTConfig keys the config has no field for
    lines: list[str] = field(default_factory=list)

    @property
    def packing(self) -> bool:
        return bool(self.overrides.get("train.packing"))


def _user_set(cfg: dict[str, Any], setting: str) -> str | None:
    """The `trl:` key the user set for a setting, if any."""
    given = cfg.get("trl") or {}
    return next((k for k in OWN_KEYS[setting] if k in given), None)


def choose(cfg: dict[str, Any], machine: Machine) -> Choice:
    """The fast settings for this config on this machine (nothing when train.fast is off, or on a CPU)."""
    out = Choice()
    t = cfg["train"]
    if not t.get("fast"):
        return out
    if not machine.cuda:
        out.lines.append("fast settings: none on this machine (no CUDA GPU); training as configured")
        return out
    if cfg["run"]["type"] != "sft":
        out.lines.append("fast settings: SFT only; this GRPO run trains as configured")
        return out
    _liger(cfg, machine, out)
    _packing(cfg, machine, out)
    _checkpointing(cfg, machine, out)
    _dataloader(cfg, machine, out)
    return out


def _liger(cfg: dict[str, Any], m: Machine, out: Choice) -> None:
    key = _user_set(cfg, "liger")
    if key:
        out.lines.append(f"fast: Liger kernels as set (trl.{key})")
    elif not m.liger_models:
        out.lines.append("fast: Liger kernels off: liger-kernel is not installed (pip install liger-kernel)")
    elif m.model_type not in m.liger_models:
        out.lines.append(f"fast: Liger kernels off: liger-kernel has no kernels for model type '{m.model_type}'")
    else:
        out.trl["use_liger_kernel"] = True
        out.lines.append("fast: Liger kernels on (RMSNorm, RoPE, SwiGLU)")


def _packing(cfg: dict[str, Any], m: Machine, out: Choice) -> None:
    key = _user_set(cfg, "packing")
    if key or cfg["train"]["packing"]:
        out.lines.append(f"fast: packing as set ({'trl.' + key if key else 'train.packing=true'})")
        return
    if m.attention in VARLEN_ATTENTION:
        how = f"{m.attention} varlen kernels"
    elif m.attention in MASKED_ATTENTION and m.packed_masks:
        how = f"{m.attention} with block-diagonal masks from position_ids"
    else:
        why = "this transformers does not separate packed sequences" if m.attention in MASKED_ATTENTION else "unknown to the cockpit"
        out.lines.append(f"fast: packing off: attention '{m.attention}' {why}; padded batches as TRL does")
        return
    out.overrides["train.packing"] = True
    out.trl["packing_strategy"] = "bfd"
    dropped = ", longest-first dropped (every row is about max_length)" if cfg["train"].get("longest_first") else ""
    if dropped:
        out.overrides["train.longest_first"] = False
    out.lines.append(f"fast: packing on (best-fit decreasing, padding-free, {how}){_same_tokens(cfg, m, out)}{dropped}")


def _same_tokens(cfg: dict[str, Any], m: Machine, out: Choice) -> str:
    """Packed rows for a step that hold about the tokens its examples held: the same effective batch."""
    t = cfg["train"]
    batch, accum, length = t["per_device_train_batch_size"], t["gradient_accumulation_steps"], t["max_length"]
    if not m.median_tokens:
        return ""
    rows = max(1, round(batch * accum * m.median_tokens / length))
    new_batch = min(batch, rows)
    new_accum = max(1, round(rows / new_batch))
    if (new_batch, new_accum) == (batch, accum):
        return ""
    out.overrides.update({"train.per_device_train_batch_size": new_batch, "train.gradient_accumulation_steps": new_accum})
    return (f"; {batch} x {accum} examples a step (median {m.median_tokens:.0f} tokens) become {new_batch} x {new_accum} "
            f"rows of {length}: about the same tokens a step")


def _checkpointing(cfg: dict[str, Any], m: Machine, out: Choice) -> None:
    key = _user_set(cfg, "checkpointing")
    if key or cfg["train"]["gradient_checkpointing"]:
        out.lines.append(f"fast: gradient checkpointing on as set ({'trl.' + key if key else 'train.gradient_checkpointing'})")
    elif m.memory_without_checkpointing in ("will_not_fit", "tight"):
        out.overrides["train.gradient_checkpointing"] = True
        out.lines.append(f"fast: gradient checkpointing on: without it {m.memory_line}")
    elif m.memory_without_checkpointing == "fits":
        out.lines.append(f"fast: gradient checkpointing off: {m.memory_line} without it")
    else:
        out.lines.append("fast: gradient checkpointing off as configured (the memory estimate is unknown)")


def _dataloader(cfg: dict[str, Any], m: Machine, out: Choice) -> None:
    key = _user_set(cfg, "dataloader")
    if key:
        out.lines.append(f"fast: dataloader as set (trl.{key})")
    elif m.cpus < 4 * max(1, cfg["run"]["gpus"]):
        out.lines.append(f"fast: dataloader in the main process ({m.cpus} CPUs: too few to spare for workers)")
    else:
        out.trl.update(dataloader_num_workers=DATALOADER_WORKERS, dataloader_persistent_workers=True, dataloader_pin_memory=True)
        out.lines.append(f"fast: dataloader with {DATALOADER_WORKERS} worker processes, pinned memory")


# ---- the machine ----------------------------------------------------------------------------


def _liger_models() -> frozenset[str]:
    """Model types liger-kernel can patch; empty when it is not importable (it needs Triton and CUDA)."""
    try:
        from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN
    except Exception:  # not installed, or its Triton import fails on this machine: no kernels
        return frozenset()
    return frozenset(MODEL_TYPE_TO_APPLY_LIGER_FN)


def _packed_masks() -> bool:
    try:
        from transformers import masking_utils
    except ImportError:
        return False
    return hasattr(masking_utils, "find_packed_sequence_indices")


def _memory(cfg: dict[str, Any]) -> tuple[str, str]:
    """The estimate's verdict and line for this run with gradient checkpointing off."""
    from engine.memory.estimate import GIB, apply_overrides, estimate

    est = estimate(apply_overrides(cfg, {"train.gradient_checkpointing": False}), search_fix=False)
    if not est.known or est.capacity_bytes is None:
        return "unknown", ""
    return est.verdict, f"the estimate is {est.total_bytes / GIB:.1f} of {est.capacity_bytes / GIB:.1f} GiB"


def _model_type(cfg: dict[str, Any]) -> str:
    """The model's type from its config.json (before it loads: TRL's config is built first)."""
    from engine.model import shape

    try:
        return shape.model_shape(cfg["model"]["name_or_path"], cfg["model"].get("revision")).model_type
    except shape.ShapeUnknown:
        return ""


def probe(cfg: dict[str, Any], median_tokens: float | None = None) -> Machine:
    """This machine and the model as choose() needs them (cheap; nothing is probed when fast is off).

    `median_tokens`: the median training example's length, from the data report."""
    import torch

    cuda = torch.cuda.is_available()
    if not cfg["train"].get("fast") or not cuda:
        return Machine(cuda=cuda)
    verdict, line = _memory(cfg)
    return Machine(
        cuda=True,
        liger_models=_liger_models(),
        packed_masks=_packed_masks(),
        model_type=_model_type(cfg),
        # transformers' default where none is asked for: sdpa (torch has it since 2.1.1)
        attention=cfg["model"].get("attn_implementation") or "sdpa",
        cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        memory_without_checkpointing=verdict,
        memory_line=line,
        median_tokens=median_tokens,
    )


def apply(cfg: dict[str, Any], choice: Choice) -> dict[str, Any]:
    """The config the run trains with: the choice's overrides, and its TRL keys under `trl:` beneath
    the user's own (a copy; config.yaml keeps what the user asked for)."""
    if not choice.overrides and not choice.trl:
        return cfg
    from engine.memory.estimate import apply_overrides

    out = apply_overrides(cfg, choice.overrides)
    out["trl"] = {**choice.trl, **(cfg.get("trl") or {})}
    return out
