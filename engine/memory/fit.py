"""The cheapest change that brings a run that is tight or will not fit under 90% of its GPU: tried
in order of what it costs the result, combined when no single change is enough."""

from __future__ import annotations

from typing import Any

from engine.memory.estimate import TIGHT, Estimate, Fix, apply_overrides, estimate

def _candidates(cfg: dict[str, Any], est: Estimate, visible: list[dict[str, Any]]) -> list[list[tuple[str, dict[str, Any], str]]]:
    """Groups of (words, overrides, command-line text), cheapest for the result first; within a group, mildest first."""
    t, m, a = cfg["train"], cfg["model"], est.assumptions
    on_gpu = est.device == "gpu"
    groups: list[list[tuple[str, dict[str, Any], str]]] = []
    if not a["gradient_checkpointing"]:
        groups.append([("turn on gradient checkpointing", {"train.gradient_checkpointing": True}, "--set train.gradient_checkpointing=true")])
    b, ga = int(t["per_device_train_batch_size"]), int(t["gradient_accumulation_steps"])
    splits = []
    for smaller in (d for d in range(b - 1, 0, -1) if b % d == 0):  # divisors keep the effective batch exact
        acc = ga * b // smaller
        splits.append((f"batch {smaller} x grad accum {acc} (same effective batch)",
                       {"train.per_device_train_batch_size": smaller, "train.gradient_accumulation_steps": acc},
                       f"--batch-size {smaller} --grad-accum {acc}"))
    if splits:
        groups.append(splits)
    if on_gpu and a["optimizer_bytes_per_param"] > 2 and est.components["optimizer"] > 0.02 * est.total_bytes:
        groups.append([("an 8-bit optimizer (adamw_8bit, needs bitsandbytes)", {"train.optim": "adamw_8bit"}, "--set train.optim=adamw_8bit")])
    if m["finetune"] == "full":
        groups.append([("LoRA instead of full fine-tuning", {"model.finetune": "lora"}, "--set model.finetune=lora")])
    if on_gpu and m["finetune"] != "qlora":
        groups.append([("QLoRA (4-bit base model) instead of " + ("LoRA" if m["finetune"] == "lora" else "full fine-tuning"),
                        {"model.finetune": "qlora"}, "--qlora")])
    if a["generation_sequences"]:
        length = int(cfg["grpo"]["max_completion_length"])
        key, flag, floor = "grpo.max_completion_length", "--set grpo.max_completion_length=", 64
    else:
        length, key, flag, floor = int(t["max_length"]), "train.max_length", "--max-length ", 256
    shorter = []
    n = length // 2
    while n >= floor:
        shorter.append((f"{key.split('.')[1]} {n} (longer examples are cut)", {key: n}, f"{flag}{n}"))
        n //= 2
    if shorter:
        groups.append(shorter)
    more = [k for k in (2, 4, 8, 16) if a["gpus"] < k <= len(visible)]
    if on_gpu and more:
        groups.append([(f"{k} GPUs with fsdp", {"run.gpus": k, "run.distributed": "fsdp"}, f"--gpus {k} --distributed fsdp") for k in more])
    return groups


def find_fix(cfg: dict[str, Any], est: Estimate, visible: list[dict[str, Any]], ram_bytes: int | None = None) -> Fix | None:
    """The cheapest change that brings the estimate under 90% of the memory; combined changes when no single one does."""

    def trial(steps: list[tuple[str, dict[str, Any], str]]) -> Estimate:
        overrides = {k: v for _, o, _ in steps for k, v in o.items()}
        return estimate(apply_overrides(cfg, overrides), gpus=visible, ram_bytes=ram_bytes, search_fix=False)

    def fits(e: Estimate) -> bool:
        return e.known and e.capacity_bytes is not None and e.total_bytes <= TIGHT * e.capacity_bytes

    def as_fix(steps: list[tuple[str, dict[str, Any], str]], e: Estimate) -> Fix:
        overrides = {k: v for _, o, _ in steps for k, v in o.items()}
        return Fix(" + ".join(t for t, _, _ in steps), overrides, " ".join(c for _, _, c in steps), e.total_bytes)

    groups = _candidates(cfg, est, visible)
    for group in groups:
        for step in group:
            e = trial([step])
            if fits(e):
                return as_fix([step], e)
    # No single change: add them up in the same order (a later step replaces one that sets the same key),
    # the mildest of each group that is enough, else its strongest; then drop the steps not needed.
    steps: list[tuple[str, dict[str, Any], str]] = []
    for group in groups:
        for i, step in enumerate(group):
            tried = [s for s in steps if not set(s[1]) & set(step[1])] + [step]
            e = trial(tried)
            if fits(e) or i == len(group) - 1:
                steps = tried
                break
        if fits(e):
            for step in reversed(list(steps)):  # the costliest first: keep the cheap changes that suffice
                fewer = [s for s in steps if s is not step]
                if fewer and fits(trial(fewer)):
                    steps = fewer
            return as_fix(steps, trial(steps))
    return None
