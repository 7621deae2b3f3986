"""GRPO rules on how the run moves: rewards that do not improve or stop improving, a reward that
rises while the held-out one falls, completion lengths running away or collapsing, clipped policy
updates, one reward function drowning the others, KL drifting away, entropy collapsing.

Trends are robust statistics (cockpit/diagnose/trend.py): medians of pairwise slopes and Kendall's
tau over bucketed points, so a few odd logs neither raise nor hide a finding.
"""

from __future__ import annotations

import math
from typing import Any

from cockpit.diagnose import trend
from cockpit.diagnose.finding import Finding
from cockpit.diagnose.fixes import clean, flags, num
from cockpit.diagnose.rules_grpo import _grpo, _ready
from cockpit.state import WARMUP_LOGS, RunState

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
# reward-plateau (info): after 30 logs, rewards that rose over the first two thirds (by 2 standard
# errors) and are flat over the last third (Kendall's tau within +-0.3, no higher than the third before).
PLATEAU_MIN_LOGS = 30
PLATEAU_TAU = 0.3
# reward-hacking: the training reward rising steadily (tau >= 0.5) while an eval reward or accuracy
# has fallen 10% of its range below its best over at least 3 evaluations after the best.
HACK_TAU = 0.5
HACK_DROP = 0.10
HACK_EVALS = 3
# length: completion length rising steadily (tau >= 0.6) to within 10% of max_completion_length,
# or collapsing to under a quarter of where it started and under 10% of the maximum.
LENGTH_NEAR = 0.9
LENGTH_COLLAPSE = 0.25
LENGTH_FLOOR = 0.1
# clip-saturation: more than 20% of tokens have their probability ratio clipped (healthy PPO-style
# updates clip a few percent): the steps are too large for the trust region.
CLIP_SATURATION = 0.2
# reward-dominated: with several reward functions, one holds 90% of the weighted reward spread while
# another never varied (its std never above 2% of that spread) and never paid (its mean never above
# 0): it never fires, and the model learns the first one only.
DOMINATED_SHARE = 0.9
QUIET_SHARE = 0.02
# kl-drift: KL rising steadily (tau >= 0.6) over the last half of the run to above 0.1 nat and to
# at least 3x where that half started; kl-blowup covers levels above 1 nat.
KL_DRIFT_LEVEL = 0.1
KL_DRIFT_RATIO = 3.0


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


