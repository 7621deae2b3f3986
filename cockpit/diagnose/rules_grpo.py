"""GRPO rules: is there a learning signal (reward spread, unclipped completions), is it used, is the
policy still exploring. Levels are medians of the last 5 logs, judged after the first 5."""

from __future__ import annotations

from typing import Any

from cockpit.diagnose.finding import Finding
from cockpit.diagnose.fixes import clean, flags, num
from cockpit.diagnose.rules_data import claimed
from cockpit.state import WARMUP_LOGS, RunState

# reward-zero-std: 80% of groups with identical rewards (TRL logs frac_reward_zero_std) over the
# last 10 logs; where the log only has reward_std, 80% of the last 10 logs with reward_std <= 0.01.
ZERO_STD_FRAC = 0.8
ZERO_STD_ABS = 0.01
ZERO_STD_LOGS = 10
# reward-zero-std at the top reward after the mean reward rose by half of it: solved (info), not stuck.
SOLVED_GAIN = 0.5
# A share logged as 1.0 on every log (99.9%: float noise) is certain, not a trend: judged from log 1.
CERTAIN = 0.999
# completions-clipped: red when more than 80% of completions stop at max_completion_length (the
# rewards judge cut-off answers), amber from a third (the long tail of answers is already lost);
# without clipped_ratio, a mean length within 2% of the maximum.
CLIPPED_RATIO = 0.8
CLIPPED_AMBER = 1 / 3
CLIPPED_LENGTH = 0.98


def _ready(state: RunState, key: str) -> bool:
    series = state.series.get(key)
    return state.kind == "grpo" and series is not None and len(series) > WARMUP_LOGS


def _grpo(state: RunState, key: str, default: Any = None) -> Any:
    """A GRPO setting from the grpo section, else from the TRL pass-through."""
    value = state.cfg(f"grpo.{key}")
    return value if value is not None else state.cfg(f"trl.{key}", default)


def _every_log(state: RunState, key: str, at_least: float = CERTAIN) -> bool:
    """Every log so far has `key` at `at_least` or above (a certain signal needs no warm-up)."""
    series = state.series.get(key)
    return series is not None and len(series) >= 1 and series.lo is not None and series.lo >= at_least


def _which_way(state: RunState) -> tuple[str, str]:
    """Whether the identical rewards are the best or the worst seen: too easy or too hard.

    From the latest generations' zero-spread groups against every completion total seen; with one
    value only, a total at or below 0 reads as every completion failing."""
    zero, lo, hi = state.zero_std_groups, state.group_lo, state.group_hi
    if zero and lo is not None and hi is not None:
        if hi - lo > 1e-9:
            top = sum(1 for v in zero if v >= hi - 1e-9)
            bottom = sum(1 for v in zero if v <= lo + 1e-9)
            if bottom >= top and bottom:
                return "all_wrong", f"{bottom} of {len(zero)} identical groups score the lowest reward seen ({num(lo)})"
            if top:
                return "all_correct", f"{top} of {len(zero)} identical groups score the highest reward seen ({num(hi)})"
        elif lo <= 0:
            return "all_wrong", f"every completion scores {num(lo)}"
    level = state.level_of("reward")
    if level is not None and level <= 0 and (state.series["reward"].hi or 0) <= 0:
        return "all_wrong", f"the mean reward never rose above {num(state.series['reward'].hi)}"
    return "unknown", ""


