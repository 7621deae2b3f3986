"""Rules on the training curve: what the loss, grad_norm and learning rate say (any trainer but GRPO).

Each rule reads the RunState and returns the finding as it stands now, or None. `memo` is the rule's
own scratch space across calls.
"""

from __future__ import annotations

from typing import Any

from cockpit.diagnose.finding import Finding
from cockpit.diagnose.fixes import clean, flags, lower_lr, num
from cockpit.diagnose.rules_data import claimed
from cockpit.state import WARMUP_LOGS, RunState

# labels-masked: this many logs of loss exactly 0 from the start; a real loss is never exactly 0.
MASKED_LOGS = 3
# grad-nan: red when non-finite grad norms come 3 logs in a row, or on 10% of logs (a fp16 scaler
# that skips the odd step is normal; one that skips most steps trains nothing).
GRAD_NAN_RUN = 3
GRAD_NAN_SHARE = 0.10
# loss-spike: a single log at least 4x the loss level before it and above where the run started
# (the usual spike detector); amber from 3 spikes. divergence: a loss level (median of 5 logs, so a
# spike that recovers never moves it) at least 2x its low that has given back half the progress.
JUMP_RATIO = 4.0
DIVERGE_RATIO = 2.0
DIVERGE_GIVEBACK = 0.5
# grad-spike: grad_norm at least 10x its running median of the last 50 logs; amber from 3 spikes.
SPIKE_AMBER_COUNT = 3
# lr-zero: a quarter of the logs (after 10) at lr 0, or the last 5 logs all at 0.
LR_ZERO_SHARE = 0.25
LR_ZERO_RECENT = 5
# plateau: over the last half of the logs (>= 40 logs, >= 100 steps and >= 25% of the planned
# steps) the loss level improved by under 1% and no eval loss improved by 1% either.
PLATEAU_MIN_LOGS = 40
PLATEAU_MIN_STEPS = 100
PLATEAU_MIN_SHARE = 0.25
PLATEAU_MIN_GAIN = 0.01
PLATEAU_FLOOR = 0.05  # below this loss level there is little left to gain; memorization covers it


def _steps(steps: list[int], limit: int = 5) -> str:
    shown = ", ".join(str(s) for s in steps[:limit])
    return shown + (f" ... ({len(steps)} in all)" if len(steps) > limit else "")


