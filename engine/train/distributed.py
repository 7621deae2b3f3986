"""Several processes, one run: who this process is, what every rank must agree on, and what TRL
needs to hear for ddp, fsdp or DeepSpeed.

The engine runs under torchrun when `run.gpus` > 1 (the cockpit starts it so; several machines
start it with torchrun's own options). torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; the Trainer
(through accelerate) opens the process group: NCCL on GPUs, gloo on CPUs. Only rank 0 writes
events; a stop or save request must reach every rank at the same step, or the ranks would wait on
each other forever in the next collective, so the flags are agreed on with one all-reduce.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from engine.errors import EngineError
from engine.train import trl_args


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_world_size() -> int:
    return int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size())))


def is_main() -> bool:
    return rank() == 0


def _group_ready() -> bool:
    import torch.distributed as dist

    return world_size() > 1 and dist.is_available() and dist.is_initialized()


def agree(*flags: bool) -> tuple[bool, ...]:
    """Each flag true on every rank when it is true on any: one small all-reduce (max)."""
    if not _group_ready():
        return flags
    import torch
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.tensor([1 if f else 0 for f in flags], dtype=torch.int32, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in tensor.tolist())


def barrier() -> None:
    """Wait for every rank (nothing outside a process group)."""
    if _group_ready():
        import torch.distributed as dist

        dist.barrier()


def close() -> None:
    """Leave the process group together, once every rank is done (rank 0 saves final/ last).

    A rank that exits while the group still has peers working aborts in gloo's teardown
    ("terminate called without an active exception"), and torchrun then reports a failed worker.
    """
    if _group_ready():
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def gather(value: Any) -> list[Any]:
    """Every rank's value, in rank order (a list of one outside a process group)."""
    if not _group_ready():
        return [value]
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def check(cfg: dict[str, Any]) -> None:
    """In the engine under torchrun: enough GPUs for the processes here, and a strategy that can run."""
    if world_size() <= 1:
        return
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() < local_world_size():
        count = torch.cuda.device_count()
        raise EngineError("config", f"run.gpus={local_world_size()} but {count} GPU(s) are visible on this machine; use --gpus {count}")
    check_strategy(cfg)


def check_strategy(cfg: dict[str, Any]) -> None:
    """Refuse the strategy combinations that cannot run, in one line each (no torch: the cockpit
    checks this before it launches, the engine again for a run started by hand)."""
    strategy = cfg["run"]["distributed"]
    if strategy.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        raise EngineError("config", f"run.distributed={strategy} needs DeepSpeed: pip install deepspeed (or use --distributed fsdp)",
                          code="strategy", key="run.distributed", overrides={"run.distributed": "fsdp"})
    if cfg["model"]["finetune"] == "qlora" and strategy in ("fsdp", "deepspeed-zero3"):
        raise EngineError(
            "config",
            f"QLoRA cannot be sharded with run.distributed={strategy} here (4-bit weights stay whole on each GPU); "
            "use --distributed ddp or deepspeed-zero2",
            code="strategy", key="run.distributed", overrides={"run.distributed": "ddp"},
        )
    if cfg["run"]["type"] == "grpo" and strategy != "ddp":
        raise EngineError("config", f"GRPO runs with run.distributed=ddp only (generation needs whole weights on each GPU); got {strategy}",
                          code="strategy", key="run.distributed", overrides={"run.distributed": "ddp"})


def trainer_kwargs(cfg: dict[str, Any], precision: str) -> dict[str, Any]:
    """TrainingArguments fields for the chosen strategy (ddp needs none: torchrun's env is enough)."""
    if world_size() <= 1:
        return {}
    import torch

    # Without CUDA, accelerate only forms a process group when told it is a CPU run.
    base: dict[str, Any] = {} if torch.cuda.is_available() else {"use_cpu": True, "ddp_backend": "gloo"}
    strategy = cfg["run"]["distributed"]
    checkpointing = cfg["train"]["gradient_checkpointing"]
    if strategy == "ddp":
        # LoRA leaves most parameters frozen; DDP must not search the graph for unused ones each step.
        return {**base, "ddp_find_unused_parameters": False}
    if strategy == "fsdp":
        # FSDP2, one shard unit per decoder layer (the model's _no_split_modules); FSDP's own
        # activation checkpointing replaces the Trainer's, which would add an all-gather per layer.
        return {
            **base,
            "fsdp": True,
            "fsdp_config": {"version": 2, "reshard_after_forward": True, "activation_checkpointing": checkpointing},
            trl_args.checkpointing_key(): False,  # its name in this transformers (5.17 has no activation_checkpointing)
        }
    stage = 3 if strategy == "deepspeed-zero3" else 2
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True  # final/ and best/ as whole weights
    return {
        **base,
        "deepspeed": {
            "zero_optimization": zero,
            "bf16": {"enabled": precision == "bf16"},
            "fp16": {"enabled": precision == "fp16"},
            "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto",
            "train_batch_size": "auto",
            "gradient_clipping": "auto",
        }
    }
