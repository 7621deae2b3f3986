"""Out of memory: what the run was doing when memory ran out, and the longest batch first so it runs
out in the first step rather than after an hour.

The trainers note the micro-batch they are working on (a reference to one tensor and two ints: no
copy, no device sync); when the engine fails, `failure()` turns the note into the `error` event's
step, batch and memory. Standard library only at import: torch is taken from `sys.modules` when the
run got that far.
"""

from __future__ import annotations

import gc
import heapq
import math
import random
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any

MB = 2**20
# The allocators' own words: torch.OutOfMemoryError (CUDA), the CPU allocator, a failed mmap.
_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory")
_TRIED = re.compile(r"tried to allocate ([\d.]+) ?(bytes|B|KiB|MiB|GiB|TiB)", re.IGNORECASE)
_UNIT = {"bytes": 1, "b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}

# The micro-batch in flight: the trainer, the phase, the batch's shape, and a mask to count its tokens.
_current: dict[str, Any] = {}


def is_oom(exc: BaseException) -> bool:
    """Whether a failure is the machine running out of memory (GPU or CPU), whatever wraps it."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
            return True
        if isinstance(exc, RuntimeError) and any(text in str(exc).lower() for text in _OOM_TEXT):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


# ---- what the trainer is doing ----------------------------------------------------------------


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return tuple(int(d) for d in shape) if shape is not None else None


def note(trainer: Any, inputs: Any, training: bool) -> None:
    """Remember the micro-batch about to run. Cheap: shapes are host-side metadata; nothing is copied."""
    if isinstance(inputs, list):  # GRPO: the prompts whose completions are about to be generated
        _current.update(trainer=trainer, phase="generation", size=len(inputs), seq_len=None, masks=())
        return
    if not isinstance(inputs, dict):
        return
    phase = "train" if training else "eval"
    ids = _shape(inputs.get("input_ids"))
    if ids is not None and len(ids) == 2:
        _current.update(trainer=trainer, phase=phase, size=ids[0], seq_len=ids[1], masks=(inputs.get("attention_mask"),))
        return
    prompt, completion = _shape(inputs.get("prompt_ids")), _shape(inputs.get("completion_ids"))
    if prompt is not None and completion is not None:  # GRPO's loss pass: prompt and completion side by side
        masks = (inputs.get("prompt_mask"), inputs.get("completion_mask"))
        _current.update(trainer=trainer, phase=phase, size=prompt[0], seq_len=prompt[1] + completion[1], masks=masks)
        return
    _current.update(trainer=trainer, phase=phase, size=None, seq_len=None, masks=())  # a shape we cannot read: the step still counts


class BatchTracking:
    """Trainer mixin (first in the bases): notes every micro-batch, for the out-of-memory report."""

    def training_step(self, model, inputs, *args, **kwargs):
        note(self, inputs, True)
        return super().training_step(model, inputs, *args, **kwargs)

    def compute_loss(self, model, inputs, *args, **kwargs):
        note(self, inputs, model.training)
        return super().compute_loss(model, inputs, *args, **kwargs)

    def prediction_step(self, model, inputs, *args, **kwargs):
        note(self, inputs, False)
        return super().prediction_step(model, inputs, *args, **kwargs)

    def train(self, *args, **kwargs):
        result = super().train(*args, **kwargs)
        _current.clear()  # a failure after training (saving) is not the last batch's doing
        return result


def _tokens(masks: tuple[Any, ...]) -> int | None:
    """Real (unpadded) tokens of the noted batch; counted only now, after the failure, never per step."""
    if not masks or any(m is None for m in masks):
        return None
    try:
        return int(sum(int(m.sum()) for m in masks))
    except Exception:  # a device too full even for a sum: the shape still says enough
        return None


# ---- memory at the time -----------------------------------------------------------------------


def _proc_kb(path: str, keys: tuple[str, ...]) -> dict[str, float]:
    """Fields of /proc/self/status or /proc/meminfo in MiB (read without importing anything)."""
    out: dict[str, float] = {}
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in keys:
                    out[name] = round(int(rest.split()[0]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return out


def _tried_mb(message: str) -> float | None:
    """How much the failed allocation asked for, from the allocator's message."""
    match = _TRIED.search(message)
    if not match:
        return None
    return round(float(match.group(1)) * _UNIT[match.group(2).lower()] / MB, 1)


def _cuda(torch: Any) -> list[dict[str, Any]]:
    """torch's figures for each GPU this process holds memory on (never one it has not touched)."""
    cuda = torch.cuda
    current = cuda.current_device()
    rows = []
    for index in range(cuda.device_count()):
        if index != current and not cuda.memory_reserved(index):
            continue  # asking would create a CUDA context there
        row = {
            "index": index,
            "allocated_mb": round(cuda.memory_allocated(index) / MB, 1),
            "reserved_mb": round(cuda.memory_reserved(index) / MB, 1),
            "peak_allocated_mb": round(cuda.max_memory_allocated(index) / MB, 1),
            "peak_reserved_mb": round(cuda.max_memory_reserved(index) / MB, 1),
        }
        try:
            free, total = cuda.mem_get_info(index)
            row.update(free_mb=round(free / MB, 1), total_mb=round(total / MB, 1), used_mb=round((total - free) / MB, 1))
        except Exception:  # the driver refused: torch's own figures stand
            pass
        rows.append(row)
    return rows


def memory(message: str = "") -> dict[str, Any]:
    """Memory now: per GPU where CUDA is in use, else the process and the machine.

    `used_mb`/`total_mb`/`device` are the headline a reader prints: the fullest GPU, or the process
    against its address-space limit (ulimit -v) where one is set, else its RSS against the machine's RAM.
    """
    out: dict[str, Any] = {}
    status = _proc_kb("/proc/self/status", ("VmRSS", "VmHWM", "VmSize"))
    if not status:  # no /proc (macOS)
        try:
            import psutil

            info = psutil.Process().memory_info()
            status = {"VmRSS": round(info.rss / MB, 1), "VmSize": round(info.vms / MB, 1)}
        except Exception:  # psutil missing or refused: the GPU figures may still say enough
            status = {}
    out["process"] = {"rss_mb": status.get("VmRSS"), "peak_rss_mb": status.get("VmHWM"), "vm_mb": status.get("VmSize")}
    info = _proc_kb("/proc/meminfo", ("MemTotal", "MemAvailable"))
    total_ram = info.get("MemTotal")
    if total_ram is None:
        from engine.memory.gpu import system_ram

        ram = system_ram()
        total_ram = round(ram / MB, 1) if ram else None
    out["host"] = {"total_mb": total_ram, "available_mb": info.get("MemAvailable")}
    tried = _tried_mb(message)
    if tried is not None:
        out["tried_mb"] = tried
    torch = sys.modules.get("torch")
    gpus: list[dict[str, Any]] = []
    try:
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            gpus = _cuda(torch)
    except Exception:  # a broken CUDA state after the failure: report the host instead
        gpus = []
    if gpus:
        out["cuda"] = gpus
        top = max(gpus, key=lambda g: g.get("used_mb", g["reserved_mb"]))
        out.update(device=f"cuda:{top['index']}", used_mb=top.get("used_mb", top["reserved_mb"]), total_mb=top.get("total_mb"))
        return out
    try:
        import resource  # POSIX only

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        unlimited = limit == resource.RLIM_INFINITY
    except (ImportError, OSError, ValueError):
        limit, unlimited = 0, True
    if not unlimited and (total_ram is None or limit / MB < total_ram):
        out["limit"] = {"name": "RLIMIT_AS", "mb": round(limit / MB, 1)}
        out.update(device="cpu", used_mb=status.get("VmSize"), total_mb=round(limit / MB, 1))
    else:
        out.update(device="cpu", used_mb=status.get("VmRSS"), total_mb=total_ram)
    return out


def _release(exc: BaseException) -> None:
    """Drop the failed step's tensors (held by the traceback's frames) so the event can be written."""
    tb = exc.__traceback__
    traceback.clear_frames(tb)
    gc.collect()
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    except Exception:  # best effort: the event matters more than the cache
        pass


def failure(exc: BaseException, oom: bool) -> dict[str, Any]:
    """The error event's step and batch (when training had started) and, out of memory, the memory.

    Memory is read first (it describes the moment); the failed step's tensors are released after,
    then the batch's real tokens are counted.
    """
    out: dict[str, Any] = {}
    trainer = _current.get("trainer")
    if oom:
        out["memory"] = memory(str(exc))
        _release(exc)
    if trainer is not None:
        out["step"] = getattr(getattr(trainer, "state", None), "global_step", None)
    if trainer is not None and _current["size"] is not None:
        batch = {"size": _current["size"], "seq_len": _current["seq_len"], "phase": _current["phase"]}
        tokens = _tokens(_current["masks"])
        if tokens is not None:
            batch["tokens"] = tokens
        elif _current["seq_len"] is not None:
            batch["tokens"] = _current["size"] * _current["seq_len"]
        out["batch"] = batch
    _current.clear()
    return out


# ---- the longest batch first ------------------------------------------------------------------


def token_lengths(dataset: Any, length_column: str = "length") -> list[int]:
    """Token length of every prepared example: its length column, else len(input_ids) read from Arrow."""
    names = getattr(dataset, "column_names", None) or []
    if length_column in names:
        return [int(n) for n in dataset[length_column]]
    try:
        import pyarrow.compute as pc

        column = dataset.with_format("arrow")[:]["input_ids"]  # respects any index mapping; no Python lists
        return [int(n) for n in pc.list_value_length(column).to_pylist()]
    except Exception:  # not an Arrow-backed dataset
        return [len(example["input_ids"]) for example in dataset]


class LongestFirstSampler:
    """Training order whose first optimizer step holds the longest examples; the rest shuffled.

    `head` is batch x grad_accum x processes: accelerate deals a step's micro-batches to the
    processes from consecutive indices, so under DDP every rank's first step is a longest one. Only
    the run's first epoch starts that way; later epochs are plain shuffles. The order depends on the
    seed and the epoch only, so a resumed run skips exactly the batches it trained.
    """

    def __init__(self, lengths: list[int], head: int, seed: int, epoch_of: Callable[[], float | None] | None = None):
        self.lengths = lengths
        self.head = max(1, head)
        self.seed = seed
        self.epoch = 0
        self._epoch_of = epoch_of

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def _current_epoch(self) -> int:
        # Under DDP a resumed run's skip wrapper hides set_epoch from accelerate; the trainer's epoch says it too.
        seen = self._epoch_of() if self._epoch_of is not None else None
        return max(self.epoch, int(math.floor(seen + 1e-6)) if seen else 0)

    def order(self, epoch: int) -> list[int]:
        rng = random.Random(self.seed * 1_000_003 + epoch)
        n = len(self.lengths)
        if epoch > 0:
            rest = list(range(n))
            rng.shuffle(rest)
            return rest
        head = heapq.nlargest(min(self.head, n), range(n), key=self.lengths.__getitem__)  # ties: the lower index first
        taken = set(head)
        rest = [i for i in range(n) if i not in taken]
        rng.shuffle(rest)
        return head + rest

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self._current_epoch()))


class LongestFirst:
    """Trainer mixin: with `longest_first` set, the train sampler is a LongestFirstSampler."""

    longest_first = False

    def _get_train_sampler(self, train_dataset=None):
        if not self.longest_first:
            return super()._get_train_sampler(train_dataset)
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        args = self.args
        head = args.train_batch_size * args.gradient_accumulation_steps * max(1, args.world_size)
        seed = args.data_seed if args.data_seed is not None else args.seed
        return LongestFirstSampler(token_lengths(dataset, args.length_column_name), head, seed, lambda: self.state.epoch)
