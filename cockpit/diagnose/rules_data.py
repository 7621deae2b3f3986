"""Rules on what the run was given before it trained: the dataset report and the training plan."""

from __future__ import annotations

import math
from typing import Any

from cockpit.diagnose.finding import Finding
from cockpit.diagnose.fixes import clean, flags, num, round_up
from cockpit.state import RunState

# truncation: red when at least 5% of training records lose completion tokens (the model learns to
# stop mid-answer, e.g. a cut tool call), or when 20% are cut at all; amber below.
TRUNC_LOST_RED = 0.05
TRUNC_CUT_RED = 0.20
# too-few-steps: under 30 optimizer steps the warm-up and the schedule leave nothing to learn with;
# the fix aims at 100 steps, with at most 10 epochs (more recites a small dataset).
FEW_STEPS = 30
TARGET_STEPS = 100
MAX_EPOCHS = 10
# eval-missing: no eval after twice its interval.
EVAL_GRACE = 2

_CHAT_FORMATS = ("messages", "sharegpt", "conversations", "chat")
# Engine refusals that a finding of its own explains better than `crash`: error code -> finding code.
# The codes are the lint check codes (engine/data/checks.py) the engine refuses with.
CLAIMED_ERRORS = {
    "completion_lost": "truncation",
    "truncated": "truncation",
    "too_long_dropped": "truncation",
    "eval_empty": "eval-missing",
    "no_chat_template": "chat-template",
    "template_error": "chat-template",
    "nan_weights": "loss-nan",  # the NaN guard stopped the run (engine/train/nan_guard.py)
    "nan_loss": "loss-nan",
    "nan_gradients": "loss-nan",
    "no_reward_signal": "reward-check",  # GRPO's reward check refused to train (engine/train/reward_check.py)
}
_TOKEN_CODES = ("completion_lost", "truncated", "too_long_dropped")
_SEVERITY = {"error": "red", "warning": "amber", "info": "info"}


def claimed_by(error: dict[str, Any]) -> str | None:
    """The finding code that explains an engine error, or None."""
    return CLAIMED_ERRORS.get(str(error.get("code") or ""))


def claimed(state: RunState, code: str) -> dict[str, Any] | None:
    return next((e for e in state.errors if claimed_by(e) == code), None)


def _train_split(state: RunState) -> dict[str, Any]:
    return ((state.dataset or {}).get("splits") or {}).get("train") or {}


def _suggest_max_length(keep: dict[str, Any] | None) -> int | None:
    """The max_length that keeps every completion whole, or the 99th percentile when the longest
    record is an outlier (more than 1.5x p99)."""
    if not keep:
        return None
    p100, p99 = keep.get("p100"), keep.get("p99")
    if not isinstance(p100, (int, float)) or p100 <= 0:
        return None
    target = p99 if isinstance(p99, (int, float)) and p99 > 0 and p100 > 1.5 * p99 else p100
    return round_up(target)


def _lint_token_findings(state: RunState) -> list[dict[str, Any]] | None:
    """The token findings the engine's pre-flight judged (None for a stream from before they were sent)."""
    lint = (state.dataset or {}).get("lint")
    if not isinstance(lint, list):
        return None
    return [f for f in lint if isinstance(f, dict) and f.get("code") in _TOKEN_CODES]


