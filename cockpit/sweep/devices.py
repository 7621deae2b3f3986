"""Where trials run: one slot per GPU (or per K GPUs), each handing its trial CUDA_VISIBLE_DEVICES;
one slot on a machine without CUDA (trials one at a time: they would share the same cores)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    """One place a trial trains: the environment its engine gets, and how to name it."""

    index: int
    env: dict[str, str] | None
    label: str


def choose(entries: list[str], gpus: str | None) -> list[str]:
    """The entries --gpus picks: a count (the first N), all, or indices into `entries`; ValueError with the fix."""
    from engine.memory.gpu import parse_gpus

    if gpus is None:
        return list(entries)
    count, ids = parse_gpus(gpus)
    if ids is not None:
        missing = [i for i in ids if i >= len(entries)]
        if missing:
            raise ValueError(f"--gpus {gpus}: GPU {missing[0]} is not visible ({len(entries)} are: 0..{len(entries) - 1})")
        return [entries[i] for i in ids]
    if count is not None and count > len(entries):
        raise ValueError(f"--gpus {gpus} but {len(entries)} GPU(s) are visible; use --gpus {len(entries)} (or all)")
    return list(entries) if count is None else entries[:count]


def pool_size(gpus: str | None, visible: int) -> int:
    """How many GPUs the sweep has: what --gpus picks among the `visible` ones."""
    return len(choose([str(i) for i in range(visible)], gpus))


def visible_devices(gpus: str | None = None) -> tuple[list[str], bool]:
    """The sweep's CUDA devices (those --gpus picks among this process's) as CUDA_VISIBLE_DEVICES
    entries for a child (indices or UUIDs), and whether they are NVML's indices (then the child must
    number GPUs in PCI bus order too)."""
    from engine.memory.gpu import visible_gpus

    count = len(visible_gpus())
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec is not None:  # already narrowed: hand out subsets of what we were given, as written
        return choose([e.strip() for e in spec.split(",") if e.strip()][:count], gpus if count else None), False
    return choose([str(i) for i in range(count)], gpus if count else None), True


def slots(devices: list[str], per_trial: int, nvml_order: bool = False) -> list[Slot]:
    """The trial slots for these devices: len(devices) // per_trial of them, or one CPU slot."""
    if not devices:
        return [Slot(0, None, "CPU")]
    out = []
    for i in range(len(devices) // max(per_trial, 1)):
        group = devices[i * per_trial : (i + 1) * per_trial]
        env = {"CUDA_VISIBLE_DEVICES": ",".join(group)}
        if nvml_order:  # NVML numbers GPUs in PCI bus order, CUDA fastest-first unless told: make them agree
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        out.append(Slot(i, env, f"GPU {','.join(group)}"))
    return out