def reward_zero_std(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Most groups get identical rewards: their advantages are 0, so they teach nothing. Certain from
    the first log when every group of every log is identical and nothing moves (no clip room, no gradient)."""
    key = "frac_reward_zero_std" if "frac_reward_zero_std" in state.series else "reward_std_zero"
    series = state.series.get(key)
    if memo.get("finding") is not None or series is None:
        return memo.get("finding")
    n = len(series)
    stuck = _every_log(state, "completions/clipped_ratio") or (state.grad_seen > 0 and state.grad_zero == state.grad_seen)
    certain = key == "frac_reward_zero_std" and _every_log(state, key) and stuck
    if certain:
        share = 1.0
        text = "every group got identical rewards " + ("on the first log" if n == 1 else f"on all {n} logs")
    else:
        if n < max(ZERO_STD_LOGS, WARMUP_LOGS + 1):
            return None
        share = series.mean(n - ZERO_STD_LOGS, n)
        if share < ZERO_STD_FRAC:
            return None
        text = f"{num(100 * share, 2)}% of groups got identical rewards over the last {ZERO_STD_LOGS} logs"
        if key == "reward_std_zero":
            text = f"reward_std <= {ZERO_STD_ABS} on {num(100 * share, 2)}% of the last {ZERO_STD_LOGS} logs"
    way, why = _which_way(state)
    evidence = {"share_zero_std": share, "logs": n if certain else ZERO_STD_LOGS, "source": key, "groups": way,
                "reward": state.level_of("reward"), "certain": certain}
    if why:
        text += f"; {why}"
    generations = _grpo(state, "num_generations")
    overrides: dict[str, Any] = {}
    if isinstance(generations, int) and generations > 0:
        overrides["grpo.num_generations"] = generations * 2
    temperature = _grpo(state, "temperature")
    if isinstance(temperature, (int, float)) and temperature < 1.0:
        overrides["grpo.temperature"] = 1.0
    more = f"; sample more varied groups: {flags(overrides)}" if overrides else ""
    if way == "all_wrong":
        fix = ("every completion fails alike: the task is too hard for the model or the reward never fires; give "
               "partial credit (a format reward), easier prompts, or a short SFT first" + more)
    elif way == "all_correct":
        overrides = {}
        fix = "every completion succeeds alike: the prompts are too easy; drop the solved ones or use harder prompts"
        reward = state.series.get("reward")
        learned = reward is not None and state.firsts.get("reward") is not None and reward.hi is not None and (
            reward.hi - state.firsts["reward"] >= SOLVED_GAIN * max(abs(reward.hi), 1e-9))
        if learned:  # it got there by learning: the task is solved, the run has done its job
            evidence["solved"] = True
            finding = Finding("reward-zero-std", "info", "Solved: every completion gets the top reward", state.step, clean(evidence),
                              text + f"; the mean reward rose from {num(state.firsts['reward'])}",
                              "the model solves these prompts: stop here (the last checkpoint is the result), or go on with harder prompts", {})
            memo["finding"] = finding
            return finding
    else:
        fix = ("the task is too hard or too easy for the model, or the reward is too coarse: give partial credit, "
               "pick prompts it sometimes solves" + more)
    finding = Finding("reward-zero-std", "red", "No learning signal: identical rewards", state.step, clean(evidence), text, fix, overrides)
    memo["finding"] = finding
    return finding


def completions_clipped(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Completions hit max_completion_length: rewards judge cut-off answers. Red when most are cut
    (from the first log when all of them are), amber from a third."""
    if memo.get("severity") == "red":
        return memo["finding"]
    limit = _grpo(state, "max_completion_length")
    if _every_log(state, "completions/clipped_ratio") and _every_log(state, "frac_reward_zero_std"):
        # Every completion cut and no group with any spread: certain from the first log. Cut
        # completions alone may still differ in reward (a length or format score): judged after warm-up.
        level = 1.0
        logs = len(state.series["completions/clipped_ratio"])
        text = "every completion stops at max_completion_length " + ("on the first log" if logs == 1 else f"on all {logs} logs")
        evidence: dict[str, Any] = {"clipped_ratio": level, "certain": True}
    elif _ready(state, "completions/clipped_ratio"):
        level = state.level_of("completions/clipped_ratio")
        if level is None or level < CLIPPED_AMBER:
            return memo.get("finding")
        text = f"{num(100 * level, 2)}% of completions stop at max_completion_length"
        evidence = {"clipped_ratio": level}
    elif _ready(state, "completions/mean_length") and isinstance(limit, (int, float)) and limit > 0:
        level = state.level_of("completions/mean_length")
        if level is None or level < CLIPPED_LENGTH * limit:
            return memo.get("finding")
        text = f"mean completion length {num(level)} of max_completion_length {limit}"
        evidence = {"mean_length": level}
        level = 1.0
    else:
        return memo.get("finding")
    severity = "red" if level > CLIPPED_RATIO else "amber"
    if memo.get("severity") == severity:
        return memo["finding"]
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
    title = "Completions clipped at max length" if severity == "red" else "Many completions clipped at max length"
    finding = Finding("completions-clipped", severity, title, state.step, clean(evidence), text, fix, overrides)
    memo.update(finding=finding, severity=severity)
    return finding


def reward_check(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """The groups sampled before training (engine/train/reward_check.py): no spread, every completion
    clipped, or a reward function that scores every completion alike. Raised before step 1."""
    if memo.get("finding") is not None:
        return memo["finding"]
    check = state.reward_check
    refused = claimed(state, "reward-check")
    if refused is not None and check is None:
        check = (refused.get("data") or {}) if isinstance(refused.get("data"), dict) else {}
    if not check or not check.get("problems"):
        return None
    problems = [str(p) for p in check["problems"]]
    overrides = dict((refused or {}).get("overrides") or {})
    clipped_share = check.get("clipped_share")
    if not overrides:
        limit = check.get("max_completion_length")
        if isinstance(clipped_share, (int, float)) and clipped_share >= 0.5 and isinstance(limit, int):
            overrides["grpo.max_completion_length"] = limit * 2
    text = (f"{check.get('prompts')} prompts x {check.get('generations')} completions sampled before training: "
            + "; ".join(problems))
    per_fn = ", ".join(f"{name} {num(v.get('mean'))}±{num(v.get('std'))}" for name, v in (check.get("functions") or {}).items())
    if per_fn:
        text += f" (reward per function: {per_fn})"
    if refused is not None:
        fix = str(refused.get("message") or "").split("; ", 1)[-1]
    else:
        fix = "check the reward functions on real completions" + (f"; let completions finish: {flags(overrides)}" if overrides else "")
    evidence = clean({k: check.get(k) for k in ("prompts", "generations", "zero_spread_groups", "clipped", "clipped_share", "mean_length")}
                     | {"functions": check.get("functions"), "refused": refused is not None})
    # Red when the groups teach nothing (no spread, all cut off); a reward function that does not
    # fire yet while others vary (a strict format or correctness reward early on) is worth a look: amber.
    silent = check.get("zero_spread_groups") == check.get("prompts") or check.get("clipped") == check.get("completions")
    severity = "red" if silent or refused is not None else "amber"
    title = "No learning signal in the first groups" if severity == "red" else "A reward function does not fire yet"
    finding = Finding("reward-check", severity, title, 0, evidence, text, fix, overrides)
    memo["finding"] = finding
    return finding
