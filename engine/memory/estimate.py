"""How much GPU memory a run will need, from its config, before any model loads; and the cheapest fix.

Standard library only: `cockpit run` prints it before it starts the engine, the TUI's form redraws it
at every change, and the engine records it as the `estimate` event (compared with the measured peak
at the end of the run). Model sizes come from engine/model/shape.py (headers, never weights); the
formula is in engine/memory/parts.py, the search for a fix in engine/memory/fit.py.

Verdict: fits; tight above 90% of the smallest GPU used; will not fit above 100%.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from engine.memory import gpu
from engine.memory.gpu import visible_gpus
from engine.memory.parts import CPU_OVERHEAD, CUDA_OVERHEAD, GIB, compute_parts, total_bytes  # noqa: F401  (part of its API)
from engine.model import shape as shapes

TIGHT = 0.9
VERDICTS = ("fits", "tight", "will_not_fit", "no_gpu", "unknown")


@dataclass
class Fix:
    """A change that makes the run fit: in words, as config overrides, and as command-line options."""

    text: str
    overrides: dict[str, Any]
    cli: str
    total_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "overrides": self.overrides,
            "cli": self.cli,
            "total_bytes": self.total_bytes,
            "total_gib": round(self.total_bytes / GIB, 2),
        }


@dataclass
class Estimate:
    """The memory a run needs per GPU (or on the CPU), its parts, and whether it fits."""

    model: str
    verdict: str
    reason: str = ""  # why the size is unknown
    device: str = "gpu"  # "gpu" or "cpu"
    gpus: list[dict[str, Any]] = field(default_factory=list)  # the GPUs the run uses
    capacity_bytes: int | None = None  # the smallest used GPU's memory, or the RAM on the CPU
    components: dict[str, int] = field(default_factory=dict)
    activations_other: int = 0  # activations with gradient checkpointing the other way round
    activation_parts: dict[str, int] = field(default_factory=dict)  # layers, mask, head, beside
    total_bytes: int = 0
    fix: Fix | None = None
    assumptions: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return self.verdict != "unknown"

    @property
    def warn(self) -> bool:
        """Whether to warn: the run likely runs out of memory, or comes close."""
        return self.verdict in ("will_not_fit", "tight")

    def line(self, with_fix: bool = True) -> str:
        """One line for the terminal and the TUI's form; with_fix adds the fix when it warns."""
        if not self.known:
            if "not in the local Hugging Face cache" in self.reason:
                return f"memory estimate: size unknown until the model is downloaded ({self.reason})"
            return f"memory estimate: unknown ({self.reason})"
        a = self.assumptions
        where = f"{_gib(self.total_bytes)} GiB"
        if self.device == "cpu":
            where += f" on the CPU (no GPU visible) of {_gib(self.capacity_bytes)} GiB RAM"
        elif self.verdict == "no_gpu":
            needs = "QLoRA" if a["finetune"] == "qlora" else "fp16"
            where += f" per GPU ({needs} needs a CUDA GPU; none visible)"
        else:
            where += f" per GPU of {_gib(self.capacity_bytes)} GiB ({_gpu_label(self.gpus, a)})"
        verdict = {"fits": "fits", "tight": "tight", "will_not_fit": "will not fit"}.get(self.verdict)
        text = f"memory estimate: {where}" + (f": {verdict}" if verdict else "") + " — " + ", ".join(self._parts())
        if with_fix and self.warn:
            text += "; " + self.fix_text()
        return text

    def fix_text(self) -> str:
        """The fix in words and options, or that none is known."""
        if self.fix is None:
            return "no change the cockpit knows makes it fit"
        return f"fix: {self.fix.text} ({self.fix.cli}) -> {_gib(self.fix.total_bytes)} GiB"

    def _parts(self) -> list[str]:
        c, a = self.components, self.assumptions
        weights = f"weights {_size(c['weights'] + c['reference_model'])}"
        if c["weight_copies"]:
            weights += f" (+{_size(c['weight_copies'])} autocast copies)"
        opt = _optim_label(a["optimizer"])
        if a["finetune"] == "full":
            parts = [weights, f"grads {_size(c['gradients'])}", f"{opt} {_size(c['optimizer'])}"]
        else:
            parts = [weights, f"LoRA+grads+{opt} {_size(c['adapter'] + c['gradients'] + c['optimizer'])}"]
        parts.append(f"activations {_size(c['activations'])} (checkpointing {'on' if a['gradient_checkpointing'] else 'off'})")
        if c["generation"] > c["activations"]:
            parts.append(f"generation {_size(c['generation'])}")
        if c["optimizer_step"] > c["activations"] + c["weight_copies"]:
            parts.append(f"optimizer step {_size(c['optimizer_step'])}")
        parts.append(f"overhead {_size(c['overhead'])}")
        return parts

    def lines(self) -> list[str]:
        """A table of the parts with what each assumes, the verdict and the fix."""
        if not self.known:
            return [self.line()]
        c, a = self.components, self.assumptions
        ckpt = "on" if a["gradient_checkpointing"] else "off"
        rows = [
            f"memory estimate for {self.model}: {_count(a['params'])} parameters ({a['source']}), {a['finetune']}, {a['precision']}",
            f"  weights         {_col(c['weights'])}  in {a['weights_dtype']}",
        ]
        if c["weight_copies"]:
            rows.append(f"  autocast copies {_col(c['weight_copies'])}  half-precision copies of the matmul weights")
        if c["reference_model"]:
            rows.append(f"  reference model {_col(c['reference_model'])}  GRPO's frozen copy (beta > 0)")
        if c["adapter"]:
            rows.append(f"  LoRA adapters   {_col(c['adapter'])}  {_count(a['trainable_params'])} parameters in {a['trainable_dtype']}")
        rows += [
            f"  gradients       {_col(c['gradients'])}  {a['trainable_dtype']}",
            f"  optimizer       {_col(c['optimizer'])}  {a['optimizer']}: {a['optimizer_bytes_per_param']:g} bytes per trainable parameter",
            f"  activations     {_col(c['activations'])}  {a['tokens']} tokens a micro batch, checkpointing {ckpt} "
            f"({_gib(self.activations_other)} GiB with it {'off' if ckpt == 'on' else 'on'})",
        ]
        if c["generation"]:
            rows.append(f"  generation      {_col(c['generation'])}  KV cache of {a['generation_sequences']} sequences")
        if c["optimizer_step"]:
            rows.append(f"  optimizer step  {_col(c['optimizer_step'])}  foreach AdamW's temporaries (not at the same time as activations)")
        rows.append(f"  overhead        {_col(c['overhead'])}  {'CUDA context' if self.device == 'gpu' else 'libraries'} + allocator")
        capacity = "" if self.capacity_bytes is None else f" of {_gib(self.capacity_bytes)} GiB"
        per = "on the CPU" if self.device == "cpu" else "per GPU"
        rows.append(f"  total           {_col(self.total_bytes)}  {per}{capacity}: {self.verdict.replace('_', ' ')}")
        rows += [f"  note: {n}" for n in self.notes]
        if self.warn and self.fix:
            rows.append(f"  fix: {self.fix.text}: {self.fix.cli} -> {_gib(self.fix.total_bytes)} GiB")
        return rows

    def payload(self) -> dict[str, Any]:
        """The `estimate` event's payload."""
        overhead = self.components.get("overhead", 0)
        return {
            "model": self.model,
            "verdict": self.verdict,
            "line": self.line(),
            "reason": self.reason or None,
            "device": self.device,
            "gpus": self.gpus,
            "capacity_bytes": self.capacity_bytes,
            "total_bytes": self.total_bytes,
            "total_gib": round(self.total_bytes / GIB, 2),
            "allocated_bytes": self.total_bytes - overhead if self.known else None,
            "components": self.components,
            "activations_checkpointing_other": self.activations_other,
            "activation_parts": self.activation_parts,
            "fix": self.fix.as_dict() if self.fix else None,
            "assumptions": self.assumptions,
            "notes": self.notes,
        }


