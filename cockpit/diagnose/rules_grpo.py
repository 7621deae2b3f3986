"""GRPO rules: is there a learning signal (reward spread, unclipped completions), is it used, is the
policy still exploring. Levels are medians of the last 5 logs, judged after the first 5."""

from __future__ import annotations

import math
from typing import Any

from cockpit.diagnose.finding import Finding
from cockpit.diagnose.fixes import clean, flags, num
from cockpit.state import WARMUP_LOGS, RunState

# reward-zero-std: 80% of groups with identical rewards (TRL logs frac_reward_zero_std) over the
# last 10 logs; where the log only has reward_std, 80% of the last 10 logs with reward_std <= 0.01.
ZERO_STD_FRAC = 0.8
ZERO_STD_ABS = 0.01
ZERO_STD_LOGS = 10
# completions-clipped: more than 80% of completions stop at max_completion_length; without
# clipped_ratio, a mean length within 2% of the maximum.
CLIPPED_RATIO = 0.8
CLIPPED_LENGTH = 0.98
# reward-flat: after 20 logs (and 20% of the planned steps) the mean reward of the latest quarter of
# logs is not above the first quarter's by 2 standard errors, nor by 5% of its size.
FLAT_MIN_LOGS = 20
FLAT_MIN_SHARE = 0.2
FLAT_SE = 2.0
FLAT_REL = 0.05
# kl-blowup: the KL level above 1 nat is far from the reference model (healthy runs stay near
# 0.01-0.1); red above 10.
KL_AMBER = 1.0
KL_RED = 10.0
# entropy-collapse: token entropy level under 0.1 nat and under a quarter of where it started.
ENTROPY_FLOOR = 0.1
ENTROPY_DROP = 0.25


def _ready(state: RunState, key: str) -> bool:
    series = state.series.get(key)
    return state.kind == "grpo" and series is not None and len(series) > WARMUP_LOGS


def _grpo(state: RunState, key: str, default: Any = None) -> Any:
    """A GRPO setting from the grpo section, else from the TRL pass-through."""
    value = state.cfg(f"grpo.{key}")
    return value if value is not None else state.cfg(f"trl.{key}", default)