def reward_plateau(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Rewards rose, then stopped rising over the last third of the run (info: it may be as good as it gets)."""
    series = state.series.get("reward")
    if series is None or len(series) < PLATEAU_MIN_LOGS or memo.get("finding") is not None:
        return memo.get("finding")
    n = len(series)
    third = n // 3
    first, middle, last = series.mean(0, third), series.mean(third, 2 * third), series.mean(2 * third, n)
    se = math.sqrt(series.var(0, third) / third + series.var(third, 2 * third) / third)
    _, ys = trend.points(series, 2 / 3)
    if not (middle - first > FLAT_SE * se and last <= middle and abs(trend.kendall_tau(ys)) <= PLATEAU_TAU):
        return None
    since = series.step_at(2 * third)
    text = f"mean reward {num(first)} -> {num(middle)} over the first two thirds, {num(last)} since step {since}"
    fix = ("if this reward is what you wanted, stop here and save the time; to go further, harder prompts "
           "or a reward with finer credit")
    finding = Finding("reward-plateau", "info", "Rewards stopped improving", since,
                      clean({"first": first, "middle": middle, "last": last, "since_step": since}), text, fix, {})
    memo["finding"] = finding
    return finding


_EVAL_SCORES = ("eval_reward", "eval_answer_accuracy", "eval_accuracy")


def reward_hacking(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """The training reward climbs while the held-out reward or answer accuracy falls: the policy
    learns what the reward pays for, not the task (format tricks, length, a loophole)."""
    train = state.series.get("reward")
    if train is None or len(train) < 2 * WARMUP_LOGS:
        return memo.get("finding")
    rise = trend.rising(train, tau=HACK_TAU)
    if rise is None:
        return memo.get("finding")
    for key in _EVAL_SCORES:
        scores = state.eval_metrics.get(key)
        if scores is None or len(scores) < HACK_EVALS + 1 or scores.hi is None or scores.lo is None:
            continue
        xs, ys = scores.points(256)
        best_i = max(range(len(ys)), key=lambda i: ys[i])
        after = len(ys) - 1 - best_i
        span = (scores.hi - scores.lo) or abs(scores.hi) or 1.0
        if after < HACK_EVALS or ys[-1] > ys[best_i] - HACK_DROP * max(span, abs(ys[best_i])):
            continue
        if memo.get("key") == (key, len(ys)):
            return memo["finding"]
        text = (f"training reward rising ({num(train.first)} -> {num(train.last)}) while {key} fell from {num(ys[best_i])} "
                f"at step {xs[best_i]} to {num(ys[-1])} at step {xs[-1]}")
        fix = (f"use the step-{xs[best_i]} model (best/ keeps the best eval score); read the generations for what the "
               "reward pays for, and make the reward check the answer, not its form (or add a KL penalty: --set grpo.beta=0.04)")
        overrides = {"grpo.beta": 0.04} if not _grpo(state, "beta") else {}
        finding = Finding("reward-hacking", "red", "Reward up, held-out score down", xs[best_i],
                          clean({"eval_key": key, "best": ys[best_i], "best_step": xs[best_i], "latest": ys[-1],
                                 "train_first": train.first, "train_last": train.last, "tau": rise[1]}), text, fix, overrides)
        memo.update(key=(key, len(ys)), finding=finding)
        return finding
    return memo.get("finding")


def length_pathology(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Completion length running away to the limit, or collapsing to almost nothing."""
    if memo.get("finding") is not None or not _ready(state, "completions/mean_length"):
        return memo.get("finding")
    series = state.series["completions/mean_length"]
    limit = _grpo(state, "max_completion_length")
    level, start = state.level_of("completions/mean_length"), state.firsts.get("completions/mean_length")
    if level is None or start is None or not isinstance(limit, (int, float)) or limit <= 0:
        return None
    growing = trend.rising(series)
    if growing is not None and level >= LENGTH_NEAR * limit and start < LENGTH_NEAR * limit:
        text = f"mean completion length {num(start)} -> {num(level)} of max_completion_length {limit}, rising steadily"
        fix = ("the reward pays for length or the model never learns to stop: reward concise answers, check that the "
               f"answer ends the completion, or give room: --max-completion-length {int(limit) * 2}")
        overrides: dict[str, Any] = {"grpo.max_completion_length": int(limit) * 2}
        title = "Completions growing to the limit"
    elif level <= LENGTH_COLLAPSE * start and level <= LENGTH_FLOOR * limit:
        text = f"mean completion length {num(start)} -> {num(level)} tokens (max_completion_length {limit})"
        fix = ("the policy learned that saying little scores best: check the rewards on short completions "
               "(a format reward met by an empty answer?), and require the reasoning the task needs")
        overrides, title = {}, "Completions collapsed to almost nothing"
    else:
        return None
    finding = Finding("completion-length", "amber", title, state.step,
                      clean({"start": start, "level": level, "max_completion_length": limit}), text, fix, overrides)
    memo["finding"] = finding
    return finding


_CLIP_KEYS = ("clip_ratio/region_mean", "clip_ratio")


def clip_saturation(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Many tokens' probability ratios are clipped: each step moves the policy further than the
    trust region allows, and the clipped tokens teach nothing."""
    if memo.get("finding") is not None:
        return memo["finding"]
    key = next((k for k in _CLIP_KEYS if _ready(state, k)), None)
    level = state.level_of(key) if key else None
    if level is None or level < CLIP_SATURATION:
        return None
    overrides: dict[str, Any] = {}
    if state.lr:
        overrides["train.learning_rate"] = float(f"{state.lr / 2:.1g}")
    text = f"{num(100 * level, 2)}% of tokens clipped ({key}, median of the last 5 logs) at step {state.step}"
    fix = f"smaller steps: {flags(overrides)}" if overrides else "lower the learning rate"
    fix += ", or fewer updates per batch of generations (--set trl.num_iterations=1)"
    finding = Finding("clip-saturation", "amber", "Policy updates clipped", state.step, clean({"key": key, "level": level}), text, fix, overrides)
    memo["finding"] = finding
    return finding


def _weights(state: RunState) -> dict[str, float]:
    rewards = state.cfg("grpo.rewards") or {}
    if isinstance(rewards, dict):
        return {str(k): float(v) for k, v in rewards.items() if isinstance(v, (int, float))}
    out = {}
    for item in rewards:
        if isinstance(item, dict) and "name" in item:
            out[str(item["name"])] = float(item.get("weight", 1.0))
    return out


def reward_dominated(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """One reward function carries (nearly) all the reward spread: the others might as well be absent."""
    if memo.get("finding") is not None:
        return memo["finding"]
    stds = {k[len("rewards/"):-len("/std")]: state.level_of(k) for k in state.windows if k.startswith("rewards/") and k.endswith("/std")}
    stds = {k: v for k, v in stds.items() if v is not None}
    if len(stds) < 2 or not _ready(state, next(f"rewards/{k}/std" for k in stds)):
        return None
    weights = _weights(state)
    spread = {k: abs(weights.get(k, 1.0)) * v for k, v in stds.items()}
    total = sum(spread.values())
    if total <= 0:
        return None
    top = max(spread, key=spread.get)  # type: ignore[arg-type]
    # Quiet: never any spread over the whole run and never paying anything. A function that spread
    # once and now sits still has been learned (a format reward at its maximum): that is fine.
    quiet = []
    for name, value in spread.items():
        std_all, mean_all = state.series.get(f"rewards/{name}/std"), state.series.get(f"rewards/{name}/mean")
        if (name != top and std_all is not None and mean_all is not None and (std_all.hi or 0) * abs(weights.get(name, 1.0)) < QUIET_SHARE * total
                and (mean_all.hi or 0) <= 0):
            quiet.append(name)
    if spread[top] / total < DOMINATED_SHARE or not quiet:
        return None
    text = (f"{top} holds {num(100 * spread[top] / total, 2)}% of the weighted reward spread; "
            + ", ".join(f"{k} (mean {num(state.level_of(f'rewards/{k}/mean'))}, never above {num(state.series[f'rewards/{k}/mean'].hi)})" for k in quiet)
            + " never pays and never varies")
    fix = (f"the model learns {top} only: check {', '.join(quiet)} on real completions (does it ever fire?), "
           f"or rebalance the weights (--rewards)")
    finding = Finding("reward-dominated", "amber", "One reward function dominates", state.step,
                      clean({"dominant": top, "share": spread[top] / total, "std": stds, "weights": weights}), text, fix, {})
    memo["finding"] = finding
    return finding


def kl_drift(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """KL to the reference rising steadily over the last half of the run: the policy walks away."""
    if memo.get("finding") is not None or not _ready(state, "kl") or "kl-blowup" in state.raised:
        return memo.get("finding")
    series = state.series["kl"]
    if len(series) < 4 * WARMUP_LOGS:
        return None
    n = len(series)
    half_start = series.mean(n // 2, n // 2 + WARMUP_LOGS)
    level = state.level_of("kl")
    if level is None or level < KL_DRIFT_LEVEL or level < KL_DRIFT_RATIO * max(half_start, 1e-9) or trend.rising(series, 0.5) is None:
        return None
    beta = _grpo(state, "beta")
    overrides: dict[str, Any] = {"grpo.beta": max(0.04, 2 * beta) if isinstance(beta, (int, float)) else 0.04}
    text = f"KL {num(half_start)} -> {num(level)} over the last half of the run, rising steadily"
    fix = f"hold the policy closer to the reference: {flags(overrides)}, or lower --lr"
    finding = Finding("kl-drift", "amber", "KL drifting away", state.step, clean({"from": half_start, "level": level, "beta": beta}),
                      text, fix, overrides)
    memo["finding"] = finding
    return finding
