"""Device and memory readings for `memory` events: NVML per GPU, torch's peaks, process RSS.

NVML is sampled at most once a second (a `memory` event at every log would otherwise hammer the
driver), and only the cheap per-device calls are used, never the process list.
"""

from __future__ import annotations

import os
import time
from typing import Any

MIN_INTERVAL_S = 1.0


def _rss_mb() -> float:
    try:
        import psutil

        return round(psutil.Process(os.getpid()).memory_info().rss / 2**20, 1)
    except Exception:  # psutil missing or the platform refuses: report nothing rather than fail
        return 0.0


class MemorySampler:
    """Reads memory for the GPUs this process uses; on a machine without NVML or a GPU, RSS only."""

    def __init__(self, device_indices: list[int] | None = None):
        self._nvml = None
        self._handles: list[tuple[int, Any]] = []
        self._last_time = 0.0
        self._last_gpus: list[dict[str, Any]] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            indices = device_indices if device_indices is not None else list(range(count))
            self._handles = [(i, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in indices if i < count]
            self._nvml = pynvml
        except Exception:  # no driver, no GPU: the process's memory is still reported
            self._nvml = None

    def gpus(self) -> list[dict[str, Any]]:
        if self._nvml is None:
            return []
        now = time.monotonic()
        if now - self._last_time < MIN_INTERVAL_S and self._last_gpus:
            return self._last_gpus
        nv = self._nvml
        out = []
        for index, handle in self._handles:
            row: dict[str, Any] = {"index": index}
            try:
                name = nv.nvmlDeviceGetName(handle)
                row["name"] = name.decode() if isinstance(name, bytes) else name
                mem = nv.nvmlDeviceGetMemoryInfo(handle)
                row["used_mb"] = round(mem.used / 2**20, 1)
                row["total_mb"] = round(mem.total / 2**20, 1)
                row["util_pct"] = nv.nvmlDeviceGetUtilizationRates(handle).gpu
                row["temp_c"] = nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU)
                row["power_w"] = round(nv.nvmlDeviceGetPowerUsage(handle) / 1000, 1)
            except Exception:  # a field some GPUs don't expose
                pass
            out.append(row)
        self._last_time, self._last_gpus = now, out
        return out

    def torch_peaks(self) -> dict[str, float] | None:
        import torch

        if not torch.cuda.is_available():
            return None
        mb = 2**20
        return {
            "allocated_mb": round(torch.cuda.memory_allocated() / mb, 1),
            "peak_allocated_mb": round(torch.cuda.max_memory_allocated() / mb, 1),
            "reserved_mb": round(torch.cuda.memory_reserved() / mb, 1),
            "peak_reserved_mb": round(torch.cuda.max_memory_reserved() / mb, 1),
        }

    def snapshot(self) -> dict[str, Any]:
        """The payload of a `memory` event."""
        return {"gpus": self.gpus(), "torch": self.torch_peaks(), "process": {"rss_mb": _rss_mb()}}


def devices() -> list[dict[str, Any]]:
    """The CUDA devices torch sees, for `run_started`."""
    import torch

    if not torch.cuda.is_available():
        return []
    return [
        {
            "index": i,
            "name": torch.cuda.get_device_name(i),
            "total_mb": round(torch.cuda.get_device_properties(i).total_memory / 2**20, 1),
        }
        for i in range(torch.cuda.device_count())
    ]


def pick_precision(requested: str) -> str:
    """bf16 where the GPU supports it, else fp16 on CUDA, fp32 on CPU; an explicit choice wins."""
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"
