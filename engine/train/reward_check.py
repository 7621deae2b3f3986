"""The reward check: before GRPO trains, is there a learning signal at all?

GRPO learns from the spread of rewards inside each group of completions of one prompt. A group
whose completions all score the same has advantage 0 and teaches nothing; so does a run whose every
completion is cut at max_completion_length (the format rewards never fire), or whose reward function
returns one value whatever it reads. Any of these shows in the first group sampled, so the run
samples one group for a few prompts with its own settings (temperature, top-k/p, completion length),
scores them with its own reward functions, and writes a `reward_check` event (the cockpit raises a
red finding on any problem). Where no group has any spread nothing can be learned: it refuses to
train (grpo.reward_check=false, --skip-reward-check, trains anyway). Every completion clipped, or one
reward function constant, still leaves a signal (a length or format reward can vary): noted, not refused.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from engine.errors import EngineError

# A group counts as having spread when its totals differ by more than this (rewards are floats).
SPREAD = 1e-6


def _generate(trainer: Any, tokenizer: Any, texts: list[str], g: dict[str, Any]) -> tuple[list[list[int]], list[bool]]:
    """num_generations completions of each prompt, sampled with the trainer's own generation config
    (temperature, top-k/p, length, end tokens, the trl.generation_kwargs); (token ids, clipped)."""
    import copy

    import torch

    model = trainer.model
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues each prompt from its last token
    try:
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    finally:
        tokenizer.padding_side = side
    ends = set(getattr(trainer, "eos_token_ids", None) or [tokenizer.eos_token_id]) - {None}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = getattr(trainer, "generation_config", None)
    if config is not None:  # TRL's transformers path: sample exactly as training will
        config = copy.deepcopy(config)
        config.num_return_sequences = g["num_generations"]
        kwargs: dict[str, Any] = {"generation_config": config}
    else:  # vLLM serves training's samples: the same settings through transformers
        kwargs = {"do_sample": True, "temperature": g["temperature"], "top_p": g["top_p"], "top_k": g["top_k"] or None,
                  "max_new_tokens": g["max_completion_length"], "num_return_sequences": g["num_generations"],
                  "pad_token_id": pad, "eos_token_id": sorted(ends)}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.generate(**batch, **kwargs)
    finally:
        model.train(was_training)
    new = out[:, batch["input_ids"].shape[1]:].tolist()
    ids, clipped = [], []
    for row in new:
        cut = next((i for i, t in enumerate(row) if t in ends or t == pad), None)
        ids.append(row if cut is None else row[: cut + 1])
        clipped.append(cut is None)  # TRL's test: no end token within max_completion_length
    return ids, clipped


def _score(reward_set: Any, rows: list[dict[str, Any]], completions: list[Any], ids: list[list[int]]) -> list[list[float | None]]:
    """Each reward function on every completion, called as TRL calls it; [function][completion]."""
    columns = {k: [r.get(k) for r in rows] for k in rows[0] if k not in ("prompt", "completion")}
    out = []
    for func in reward_set.funcs:
        values = func(prompts=[r["prompt"] for r in rows], completions=completions, completion_ids=ids,
                      trainer_state=None, log_extra=lambda *a, **k: None, log_metric=lambda *a, **k: None, **columns)
        out.append([None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values])
    return out


def check(cfg: dict[str, Any], trainer: Any, tokenizer: Any, reward_set: Any, rows: list[dict[str, Any]], events: Any,
          render: Any) -> dict[str, Any]:
    """Sample, score, write the reward_check event; raise EngineError (code no_reward_signal) where
    nothing can be learned and the check is on. `render(prompt)` is the prompt's text as the trainer sees it."""
    g = cfg["grpo"]
    count = min(g["reward_check_prompts"], len(rows))
    if count == 0:
        return {}
    step = max(1, len(rows) // count)
    picked = [rows[i * step] for i in range(count)]  # spread over the file, not its first few lines
    events.emit("status", phase="checking rewards", message=f"sampling {g['num_generations']} completions for {count} prompts, scored by "
                f"{', '.join(reward_set.names)}")
    ids, clipped = _generate(trainer, tokenizer, [render(r["prompt"]) for r in picked], g)
    n = g["num_generations"]
    expanded = [r for r in picked for _ in range(n)]
    texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
    conversational = not isinstance(picked[0]["prompt"], str)
    completions = [[{"role": "assistant", "content": t}] if conversational else t for t in texts]
    scores = _score(reward_set, expanded, completions, ids)
    totals = []
    for i in range(len(expanded)):
        parts = [w * s[i] for w, s in zip(reward_set.weights, scores) if s[i] is not None]
        totals.append(sum(parts) if parts else None)

    groups = []
    for p, row in enumerate(picked):
        members = [t for t in totals[p * n:(p + 1) * n] if t is not None]
        spread = (max(members) - min(members)) if members else 0.0
        groups.append({"prompt": _display(row["prompt"]), "answer": row.get("answer"), "totals": [round(t, 4) for t in members],
                       "spread": round(spread, 4), "clipped": sum(clipped[p * n:(p + 1) * n]),
                       "sample": texts[p * n][:300]})
    functions = {}
    for name, values in zip(reward_set.names, scores):
        real = [v for v in values if v is not None]
        functions[name] = {"mean": round(statistics.fmean(real), 4) if real else None,
                           "std": round(statistics.pstdev(real), 4) if len(real) > 1 else 0.0,
                           "min": min(real) if real else None, "max": max(real) if real else None,
                           "constant": len(real) > 1 and max(real) - min(real) <= SPREAD, "scored": len(real)}
    flat_groups = sum(1 for grp in groups if grp["spread"] <= SPREAD)
    result = {
        "prompts": count, "generations": n, "completions": len(totals), "groups": groups,
        "zero_spread_groups": flat_groups, "clipped": sum(clipped), "clipped_share": round(sum(clipped) / len(clipped), 4),
        "functions": functions, "max_completion_length": g["max_completion_length"],
        "mean_length": round(statistics.fmean(len(i) for i in ids), 1),
    }
    problems = _problems(result, reward_set.names)
    result["problems"] = problems
    events.emit("reward_check", **result)
    from engine.train import distributed

    (silent,) = distributed.agree(result["zero_spread_groups"] == count)  # every rank refuses together, or none
    if silent and g["reward_check"]:
        raise EngineError("data", f"no learning signal before training: {'; '.join(problems)}; "
                          f"{fix_words(result, g)} (or --skip-reward-check to train anyway)",
                          code="no_reward_signal", key="grpo.rewards", data=result, overrides=fix_overrides(result, g))
    return result


def _display(prompt: Any) -> str:
    from engine.data.prompts import prompt_display

    return prompt_display(prompt)[:200]


def _problems(result: dict[str, Any], names: list[str]) -> list[str]:
    """What makes the groups teach nothing, each in a few words with its numbers."""
    out = []
    n = result["prompts"]
    if result["zero_spread_groups"] == n:
        values = sorted({t for grp in result["groups"] for t in grp["totals"]})
        at = f" (every completion scores {values[0]:g})" if len(values) == 1 else ""
        out.append(f"all {n} groups have zero reward spread{at}")
    if result["clipped"] == result["completions"]:
        out.append(f"all {result['completions']} completions are cut at max_completion_length={result['max_completion_length']}")
    for name in names:
        if result["functions"][name]["constant"]:
            out.append(f"reward '{name}' gives every completion {result['functions'][name]['min']:g}")
    return out


def fix_overrides(result: dict[str, Any], g: dict[str, Any]) -> dict[str, Any]:
    """The settings most likely to bring spread back: room to finish, more and freer samples."""
    overrides: dict[str, Any] = {}
    if result["clipped_share"] >= 0.5:
        overrides["grpo.max_completion_length"] = int(g["max_completion_length"]) * 2
    if result["zero_spread_groups"] == result["prompts"]:
        overrides["grpo.num_generations"] = int(g["num_generations"]) * 2
        if g["temperature"] < 1.0:
            overrides["grpo.temperature"] = 1.0
    return overrides


def fix_words(result: dict[str, Any], g: dict[str, Any]) -> str:
    from engine.config.options import flags

    overrides = fix_overrides(result, g)
    words = []
    if "grpo.max_completion_length" in overrides:
        words.append("let completions finish")
    if result["zero_spread_groups"] == result["prompts"]:
        words.append("give partial credit (a format reward) or easier prompts, and sample more varied groups")
    return ", ".join(words) + (f": {flags(overrides)}" if overrides else "") if words else "check the reward functions on real completions"