def reward_zero_std(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Most groups get identical rewards: their advantages are 0, so they teach nothing."""
    key = "frac_reward_zero_std" if "frac_reward_zero_std" in state.series else "reward_std_zero"
    series = state.series.get(key)
    if memo.get("finding") is not None or series is None or len(series) < max(ZERO_STD_LOGS, WARMUP_LOGS + 1):
        return memo.get("finding")
    n = len(series)
    share = series.mean(n - ZERO_STD_LOGS, n)
    if share < ZERO_STD_FRAC:
        return None
    text = f"{num(100 * share, 2)}% of groups got identical rewards over the last {ZERO_STD_LOGS} logs"
    if key == "reward_std_zero":
        text = f"reward_std <= {ZERO_STD_ABS} on {num(100 * share, 2)}% of the last {ZERO_STD_LOGS} logs"
    evidence = {"share_zero_std": share, "logs": ZERO_STD_LOGS, "source": key}
    if memo.get("finding") is not None:
        return memo["finding"]
    generations = _grpo(state, "num_generations")
    overrides: dict[str, Any] = {}
    if isinstance(generations, int) and generations > 0:
        overrides["grpo.num_generations"] = generations * 2
    temperature = _grpo(state, "temperature")
    if isinstance(temperature, (int, float)) and temperature < 1.0:
        overrides["grpo.temperature"] = 1.0
    fix = ("the task is too hard or too easy for the model, or the reward is too coarse: give partial credit, "
           "pick prompts it sometimes solves" + (f", or sample more varied groups: {flags(overrides)}" if overrides else ""))
    evidence["reward"] = state.level_of("reward")
    finding = Finding("reward-zero-std", "red", "No learning signal: identical rewards", state.step, clean(evidence), text, fix, overrides)
    memo["finding"] = finding
    return finding


def completions_clipped(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Most completions hit max_completion_length: rewards judge cut-off answers."""
    if memo.get("finding") is not None:
        return memo["finding"]
    limit = _grpo(state, "max_completion_length")
    if _ready(state, "completions/clipped_ratio"):
        level = state.level_of("completions/clipped_ratio")
        if level is None or level <= CLIPPED_RATIO:
            return None
        text = f"{num(100 * level, 2)}% of completions stop at max_completion_length"
        evidence: dict[str, Any] = {"clipped_ratio": level}
    elif _ready(state, "completions/mean_length") and isinstance(limit, (int, float)) and limit > 0:
        level = state.level_of("completions/mean_length")
        if level is None or level < CLIPPED_LENGTH * limit:
            return None
        text = f"mean completion length {num(level)} of max_completion_length {limit}"
        evidence = {"mean_length": level}
    else:
        return None
    mean_length = state.level_of("completions/mean_length")
    if not isinstance(limit, (int, float)) or limit <= 0:
        limit = state.level_of("completions/max_length")
    if mean_length is not None:
        text += f"; mean length {num(mean_length)}" + (f" of {num(limit)}" if limit else "")
    overrides: dict[str, Any] = {}
    if isinstance(limit, (int, float)) and limit > 0:
        overrides["grpo.max_completion_length"] = int(limit) * 2
    fix = ("let completions finish" + (f": {flags(overrides)}" if overrides else ": raise grpo.max_completion_length")
           + "; or reward concise answers and ask for them in the prompt")
    evidence.update(mean_length=mean_length, max_completion_length=limit)
    finding = Finding("completions-clipped", "red", "Completions clipped at max length", state.step, clean(evidence), text, fix, overrides)
    memo["finding"] = finding
    return finding


def reward_flat(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Rewards not improving: the latest quarter of logs is no better than the first."""
    series = state.series.get("reward")
    if state.kind != "grpo" or series is None or len(series) < FLAT_MIN_LOGS:
        return memo.get("finding")
    total = state.total_steps
    if total and series.last_step < FLAT_MIN_SHARE * total:
        return memo.get("finding")
    n = len(series)
    block = max(5, n // 4)
    first, last = series.mean(0, block), series.mean(n - block, n)
    se = math.sqrt(series.var(0, block) / block + series.var(n - block, n) / block)
    gain = last - first
    if gain > FLAT_SE * se or gain > FLAT_REL * abs(first) and gain > 0:
        return memo.get("finding")
    overrides: dict[str, Any] = {}
    lr = state.lr
    if lr and lr < 5e-6:
        overrides["train.learning_rate"] = float(f"{lr * 5:.1g}")  # GRPO with LoRA usually runs at 5e-6 to 1e-5
    fix = ("check the reward functions on real completions (the generations panel), then"
           + (f" raise the learning rate: {flags(overrides)}" if overrides else " raise --lr or the number of generations per prompt"))
    evidence = clean({"first": first, "last": last, "gain": gain, "stderr": se, "logs": n, "learning_rate": lr})
    text = f"mean reward {num(first)} over the first {block} logs, {num(last)} over the last {block} (step {series.last_step})"
    finding = Finding("reward-flat", "amber", "Rewards are not improving", series.last_step, evidence, text, fix, overrides)
    memo["finding"] = finding
    return finding


def kl_blowup(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """KL to the reference model growing large: the policy drifts away (reward hacking, collapse)."""
    if not _ready(state, "kl"):
        return memo.get("finding")
    level = state.level_of("kl")
    if level is None or level < KL_AMBER:
        return memo.get("finding")
    severity = "red" if level >= KL_RED else "amber"
    previous = memo.get("finding")
    if previous is not None and (previous.severity == severity or previous.severity == "red") and level <= memo["peak"] * 2:
        return previous
    memo["peak"] = level
    beta = _grpo(state, "beta")
    overrides: dict[str, Any] = {}
    overrides["grpo.beta"] = max(0.04, 2 * beta) if isinstance(beta, (int, float)) else 0.04
    if state.lr:
        overrides["train.learning_rate"] = float(f"{state.lr / 2:.1g}")
    fix = f"hold the policy closer to the reference and step more gently: {flags(overrides)}"
    text = f"KL {num(level)} at step {state.step} (median of the last 5 logs)"
    finding = Finding("kl-blowup", severity, "KL divergence growing large", state.step,
                      clean({"kl": level, "beta": beta}), text, fix, overrides)
    memo["finding"] = finding
    return finding


def entropy_collapse(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Token entropy near zero: the policy samples the same completion every time, exploration is over."""
    if memo.get("finding") is not None or not _ready(state, "entropy"):
        return memo.get("finding")
    level, start = state.level_of("entropy"), state.firsts.get("entropy")
    if level is None or start is None or level >= ENTROPY_FLOOR or level >= ENTROPY_DROP * start:
        return None
    temperature = _grpo(state, "temperature")
    overrides: dict[str, Any] = {"grpo.temperature": round(max(1.0, (temperature or 1.0) + 0.2), 2)}
    if state.lr:
        overrides["train.learning_rate"] = float(f"{state.lr / 2:.1g}")
    fix = f"sample more freely and update more gently: {flags(overrides)}"
    text = f"entropy {num(level)} at step {state.step}, down from {num(start)}"
    finding = Finding("entropy-collapse", "amber", "Entropy collapsed", state.step,
                      clean({"entropy": level, "start": start}), text, fix, overrides)
    memo["finding"] = finding
    return finding
