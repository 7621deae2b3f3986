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


def _peak_rss_mb() -> float:
    """The process's peak resident memory (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def system_ram() -> int | None:
    """The machine's RAM in bytes (None where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def cuda_visible(handles: list[Any], pynvml: Any) -> list[int]:
    """NVML indices of the devices CUDA_VISIBLE_DEVICES lets CUDA see, in its order (it stops at a bad entry)."""
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return list(range(len(handles)))
    out: list[int] = []
    for entry in (e.strip() for e in spec.split(",")):
        if entry.isdigit() and int(entry) < len(handles):
            out.append(int(entry))
            continue
        uuids = []
        for h in handles:
            u = pynvml.nvmlDeviceGetUUID(h)
            uuids.append(u.decode() if isinstance(u, bytes) else u)
        match = [i for i, u in enumerate(uuids) if entry and u.startswith(entry)]
        if not match:
            break
        out.append(match[0])
    return out


class MemorySampler:
    """Reads memory for the GPUs this process uses; on a machine without NVML or a GPU, RSS only.

    `processes`: the processes of the run on this machine (torchrun's LOCAL_WORLD_SIZE). Local rank
    i trains on visible GPU i, so a run of 2 processes on 8 visible GPUs reports those 2; a single
    process reports every visible GPU (the Trainer spreads one process over all of them).
    """

    def __init__(self, processes: int = 1):
        self._nvml = None
        self._handles: list[tuple[int, Any]] = []
        self._last_time = 0.0
        self._last_gpus: list[dict[str, Any]] = []
        self._start_reserved_mb: float | None = None  # set by mark_start once the model is loaded
        self._start_rss_mb: float | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            indices = cuda_visible(handles, pynvml)
            if processes > 1:
                indices = indices[:processes]
            self._handles = [(i, handles[i]) for i in indices]
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

    def own(self) -> dict[str, float]:
        """This process's share, for gathering from every rank: torch's peaks on its GPU, and its RSS."""
        return {**(self.torch_peaks() or {}), "rss_mb": _rss_mb(), "peak_rss_mb": _peak_rss_mb()}

    def snapshot(self, ranks: list[dict[str, float] | None] | None = None) -> dict[str, Any]:
        """The payload of a `memory` event; `ranks`: every rank's torch peaks, in a run of several processes."""
        out: dict[str, Any] = {"gpus": self.gpus(), "torch": self.torch_peaks(), "process": {"rss_mb": _rss_mb()}}
        return _with_ranks(out, ranks)

    def mark_start(self) -> None:
        """Remember what is reserved once the model is loaded, before the first step."""
        peaks = self.torch_peaks()
        self._start_reserved_mb = peaks["peak_reserved_mb"] if peaks else None
        self._start_rss_mb = _rss_mb()

    def report(self, ranks: list[dict[str, float] | None] | None = None) -> dict[str, Any]:
        """The end-of-run memory summary: the seed's `--verbose` report (GPU, total, reserved at the
        start, peak, the share training added), or the process's peak RSS without a GPU."""
        peak_rss = _peak_rss_mb()
        peaks = self.torch_peaks()
        if peaks is None:
            return _with_ranks({"device": "cpu", "peak_rss_mb": peak_rss, "start_rss_mb": self._start_rss_mb}, ranks)
        import torch

        index = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        total = round(props.total_memory / 2**20, 1)
        start = self._start_reserved_mb or 0.0
        peak = peaks["peak_reserved_mb"]
        out: dict[str, Any] = {
            "device": props.name,
            "total_mb": total,
            "start_reserved_mb": start,
            "peak_reserved_mb": peak,
            "peak_allocated_mb": peaks["peak_allocated_mb"],
            "training_mb": round(peak - start, 1),
            "peak_pct": round(100 * peak / total, 1) if total else None,
            "training_pct": round(100 * (peak - start) / total, 1) if total else None,
            "peak_rss_mb": peak_rss,
        }
        return _with_ranks(out, ranks)


def _with_ranks(payload: dict[str, Any], ranks: list[dict[str, float] | None] | None) -> dict[str, Any]:
    """`payload` with every rank's own figures as `ranks` [{rank, ...}], in a run of several processes."""
    if ranks is not None:
        payload["ranks"] = [{"rank": i, **(figures or {})} for i, figures in enumerate(ranks)]
    return payload


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
            "bf16": torch.cuda.get_device_capability(i)[0] >= 8,  # Ampere and later
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


def precision_problem(requested: str, gpus: list[dict[str, Any]]) -> str | None:
    """Why model.dtype cannot train on these GPUs (each {name, bf16}; [] on a CPU), in one line with the
    fix, or None. The engine asks with torch's devices, the cockpit with NVML's before anything starts."""
    if requested == "bf16" and not gpus:
        return ("model.dtype bf16 (--bf16) needs a CUDA GPU, and this machine has none: the CPU trains in float32; "
                "drop --bf16 (or --set model.dtype=auto)")
    if requested == "bf16" and not all(g.get("bf16", True) for g in gpus):
        name = next(g.get("name", "this GPU") for g in gpus if not g.get("bf16", True))
        return f"model.dtype bf16 (--bf16): {name} has no bf16 (Ampere and later have it); use --fp16, or drop --bf16"
    if requested == "fp16" and not gpus:
        return ("model.dtype fp16 (--fp16) needs a CUDA GPU, and this machine has none: the CPU trains in float32; "
                "drop --fp16 (or --set model.dtype=auto)")
    return None


