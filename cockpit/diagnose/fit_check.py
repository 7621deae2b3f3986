"""Fixes a user can take: a finding's overrides are checked against the memory estimate.

A fix that raises max_length (truncation) or the batch can turn a run that trains into one that
runs out of memory. Before a finding offers such a fix, the run's config with the overrides is
estimated on the run's own device (the `estimate` event: its GPUs, or the RAM of a CPU run). When
it would not fit, truncation falls back to the max_length that keeps 99% of the records with the
longest ones dropped (data.too_long=drop, Axolotl's excess_length_strategy); any fix still too big
takes the estimate's own way to fit (gradient checkpointing, a smaller batch ...), said in the fix.
Standard library only: engine.memory.estimate reads config.json and safetensors headers, never weights.
"""

from __future__ import annotations

from typing import Any

from cockpit.diagnose.finding import Finding
from cockpit.diagnose.fixes import flags
from cockpit.format import gib
from cockpit.state import RunState

# Overrides that change how much memory a step needs.
MEMORY_KEYS = frozenset({
    "train.max_length", "train.per_device_train_batch_size", "train.gradient_checkpointing", "model.finetune",
    "lora.r", "grpo.num_generations", "grpo.max_completion_length", "model.dtype",
})


def _estimate(state: RunState, overrides: dict[str, Any]) -> Any:
    """The run's estimate with `overrides` applied, on the device it ran on; None when not known."""
    where = state.estimate or {}
    if not state.config or where.get("verdict") in (None, "unknown"):
        return None
    from engine.memory import estimate as est_mod

    try:
        cfg = est_mod.apply_overrides(state.config, overrides)
        return est_mod.estimate(cfg, gpus=list(where.get("gpus") or []), ram_bytes=where.get("capacity_bytes"))
    except Exception:  # advisory: a config the estimate cannot read leaves the fix as the rule wrote it
        return None


def _gib(n: int) -> str:
    return gib(n / 2**20)


def check(finding: Finding, state: RunState) -> None:
    """Make `finding`'s fix one that fits in memory, or say in it what else it needs."""
    if not finding.overrides or not MEMORY_KEYS & finding.overrides.keys():
        return
    est = _estimate(state, finding.overrides)
    if est is None or est.verdict != "will_not_fit":
        return
    keep = ((state.dataset or {}).get("keep_max_length") or {}) if state.dataset else {}
    p99 = keep.get("p99")
    if finding.code == "truncation" and isinstance(p99, int) and 0 < p99 < finding.overrides.get("train.max_length", 0):
        from engine.data.tokens import round_up

        smaller = {"train.max_length": round_up(p99), "data.too_long": "drop"}
        est99 = _estimate(state, smaller)
        if est99 is not None and est99.verdict != "will_not_fit":
            finding.overrides = smaller
            finding.fix = (f"keeping every record needs {_gib(est.total_bytes)} of {_gib(est.capacity_bytes or 0)}: keep 99% and drop "
                           f"the longest: {flags(smaller)}")
            finding.evidence["fit"] = {"keep_all_bytes": est.total_bytes, "capacity_bytes": est.capacity_bytes, "p99": p99}
            return
    if est.fix is not None:
        merged = {**finding.overrides, **est.fix.overrides}
        finding.fix += f"; that alone needs {_gib(est.total_bytes)} of {_gib(est.capacity_bytes or 0)}: with {est.fix.text}: {flags(merged)}"
        finding.overrides = merged
    else:
        finding.fix += f"; that needs {_gib(est.total_bytes)} of {_gib(est.capacity_bytes or 0)} and will not fit"
    finding.evidence["fit"] = {"bytes": est.total_bytes, "capacity_bytes": est.capacity_bytes}
