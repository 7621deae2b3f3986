"""Rules on what the evaluations say: overfitting (eval loss rising, or never falling while the
train loss does: the gap), memorization, and an eval split too small to mean anything."""

from __future__ import annotations

import math
from typing import Any

from cockpit.diagnose.finding import Finding
from cockpit.diagnose.fixes import clean, flags, num
from cockpit.state import WARMUP_LOGS, RunState

# memorization: loss level at most 0.1 nats (the model reproduces ~90% of its training tokens
# exactly) after at least 5 epochs; info when the level is 1e-4 or below at any epoch.
MEMO_LOSS = 0.1
MEMO_EPOCHS = 5.0
MEMO_ZERO = 1e-4
# overfitting: eval loss at least 5% above its best, 3 evaluations after the best (the usual
# early-stopping patience), while the train loss level went on falling.
OVERFIT_PATIENCE = 3
OVERFIT_RISE = 0.05
# overfitting from the gap: the train loss level fell by at least half from where it started while
# the eval loss never gained a quarter of that (both measured from the train loss's start): what is
# learned does not carry over to held-out records.
GAP_TRAIN_GAIN = 0.5
GAP_EVAL_SHARE = 0.25
# eval-small: under 10 eval records the eval loss is the noise of a few examples (its standard error
# shrinks as 1/sqrt(n)): a 5% rise or fall means nothing.
EVAL_MIN_RECORDS = 10