def labels_masked(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Nothing is trained: every label masked (-100), so the loss is exactly 0 and so is the gradient."""
    if state.kind == "grpo":  # GRPO's samples are prompts (nothing to mask) and a zero loss is no_signal's
        return None
    evidence: dict[str, Any] = {}
    text = ""
    step = state.step
    train = ((state.dataset or {}).get("splits") or {}).get("train") or {}
    if train.get("trained_tokens") == 0 and train.get("records"):
        evidence = {"source": "dataset", "records": train.get("records"), "trained_tokens": 0}
        text = f"0 trained tokens in {train['records']} training records"
    elif state.samples and all(s.get("trained_tokens") == 0 for s in state.samples):
        evidence = {"source": "samples", "samples": len(state.samples), "trained_tokens": 0}
        text = f"none of the {len(state.samples)} prepared samples has a trained token"
    elif (
        state.kind == "sft"
        and not state.loss_ever_nonzero
        and state.leading_zero_logs >= MASKED_LOGS
        and state.grad_zero == state.grad_seen
    ):
        evidence = {"source": "loss", "zero_loss_logs": state.leading_zero_logs,
                    "grad_norm": 0.0 if state.grad_seen else None}
        grad = ", grad_norm 0" if state.grad_seen else ""
        text = f"loss exactly 0{grad} on all {state.leading_zero_logs} logs since the start"
    else:
        return None
    loss_on = state.cfg("data.loss_on")
    overrides: dict[str, Any] = {}
    keep = ((state.dataset or {}).get("keep_max_length") or {}).get("p100")
    if train.get("completion_lost") and keep:
        overrides["train.max_length"] = int(keep)
        fix = f"the prompts fill max_length and leave no completion: {flags(overrides)}"
    elif loss_on in ("completion", "assistant"):
        fix = (f"the loss is on the {loss_on} only and none is left: check that the chat template marks the "
               "assistant turn ({% generation %}) and that records have a non-empty completion; "
               "to train on every token instead: --set data.loss_on=all")
    else:
        fix = ("every label is -100: check the collator's response template / completion-only masking "
               "matches the rendered text, and that completions are not empty or cut by max_length")
    return Finding("labels-masked", "red", "Nothing is trained: all labels are masked", step,
                   clean(evidence), text, fix, overrides)


def _exploded(state: RunState, before: int) -> str:
    """The grad_norm blow-up that led to NaN weights, as evidence: 'grad_norm 753.7 at step 2 (x320)'."""
    peak = state.grad_peak
    if peak is None or peak[0] >= before or peak[2] is None or peak[1] < 10 * peak[2]:
        return ""
    return f"; grad_norm {num(peak[1])} at step {peak[0]} ({num(peak[1] / peak[2])}x its median before)"


def loss_nan(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """The weights turned NaN/Inf: the loss is NaN, or (bf16/fp32) the gradients are, or a loss of
    exactly 0 sits next to a NaN grad_norm after a real loss. Nothing after it counts."""
    broken = state.loss_broken if len(state.loss_broken) >= 2 else []
    bad = sorted(state.loss_nonfinite + broken)
    onset = min([s for s in (state.weights_broken, bad[0] if bad else None) if s is not None], default=None)
    stopped = claimed(state, "loss-nan")  # the NaN guard's error: it may stop before a NaN is logged
    if stopped is not None:
        if memo.get("finding") is None:
            data = dict(stopped.get("data") or {})
            overrides = dict(stopped.get("overrides") or {})
            what = str(data.get("what") or "loss")
            title = "Train loss is NaN" if what == "loss" else f"The {what} turned NaN"
            text = str(stopped.get("message") or "") + _exploded(state, int(stopped.get("step") or 0))
            memo["finding"] = Finding("loss-nan", "red", title, stopped.get("step"), clean({"source": "nan guard", **data}),
                                      text, f"lower the learning rate: {flags(overrides)}", overrides)
        return memo["finding"]
    if onset is None:
        return None
    key = (onset, len(bad), len(state.grad_nonfinite))
    if memo.get("key") == key:
        return memo["finding"]
    lr = state.lr
    overrides: dict[str, Any] = {"train.learning_rate": lower_lr(lr, state.finetune)}
    extra = ""
    if state.precision == "fp16":
        overrides["model.dtype"] = "bf16"
        extra = "; fp16 overflows where bf16 does not"
    evidence = clean({"first_step": onset, "loss_nonfinite": len(state.loss_nonfinite), "loss_zero_with_nan_grad": len(state.loss_broken),
                      "grad_nonfinite": len(state.grad_nonfinite), "last_healthy": list(state.healthy_loss) if state.healthy_loss else None,
                      "learning_rate": lr, "precision": state.precision})
    if state.loss_nonfinite and state.loss_nonfinite[0] == onset:
        title, text = "Train loss is NaN", f"loss is NaN/Inf from step {onset} ({len(state.loss_nonfinite)} logs)"
    elif state.weights_broken == onset and not state.scaler_skips:
        title = "The weights turned NaN"
        text = (f"grad_norm is NaN/Inf from step {onset}, and {state.precision} has no loss scaler that skips such a step: "
                "the update made the weights NaN")
        if state.loss_broken:
            text += f"; the loss reads 0 from step {state.loss_broken[0]}"
    else:
        title, text = "The weights turned NaN", f"loss reads 0 with a NaN grad_norm from step {onset}: the weights are NaN"
    text += _exploded(state, onset)
    if state.healthy_loss is not None:
        text += f"; last healthy loss {num(state.healthy_loss[1])} (step {state.healthy_loss[0]})"
    fix = f"lower the learning rate and keep gradient clipping on: {flags(overrides)}{extra}"
    finding = Finding("loss-nan", "red", title, onset, evidence, text, fix, overrides)
    memo.update(key=key, finding=finding)
    return finding


def grad_nan(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """grad_norm NaN or Inf: under fp16 rare ones are the loss scaler skipping a step; in bf16 or
    fp32 (no scaler) any one means broken gradients."""
    bad = state.grad_nonfinite
    if not bad:
        return None
    logs = max(1, state.grad_logs_after_warmup)
    share = len(bad) / logs
    persistent = (not state.scaler_skips or state.grad_nonfinite_run_max >= GRAD_NAN_RUN
                  or (logs >= 20 and share >= GRAD_NAN_SHARE) or bool(state.loss_nonfinite))
    overrides: dict[str, Any] = {}
    if persistent:
        overrides["train.learning_rate"] = lower_lr(state.lr, state.finetune)
        if state.precision == "fp16":
            overrides["model.dtype"] = "bf16"
            fix = f"most updates are skipped or broken: train in bf16 where the GPU has it and lower the learning rate: {flags(overrides)}"
        elif state.precision in ("bf16", "fp32"):
            fix = f"{state.precision} has no loss scaler: NaN gradients break the weights; lower the learning rate: {flags(overrides)}"
        else:  # precision unknown (a log from elsewhere): fp16 is the likely culprit
            overrides["model.dtype"] = "bf16"
            fix = f"most updates are skipped or broken: lower the learning rate, and train in bf16 if this was fp16: {flags(overrides)}"
        severity, title = "red", "grad_norm is NaN/Inf" + (" on many steps" if state.scaler_skips else "")
    else:
        fix = ("a rare non-finite grad_norm under fp16 is the loss scaler skipping a step, harmless; "
               "if it repeats, train in bf16: --set model.dtype=bf16")
        severity, title = "info", "grad_norm NaN/Inf on a few steps"
    evidence = clean({"steps": bad[:20], "count": len(bad), "logs": logs, "share": share,
                      "longest_run": state.grad_nonfinite_run_max, "precision": state.precision})
    every = " (every log since)" if state.grad_nonfinite_run == len(bad) and len(bad) > 1 else ""
    text = f"grad_norm NaN/Inf on {len(bad)} of {logs} logs from step {bad[0]}{every} (step {_steps(bad)})"
    return Finding("grad-nan", severity, title, bad[0], evidence, text, fix, overrides)


def _lr_fix(state: RunState) -> tuple[dict[str, Any], str]:
    overrides: dict[str, Any] = {"train.learning_rate": lower_lr(state.lr, state.finetune)}
    if state.config and not state.cfg("train.warmup_ratio") and not state.cfg("train.warmup_steps"):
        overrides["train.warmup_ratio"] = 0.05
    max_norm = state.cfg("train.max_grad_norm")
    if isinstance(max_norm, (int, float)) and (max_norm <= 0 or max_norm > 1):
        overrides["train.max_grad_norm"] = 1.0
    was = f" (was {num(state.lr)})" if state.lr else ""
    return overrides, f"learning rate too high{was}: {flags(overrides)}"


def divergence(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """The loss level (median of the last logs: one odd batch does not move it) climbs far back above its low."""
    if state.kind == "grpo" or len(state.loss) < WARMUP_LOGS:
        return memo.get("finding")
    level, low = state.level, state.low_level
    # Where the run started: its first log or the level of its first logs, whichever is higher.
    start = max(state.first_loss or 0.0, state.start_level or 0.0) if state.start_level is not None else None
    step = state.loss.last_step
    if level is None or low is None or start is None or low <= 0:
        return memo.get("finding")
    sustained = level >= DIVERGE_RATIO * low and level - low >= DIVERGE_GIVEBACK * max(start - low, 0.0) and level > low
    finding = memo.get("finding")
    if not sustained or (finding is not None and level <= memo["peak"]):
        return finding
    memo["peak"] = level
    onset = memo.setdefault("onset", step)
    evidence = {"low": low, "low_step": state.low_step, "level": level, "level_step": step,
                "ratio": level / low, "start": start, "learning_rate": state.lr, "onset_step": onset}
    text = (f"loss level {num(level)} at step {step}, {num(level / low)}x its low of {num(low)} "
            f"(step {state.low_step}); climbing since step {onset}")
    overrides, fix = _lr_fix(state)
    finding = Finding("divergence", "red", "Loss diverged", onset, clean(evidence), text, fix, overrides)
    memo["finding"] = finding
    return finding


def loss_spike(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """A single log far above the loss level before it, which the level does not follow: a bad batch
    or the edge of instability, not a divergence (that is a level that stays up)."""
    if state.kind == "grpo" or len(state.loss) <= WARMUP_LOGS:
        return memo.get("finding")
    prev, loss, step = state.prev_level, state.loss.last, state.loss.last_step
    start = max(state.first_loss or 0.0, state.start_level or 0.0)
    if prev is None or prev <= 0 or loss is None or loss < JUMP_RATIO * prev or loss < start or memo.get("last") == step:
        return memo.get("finding")
    memo["last"] = step
    spikes = memo.setdefault("spikes", [])
    spikes.append((step, loss, prev))
    worst = max(spikes, key=lambda s: s[1] / s[2])
    severity = "amber" if len(spikes) >= SPIKE_AMBER_COUNT else "info"
    evidence = clean({"count": len(spikes), "steps": [s[0] for s in spikes[:20]], "worst_step": worst[0],
                      "worst_loss": worst[1], "level_before": worst[2], "ratio": worst[1] / worst[2]})
    text = f"loss {num(worst[1])} at step {worst[0]}, {num(worst[1] / worst[2])}x the level before ({num(worst[2])})"
    if len(spikes) > 1:
        text += f"; {len(spikes)} spikes (step {_steps([s[0] for s in spikes])})"
    if severity == "amber":
        overrides, fix = _lr_fix(state)
        fix = "repeated spikes: " + fix
    else:
        overrides, fix = {}, "one bad batch: gradient clipping (train.max_grad_norm) absorbs it; lower --lr if spikes repeat"
    finding = Finding("loss-spike", severity, "Loss spiked", spikes[0][0], evidence, text, fix, overrides)
    memo["finding"] = finding
    return finding


def grad_spike(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """grad_norm far above its running median: a bad batch or the edge of instability."""
    spikes = state.grad_spikes
    if not spikes:
        return None
    if memo.get("count") == len(spikes):
        return memo["finding"]
    step, grad, median = max(spikes, key=lambda s: s[1] / s[2])
    severity = "amber" if len(spikes) >= SPIKE_AMBER_COUNT else "info"
    overrides: dict[str, Any] = {}
    if severity == "amber" and state.lr:
        overrides["train.learning_rate"] = float(f"{state.lr / 2:.1g}")
        fix = f"repeated spikes: lower the learning rate, {flags(overrides)}; keep --set train.max_grad_norm=1"
    else:
        fix = "gradient clipping (train.max_grad_norm) absorbs an isolated spike; lower --lr if they repeat or the loss jumps with them"
    evidence = clean({"count": len(spikes), "worst_step": step, "worst_grad_norm": grad, "running_median": median,
                      "ratio": grad / median, "steps": [s[0] for s in spikes[:20]]})
    text = f"grad_norm {num(grad)} at step {step}, {num(grad / median)}x its running median {num(median)}"
    if len(spikes) > 1:
        text += f"; {len(spikes)} spikes (steps {_steps([s[0] for s in spikes])})"
    finding = Finding("grad-spike", severity, "grad_norm spikes", spikes[0][0], evidence, text, fix, overrides)
    memo.update(count=len(spikes), finding=finding)
    return finding


def lr_zero(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Learning rate 0 on a large share of steps: those steps change nothing."""
    zeros = state.lr_zero_steps
    if len(zeros) < 3 or state.n_logs < WARMUP_LOGS:
        return memo.get("finding")
    share = len(zeros) / max(1, state.lr_seen)
    stuck = state.lr_recent_zero >= LR_ZERO_RECENT
    if not (stuck or (state.lr_seen >= 10 and share >= LR_ZERO_SHARE)):
        return memo.get("finding")
    if memo.get("count") == len(zeros):
        return memo["finding"]
    configured = number_or_none(state.cfg("train.learning_rate"))
    if configured == 0 or not state.lr_max:
        overrides: dict[str, Any] = {"train.learning_rate": 2e-5 if state.finetune == "full" else 2e-4}
        fix = f"the learning rate is 0: {flags(overrides)}"
    else:
        overrides = {"train.warmup_ratio": 0.05}
        fix = f"the schedule holds the learning rate at 0 (warm-up longer than the run, or a decay that ends early): {flags(overrides)}"
    evidence = clean({"zero_logs": len(zeros), "logs": state.lr_seen, "share": share, "steps": zeros[:20]})
    text = f"learning rate 0 on {len(zeros)} of {state.lr_seen} logs ({num(100 * share, 2)}%), step {_steps(zeros)}"
    finding = Finding("lr-zero", "red", "Learning rate is 0", zeros[0], evidence, text, fix, overrides)
    memo.update(count=len(zeros), finding=finding)
    return finding


def number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _eval_improved(state: RunState, from_step: int, to_step: int) -> bool:
    for eval_set in state.eval_sets.values():
        inside = [v for s, v in zip(eval_set.steps, eval_set.values) if from_step <= s <= to_step]
        if len(inside) >= 2 and inside[0] > 0 and (inside[0] - min(inside[1:])) / inside[0] >= PLATEAU_MIN_GAIN:
            return True
    return False


def plateau(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """No meaningful improvement of the loss (nor of any eval loss) over the last half of the run."""
    n = len(state.loss)
    if state.kind == "grpo" or n < PLATEAU_MIN_LOGS or "divergence" in state.raised or "labels-masked" in state.raised:
        return memo.get("finding")
    stretch = n // 2
    s0 = n - stretch
    block = max(3, stretch // 5)
    before, after = state.loss.mean(s0, s0 + block), state.loss.mean(n - block, n)
    from_step, to_step = state.loss.step_at(s0), state.loss.last_step
    total = state.total_steps
    span = to_step - from_step
    long_enough = span >= PLATEAU_MIN_STEPS and (span >= PLATEAU_MIN_SHARE * total if total else stretch >= 50)
    if not long_enough or after < PLATEAU_FLOOR or before <= 0:
        return memo.get("finding")
    gain = (before - after) / before
    if gain >= PLATEAU_MIN_GAIN or _eval_improved(state, from_step, to_step):
        return memo.get("finding")
    overrides: dict[str, Any] = {}
    if state.lr:
        overrides["train.learning_rate"] = float(f"{state.lr * 2:.1g}")
    fix = ("if this is as good as it gets, stop earlier and save the time; to learn more, raise the learning rate"
           + (f": {flags(overrides)}" if overrides else "")
           + (f", or the adapter's capacity: --lora-r {2 * int(state.cfg('lora.r'))}" if state.cfg("lora.r") and state.finetune in ("lora", "qlora") else ""))
    evidence = clean({"from_step": from_step, "to_step": to_step, "level_before": before, "level_after": after, "gain": gain})
    text = f"loss {num(before)} -> {num(after)} from step {from_step} to {to_step} ({num(100 * gain, 2)}% better)"
    finding = Finding("plateau", "amber", "Loss stopped improving", to_step, evidence, text, fix, overrides)
    memo["finding"] = finding
    return finding


def step_backtrack(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Steps going backwards within one log: two runs appended to one file (a restart from an earlier
    checkpoint, or a second run with the same output dir). The repeated steps are folded once."""
    marks = state.backtracks
    if not marks or memo.get("count") == len(marks):
        return memo.get("finding")
    high, low = marks[0]
    text = f"steps go back from {high} to {low}" + (f", {len(marks)} times (step {_steps([m[1] for m in marks])})" if len(marks) > 1 else "")
    text += ": two runs' logs in one file; each step is judged once, from its first log"
    fix = "give each run its own output dir (or resume the same run: cockpit run --resume RUN_DIR)"
    finding = Finding("step-backtrack", "info", "Steps logged out of order", low, clean({"backtracks": [list(m) for m in marks[:20]], "count": len(marks)}),
                      text, fix, {})
    memo.update(count=len(marks), finding=finding)
    return finding