def truncation(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Completions cut or dropped by max_length: how many, and the max_length that keeps them."""
    if memo.get("finding") is not None:
        return memo["finding"]
    # The engine may refuse to start when max_length leaves records with no completion at all.
    error = claimed(state, "truncation")
    if error is not None:
        message = str(error.get("message") or "")
        overrides = dict(error.get("overrides") or {})
        fix = f"raise max_length to keep every record whole: {flags(overrides)}" if overrides else "raise --max-length"
        finding = Finding("truncation", "red", "Completions cut away by max_length", error.get("step"),
                          clean({"source": "error", "code": error.get("code"), **(error.get("data") or {})}), message, fix, overrides)
        memo["finding"] = finding
        return finding
    train = _train_split(state)
    records = train.get("records") or 0
    if not state.dataset or not records:
        return None
    max_length = state.dataset.get("max_length") or state.cfg("train.max_length")
    keep = state.dataset.get("keep_max_length") or train.get("keep_max_length")
    cut = int(train.get("truncated") or 0)
    lost = int(train.get("completion_lost") or 0)
    dropped = int(train.get("dropped") or 0)
    judged = _lint_token_findings(state)
    if judged is not None:  # the pre-flight's judgement, the same as `cockpit lint`'s
        if not judged:
            return None
        worst = min(judged, key=lambda f: ("error", "warning", "info").index(f.get("severity", "info")))
        severity = _SEVERITY.get(worst.get("severity"), "amber")
        overrides = {}
        for f in judged:
            overrides.update(f.get("overrides") or {})
    else:
        if not (cut or lost or dropped):
            return None
        suggestion = _suggest_max_length(keep)
        overrides = {"train.max_length": suggestion} if suggestion and (not max_length or suggestion > max_length) else {}
        red = (lost + dropped) / records >= TRUNC_LOST_RED or cut / records >= TRUNC_CUT_RED
        severity = "red" if red else "amber"
    parts = []
    if cut:
        parts.append(f"{cut} of {records} training records longer than max_length {max_length}")
    if lost:
        parts.append(f"{lost} lose completion tokens")
    if dropped:
        parts.append(f"{dropped} dropped as too long")
    text = "; ".join(parts) or f"records cut by max_length {max_length}"
    if keep:
        text += f" (max_length {num(keep.get('p100'))} keeps all, {num(keep.get('p99'))} keeps 99%)"
    fix = f"raise max_length: {flags(overrides)}" if overrides else "shorten the longest records or raise --max-length"
    fix += "; or drop the long tail before training (cockpit lint shows which)" if severity == "red" else ""
    evidence = clean({"records": records, "truncated": cut, "completion_lost": lost, "dropped": dropped,
                      "max_length": max_length, "keep_max_length": keep})
    finding = Finding("truncation", severity, "Records cut by max_length", state.step, evidence, text, fix, overrides)
    memo["finding"] = finding
    return finding


def chat_template(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """The tokenizer has no chat template, or the template cannot render the data."""
    error = claimed(state, "chat-template")
    if error is not None:
        message = str(error.get("message") or "").splitlines()[0]
        fix = ("use a model whose template knows these roles and tools (its -Instruct variant), or give one: "
               "--set model.chat_template=PATH.jinja")
        return Finding("chat-template", "red", "Chat template missing or broken", error.get("step"),
                       {"source": "error", "message": message}, message, fix, {})
    dataset = state.dataset
    if not dataset:
        return None
    fmt = str(dataset.get("format") or "")
    chat_data = any(f in fmt for f in _CHAT_FORMATS) or state.cfg("data.chat") is True
    if dataset.get("chat_template_ok") is False:
        why = next((w for w in dataset.get("warnings") or [] if "template" in str(w).lower()), "")
        text = f"the chat template cannot render the {fmt or 'training'} records" + (f": {why}" if why else "")
    elif dataset.get("has_chat_template") is False and chat_data:
        text = f"the tokenizer has no chat template and the data is {fmt or 'chat'}"
    else:
        return None
    fix = ("use a model whose template knows these roles and tools (its -Instruct variant), or give one: "
           "--set model.chat_template=PATH.jinja")
    evidence = clean({"format": fmt, "has_chat_template": dataset.get("has_chat_template"),
                      "chat_template_ok": dataset.get("chat_template_ok")})
    return Finding("chat-template", "red", "Chat template missing or broken", state.step, evidence, text, fix, {})


def _eval_interval(state: RunState) -> int | None:
    strategy = state.cfg("train.eval_strategy")
    if strategy == "epoch":
        spe = state.plan.get("steps_per_epoch")
        return int(spe) if spe else None
    steps = state.cfg("train.eval_steps")
    if steps:
        return int(steps)
    logging = state.cfg("train.logging_steps")
    return int(logging) * 5 if logging else None  # the schema's default: every logging_steps x 5


def eval_missing(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Eval is on but there is no eval split, no eval_loss ever arrives, or eval_loss is NaN."""
    nan = [(s.key, step) for s in state.eval_sets.values() for step in s.nan_steps]
    intended = state.cfg("train.eval_strategy", "steps") != "no" and (
        (state.cfg("data.eval_split") or 0) > 0 or bool(state.cfg("data.eval_path")) or state.plan.get("eval_enabled") is True)
    eval_records = state.plan.get("eval_records")
    if eval_records is None and state.dataset is not None:
        eval_records = (((state.dataset.get("splits") or {}).get("eval")) or {}).get("records", 0)
    has_loss = any(s.values for s in state.eval_sets.values())
    overrides: dict[str, Any] = {}
    refused = claimed(state, "eval-missing")
    if refused is not None:
        severity, title = "red", "The eval split is empty"
        overrides["data.eval_split"] = 0.1
        text = str(refused.get("message") or "the eval split is empty").splitlines()[0]
        fix = f"hold out records for eval: {flags(overrides)} (or mark records `eval`), or turn eval off: --set train.eval_strategy=no"
        evidence = {"source": "error", "eval_records": 0}
    elif nan:
        key, step = nan[0]
        severity, title = "red", "eval_loss is NaN"
        text = f"{key} is NaN from step {step}" + (f" ({len(nan)} evaluations)" if len(nan) > 1 else "")
        if state.weights_broken is not None and state.weights_broken <= step:
            text += f": the weights are NaN from step {state.weights_broken}"
            fix = "the weights are NaN: see loss-nan"
        else:
            fix = "an eval batch with no trained token gives NaN: check the eval split's records, or raise --max-length"
        evidence = {"nan": [list(n) for n in nan[:10]], "weights_nan_from": state.weights_broken}
    elif intended and state.config and eval_records == 0:
        severity, title = "red", "The eval split is empty"
        overrides["data.eval_split"] = 0.1
        text = "eval is on but the eval split has 0 records"
        fix = f"hold out records for eval: {flags(overrides)} (or add `metadata: eval` records / data.eval_path)"
        evidence = {"eval_records": 0, "eval_split": state.cfg("data.eval_split")}
    elif state.evals_without_loss and not has_loss and state.kind != "grpo":  # GRPO's eval scores rewards, no loss
        severity, title = "amber", "No eval_loss in the evaluations"
        text = f"{state.evals_without_loss} evaluations reported no eval_loss"
        fix = "the eval batches carry no labels: check the eval split's format and label columns"
        evidence = {"evaluations": state.evals_without_loss}
    elif state.plan.get("eval_enabled") and eval_records and not has_loss and state.step is not None:
        interval = _eval_interval(state)
        finished = state.finished is not None and state.finished.get("status") == "completed"
        if not (finished or (interval and state.step >= EVAL_GRACE * interval)):
            return memo.get("finding")
        severity, title = "amber", "No evaluation has run"
        text = f"eval is on with {eval_records} records but no eval_loss by step {state.step}"
        if interval:
            text += f" (expected every {interval} steps)"
        overrides["train.eval_strategy"] = "steps"
        if interval and state.total_steps and interval > state.total_steps:
            overrides["train.eval_steps"] = max(1, state.total_steps // 5)
        fix = f"evaluate within the run: {flags(overrides)}"
        evidence = {"eval_records": eval_records, "interval": interval, "step": state.step}
    else:
        return memo.get("finding")
    finding = Finding("eval-missing", severity, title, state.step, clean(evidence), text, fix, overrides)
    memo["finding"] = finding
    return finding


def too_few_steps(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """The plan has too few optimizer steps to learn anything: known before the first one."""
    total = state.total_steps
    if total is None or total >= FEW_STEPS:
        return None
    plan = state.plan
    spe = plan.get("steps_per_epoch")
    epochs = plan.get("num_epochs") or state.cfg("train.num_train_epochs")
    overrides: dict[str, Any] = {}
    more = ""
    capped_by_max_steps = spe and epochs and total < 0.5 * spe * epochs  # max_steps cut the run short
    if capped_by_max_steps or not spe:
        if capped_by_max_steps:
            overrides["train.max_steps"] = TARGET_STEPS
    else:
        accum = state.cfg("train.gradient_accumulation_steps")
        if isinstance(accum, int) and accum > 1:
            overrides["train.gradient_accumulation_steps"] = 1
            spe = spe * accum
        needed = math.ceil(TARGET_STEPS / spe)
        overrides["train.num_train_epochs"] = max(int(math.ceil(epochs or 1)), min(MAX_EPOCHS, needed))
        if needed > MAX_EPOCHS:
            more = "; a smaller --batch-size, or more data"
    parts = [f"{total} optimizer steps in all"]
    if spe:
        parts.append(f"{plan.get('steps_per_epoch')} per epoch")
    if plan.get("train_records"):
        parts.append(f"{plan['train_records']} records")
    if plan.get("effective_batch_size"):
        parts.append(f"effective batch {plan['effective_batch_size']}")
    text = ", ".join(parts)
    fix = (f"aim for ~{TARGET_STEPS} steps: {flags(overrides)}{more}" if overrides
           else f"aim for ~{TARGET_STEPS} steps: more --epochs, a smaller --batch-size or --grad-accum, or more data")
    evidence = clean({k: plan.get(k) for k in ("total_steps", "steps_per_epoch", "num_epochs", "train_records", "effective_batch_size")})
    # A max_steps the user set on purpose (a smoke test such as the quick-test preset) is only noted.
    chosen = isinstance(state.cfg("train.max_steps"), int) and state.cfg("train.max_steps") > 0
    if chosen:
        text += f" (train.max_steps={state.cfg('train.max_steps')})"
    return Finding("too-few-steps", "info" if chosen else "amber", "Too few training steps", state.step, evidence, text, fix, overrides)