def memorization(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """Train loss near zero after many epochs: the model recites its (small) training set."""
    level = state.level
    if (state.kind == "grpo" or level is None or len(state.loss) <= WARMUP_LOGS or "labels-masked" in state.raised
            or state.loss_broken or state.loss_nonfinite):
        return memo.get("finding")
    epoch = state.epoch or 0.0
    latest_eval = [s.values[-1] for s in state.eval_sets.values() if s.values]
    generalizes = bool(latest_eval) and min(latest_eval) <= MEMO_LOSS
    if level <= MEMO_LOSS and epoch >= MEMO_EPOCHS and not generalizes:
        severity, title = "amber", "Memorizing the training set"
    elif level <= MEMO_ZERO:
        severity, title = "info", "Train loss reached 0"
    else:
        return memo.get("finding")
    if "first_step" not in memo or memo.get("severity") != severity:
        memo.update(first_step=state.step, first_epoch=epoch, severity=severity)
    records = state.plan.get("train_records")
    overrides: dict[str, Any] = {}
    if severity == "amber":
        overrides["train.num_train_epochs"] = max(1, min(3, math.ceil(memo["first_epoch"])))
        if not state.eval_sets:
            overrides["data.eval_split"] = 0.1
            fix = f"fewer passes over the data, and an eval split to see what generalizes: {flags(overrides)}"
        else:
            fix = f"fewer passes over the data: {flags(overrides)}; the eval loss says what generalizes ({_best_model(state)})"
        if records:
            fix += f"; or more data ({records} records)"
    else:
        fix = ("the model predicts every training label; if eval loss is ~0 too, check that the answer "
               "is not in the input (a leak) or that the task is not trivial")
    evidence = clean({"level": level, "epoch": epoch, "since_step": memo["first_step"], "since_epoch": memo["first_epoch"],
                      "train_records": records, "eval_loss": min(latest_eval) if latest_eval else None})
    text = f"loss level {num(level)} at epoch {num(epoch, 2)} (below {num(MEMO_LOSS if severity == 'amber' else MEMO_ZERO)} since step {memo['first_step']})"
    if records:
        text += f", {records} training records"
    finding = Finding("memorization", severity, title, memo["first_step"], evidence, text, fix, overrides)
    memo["finding"] = finding
    return finding


def _best_model(state: RunState, step: int | None = None, key: str = "eval_loss") -> str:
    """Where the best evaluated model is kept: best/ (it follows eval_loss), else its checkpoint."""
    best = state.eval_sets.get("")
    best_step = step if step is not None else (best.best[0] if best is not None and best.best else None)
    if best_step is None:
        return "no evaluation yet"
    outputs = (state.finished or {}).get("outputs") or {}
    if key == "eval_loss" and (outputs.get("best") or state.cfg("train.save_best")):
        return f"best/ holds the step-{best_step} model"
    holder = state.checkpoint_at(best_step)
    if holder:
        return f"{holder.replace(chr(92), '/').rstrip('/').split('/')[-1]} holds it"
    save_steps = state.plan.get("save_steps") or state.cfg("train.save_steps")
    if isinstance(save_steps, int) and save_steps > 0 and best_step % save_steps == 0:
        return f"checkpoint-{best_step} holds it if it was kept"
    return f"no checkpoint was saved at step {best_step}"


def _rising(state: RunState) -> list[tuple[Any, int, float, float]]:
    worse = []
    for eval_set in state.eval_sets.values():
        bi = eval_set.best_index
        if bi is None or len(eval_set.values) < OVERFIT_PATIENCE + 1:
            continue
        since = len(eval_set.values) - 1 - bi
        best, latest = eval_set.values[bi], eval_set.values[-1]
        if since < OVERFIT_PATIENCE or latest < best * (1 + OVERFIT_RISE) or latest - best < 1e-6:
            continue
        train_then, train_now = eval_set.train_levels[bi], state.level
        if train_then is not None and train_now is not None and train_now >= train_then:
            continue  # both rising is divergence, not overfitting
        worse.append((eval_set, bi, best, latest))
    return worse


def _gap(state: RunState) -> tuple[Any, float, float] | None:
    """(eval set, train gain, eval gain) when the train loss fell far and the eval loss hardly moved."""
    start, now = state.start_level or state.first_loss, state.level
    eval_set = state.eval_sets.get("")
    if eval_set is None or eval_set.best is None or start is None or now is None or start <= 0 or len(state.loss) <= WARMUP_LOGS:
        return None
    finished = state.finished is not None
    if len(eval_set.values) < 2 and not finished:
        return None
    train_gain = (start - now) / start
    eval_gain = max(0.0, (start - eval_set.best[1]) / start)
    if train_gain < GAP_TRAIN_GAIN or eval_gain > GAP_EVAL_SHARE * train_gain:
        return None
    return eval_set, train_gain, eval_gain


def overfitting(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """The model fits its training records and not the held-out ones: eval_loss rising over several
    evaluations while the train loss falls, or never falling while the train loss does (the gap)."""
    if state.kind == "grpo":  # GRPO's loss is a policy loss near 0, not a fit: its eval scores rewards
        return None
    worse = _rising(state)
    if worse:
        eval_set, bi, best, latest = max(worse, key=lambda w: w[3] / w[2])
        best_step, best_epoch = eval_set.steps[bi], eval_set.epochs[bi]
        key = ("rising", tuple(w[0].name for w in worse), best_step, len(eval_set.values))
        if memo.get("key") == key:
            return memo["finding"]
        where = _best_model(state, best_step, eval_set.key)
        overrides: dict[str, Any] = {}
        if best_epoch:
            overrides["train.num_train_epochs"] = max(1, math.ceil(best_epoch))
        names = ", ".join(w[0].key for w in worse if w[0] is not eval_set)
        evidence = clean({
            "kind": "rising",
            "sets": {w[0].key: {"best": w[2], "best_step": w[0].steps[w[1]], "latest": w[3], "latest_step": w[0].steps[-1],
                               "rise": w[3] / w[2] - 1} for w in worse},
            "best_step": best_step, "best_epoch": best_epoch, "best_model": where,
            "train_level_at_best": eval_set.train_levels[bi], "train_level_now": state.level,
        })
        text = (f"{eval_set.key} lowest {num(best)} at step {best_step}, now {num(latest)} (+{num(100 * (latest / best - 1), 2)}%) "
                f"while train loss fell to {num(state.level)}; {where}")
        if len(worse) > 1:
            text += f"; also rising: {names}"
        fix = f"use the step-{best_step} model ({where})" + (f", or train {flags(overrides)}" if overrides else "")
        finding = Finding("overfitting", "amber", "Overfitting: eval loss rising", best_step, evidence, text, fix, overrides)
        memo.update(key=key, finding=finding)
        return finding
    gap = _gap(state)
    if gap is None or memo.get("finding") is not None and memo["key"][0] == "rising":
        return memo.get("finding")
    eval_set, train_gain, eval_gain = gap
    key = ("gap", len(eval_set.values), round(train_gain, 2))
    if memo.get("key") == key:
        return memo["finding"]
    start = state.start_level or state.first_loss
    records = state.plan.get("train_records")
    overrides = {}
    if records and records < 100:
        fix = f"more training records ({records} now), or fewer epochs"
    else:
        fix = "fewer epochs or a lower learning rate, more varied training records"
    epochs = state.cfg("train.num_train_epochs")
    if isinstance(epochs, (int, float)) and epochs > 3:
        overrides["train.num_train_epochs"] = 3
        fix += f": {flags(overrides)}"
    text = (f"train loss {num(start)} -> {num(state.level)} ({num(100 * train_gain, 2)}% lower) while {eval_set.key} never went "
            f"below {num(eval_set.best[1])} ({len(eval_set.values)} evaluations, best at step {eval_set.best[0]}): "
            "what it learns does not carry to the eval records")
    evidence = clean({"kind": "gap", "train_start": start, "train_now": state.level, "train_gain": train_gain,
                      "eval_best": eval_set.best[1], "eval_best_step": eval_set.best[0], "eval_gain": eval_gain,
                      "evaluations": len(eval_set.values)})
    finding = Finding("overfitting", "amber", "Overfitting: the eval loss does not follow", eval_set.best[0], evidence, text, fix, overrides)
    memo.update(key=key, finding=finding)
    return finding


def eval_small(state: RunState, memo: dict[str, Any]) -> Finding | None:
    """An eval split of a handful of records: its loss cannot tell overfitting from noise."""
    if memo.get("finding") is not None:
        return memo["finding"]
    records = state.plan.get("eval_records")
    if records is None and state.dataset is not None:
        records = (((state.dataset.get("splits") or {}).get("eval")) or {}).get("records")
    if not isinstance(records, int) or not 0 < records < EVAL_MIN_RECORDS or state.cfg("train.eval_strategy", "steps") == "no":
        return None
    train = state.plan.get("train_records") or (((state.dataset or {}).get("splits") or {}).get("train") or {}).get("records")
    overrides: dict[str, Any] = {}
    if isinstance(train, int) and train + records >= 10 * EVAL_MIN_RECORDS and state.cfg("data.eval_split") is not None:
        overrides["data.eval_split"] = round(max(0.1, EVAL_MIN_RECORDS / (train + records)), 2)
    unit = "prompt" if state.is_grpo else "record"
    text = (f"the eval split has {records} {unit}{'s' if records != 1 else ''}: its loss is the noise of "
            f"{'one example' if records == 1 else 'a few examples'}, too few to tell overfitting from chance")
    fix = (f"hold out at least {EVAL_MIN_RECORDS}: " + (flags(overrides) if overrides else "mark more records `eval` or give --eval-dataset")
           + ("" if not train else f" ({train} training records)"))
    finding = Finding("eval-small", "amber", "The eval split is too small", 0, clean({"eval_records": records, "train_records": train}),
                      text, fix, overrides)
    memo["finding"] = finding
    return finding