def visible_gpus() -> list[dict[str, Any]]:
    """The GPUs CUDA would use (CUDA_VISIBLE_DEVICES honoured), from NVML: [] without a driver.

    Each: {index, name, total_mb, used_mb, bf16}. NVML is light to import; torch is never touched.
    """
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no nvidia-ml-py, no driver, no GPU: all mean "no GPU visible"
        return []
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        out = []
        for index in cuda_visible(handles, pynvml):
            handle = handles[index]
            name = pynvml.nvmlDeviceGetName(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                major, _ = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            except pynvml.NVMLError:
                major = 8
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            out.append(
                {
                    "index": index,
                    "uuid": uuid.decode() if isinstance(uuid, bytes) else uuid,
                    "name": name.decode() if isinstance(name, bytes) else name,
                    "total_mb": round(mem.total / 2**20, 1),
                    "used_mb": round(mem.used / 2**20, 1),
                    "bf16": major >= 8,  # Ampere and later
                }
            )
        return out
    except pynvml.NVMLError:
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


# ---- choosing GPUs (--gpus) ------------------------------------------------------------------

# The CUDA_VISIBLE_DEVICES the engine narrowed itself to: its GPUs are then all it sees, in order.
NARROWED_ENV = "COCKPIT_NARROWED_GPUS"


def parse_gpus(text: str) -> tuple[int | None, list[int] | None]:
    """--gpus as typed: `all` -> (None, None), every visible GPU; `2` -> (2, None), a count; `0,2` ->
    (2, [0, 2]) and `1,` -> (1, [1]), GPUs by index (a trailing comma makes one number an index, as in
    PyTorch Lightning). Raises ValueError with the fix."""
    text = str(text).strip().lower()
    if text == "all":
        return None, None
    if "," not in text:
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"--gpus {text!r}: give a count (2), all, or GPU indices (0,2; 1, for GPU 1 alone)")
        return int(text), None
    parts = [p.strip() for p in text.split(",")]
    parts = parts[:-1] if parts[-1] == "" else parts  # "1," is GPU 1
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"--gpus {text!r}: GPU indices are whole numbers separated by commas, e.g. 0,2 (1, for GPU 1 alone)")
    ids = [int(p) for p in parts]
    if len(set(ids)) != len(ids):
        raise ValueError(f"--gpus {text!r}: a GPU is named twice; name each once")
    return len(ids), ids


def check_ids(ids: list[int] | None, visible: list[dict[str, Any]]) -> str | None:
    """Why run.gpu_ids cannot be used with these visible GPUs (one line with the fix), or None."""
    if not ids:
        return None
    if len(set(ids)) != len(ids):
        return f"run.gpu_ids {ids}: a GPU is named twice; name each once"
    if not visible:
        return (f"--gpus {','.join(map(str, ids))}{',' if len(ids) == 1 else ''} picks GPUs, and no CUDA GPU is visible here; "
                f"--gpus {len(ids)} trains {len(ids)} process(es) on the CPU")
    missing = [i for i in ids if i >= len(visible)]
    if missing:
        seen = ", ".join(f"{i} {g.get('name', 'GPU')}" for i, g in enumerate(visible))
        return (f"--gpus: GPU {missing[0]} is not visible ({len(visible)} visible: {seen}); pick from 0 to {len(visible) - 1} "
                "(indices count the GPUs CUDA_VISIBLE_DEVICES leaves visible)")
    return None


def chosen(visible: list[dict[str, Any]], run: dict[str, Any]) -> list[dict[str, Any]]:
    """The visible GPUs a run trains on: run.gpu_ids, else the first run.gpus of them (the estimate, the
    memory readings and the engine's devices follow this one choice)."""
    want = int(run.get("gpus", 1) or 1)
    narrowed = os.environ.get(NARROWED_ENV)
    if narrowed is not None and narrowed == os.environ.get("CUDA_VISIBLE_DEVICES"):
        return visible[:want]  # this process sees only the run's GPUs already
    ids = run.get("gpu_ids")
    if ids:
        return [visible[i] for i in ids if i < len(visible)]
    return visible[:want]


def narrow_to_chosen(run: dict[str, Any]) -> str | None:
    """Make CUDA show this process only its run's GPUs (by UUID: CUDA's own order may differ from
    nvidia-smi's) before CUDA starts; every rank narrows alike. Returns the new CUDA_VISIBLE_DEVICES,
    or None where there is no GPU to choose."""
    gpus = chosen(visible_gpus(), run)
    if not gpus or not all(g.get("uuid") for g in gpus):
        return None
    value = ",".join(g["uuid"] for g in gpus)
    os.environ["CUDA_VISIBLE_DEVICES"] = os.environ[NARROWED_ENV] = value
    return value