def _gib(n: int | float | None) -> str:
    return "?" if n is None else f"{n / GIB:.1f}"


def _size(n: int) -> str:
    """GiB with one decimal; small parts in MiB so a tiny model does not read as all zeros."""
    return f"{n / GIB:.1f}" if n >= 0.05 * GIB else f"{n / 2**20:.0f} MiB"


def _col(n: int) -> str:
    """A size for the table's column: GiB, or MiB under 0.05 GiB."""
    return f"{n / GIB:>7.1f} GiB" if n >= 0.05 * GIB else f"{n / 2**20:>7.0f} MiB"


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def _gpu_label(gpus: list[dict[str, Any]], a: dict[str, Any]) -> str:
    name = str(gpus[0].get("name", "GPU")).replace("NVIDIA ", "") if gpus else "GPU"
    if a["gpus"] > 1:
        return f"{a['gpus']}x {name}, {a['distributed']}"
    return name


def _optim_label(optim: str) -> str:
    if optim.startswith(("adamw", "paged_adamw", "adam")):
        return "AdamW 8-bit" if "8bit" in optim else "AdamW"
    return optim


# ---- the GPUs ------------------------------------------------------------------------------


def apply_overrides(cfg: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of cfg with dotted keys set, e.g. {"train.gradient_checkpointing": True}."""
    out = copy.deepcopy(cfg)
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        out.setdefault(section, {})[key] = value
    return out


def estimate(cfg: dict[str, Any], gpus: list[dict[str, Any]] | None = None, ram_bytes: int | None = None, search_fix: bool = True) -> Estimate:
    """The memory estimate for a resolved config.

    gpus: the visible GPUs as [{name, total_mb, bf16}] (default: NVML's, [] without a driver).
    ram_bytes: the RAM a CPU run is compared with (default: this machine's).
    search_fix: look for the cheapest change when it is tight or does not fit.
    """
    visible = visible_gpus() if gpus is None else list(gpus)
    name = cfg["model"]["name_or_path"]
    try:
        shape = shapes.model_shape(name, cfg["model"].get("revision"))
    except shapes.ShapeUnknown as exc:
        return Estimate(model=name, verdict="unknown", reason=str(exc))
    want = int((cfg.get("run") or {}).get("gpus", 1) or 1)
    used = gpu.chosen(visible, cfg.get("run") or {})
    needs_cuda = cfg["model"]["finetune"] == "qlora" or cfg["model"]["dtype"] == "fp16"
    device = "gpu" if (used or needs_cuda) else "cpu"
    components, other, parts, assumptions, notes = compute_parts(cfg, shape, used, device)
    total = total_bytes(components)
    if device == "cpu" and want > 1:
        total *= want
        notes.append(f"{want} CPU processes, each holding its own share: the total is for all of them")
    if used and len(used) < want:
        notes.append(f"run.gpus={want} but {len(visible)} GPU(s) visible")
    if device == "cpu":
        capacity = ram_bytes if ram_bytes is not None else gpu.system_ram()
    else:
        capacity = int(min(g["total_mb"] for g in used) * 2**20) if used else None
    if capacity is None:
        verdict = "no_gpu"
    elif total > capacity:
        verdict = "will_not_fit"
    elif total > TIGHT * capacity:
        verdict = "tight"
    else:
        verdict = "fits"
    est = Estimate(
        model=name, verdict=verdict, device=device, gpus=used, capacity_bytes=capacity, components=components,
        activations_other=other, activation_parts=parts, total_bytes=total, assumptions=assumptions, notes=notes,
    )
    if search_fix and est.warn:
        from engine.memory.fit import find_fix  # it estimates again: imported when needed

        est.fix = find_fix(cfg, est, visible, ram_bytes)
    return est


