"""How evaluations read on the terminal, in doctor and in the TUI: GRPO's answer and format accuracy,
and a saved model's evaluation on a test file (`cockpit eval`). Standard library only."""

from __future__ import annotations

from typing import Any

from cockpit.format import metric
from engine.events import number

ACCURACY_KEYS = ("eval_answer_accuracy", "eval_format_accuracy")


def percent(value: Any) -> str:
    v = number(value)
    return "-" if v is None else f"{v:.0%}" if v in (0.0, 1.0) else f"{v:.1%}"


def accuracy_text(metrics: dict[str, Any], prefix: str = "eval_") -> str:
    """answer accuracy 25.0%  format accuracy 50.0% (the ones the evaluation has)."""
    parts = [f"{name} accuracy {percent(metrics[prefix + name + '_accuracy'])}"
             for name in ("answer", "format") if metrics.get(prefix + name + "_accuracy") is not None]
    return "  ".join(parts)


def result_text(result: dict[str, Any]) -> str:
    """A `cockpit eval` result in one line: what was evaluated, on what, and how it did."""
    m = result.get("metrics") or {}
    where = f"{result.get('checkpoint')}" + (f" (step {result['model_step']})" if result.get("model_step") is not None else "")
    dataset = str(result.get("dataset") or "").replace("\\", "/").rsplit("/", 1)[-1]  # the file's name; its JSON keeps the path
    head = f"{result.get('name')}: {where} on {dataset}, {result.get('evaluated')} records"
    dropped = sum(v for v in (result.get("dropped") or {}).values() if isinstance(v, int))
    if dropped:  # e.g. prompts over grpo.max_prompt_length, left out as in training
        head += f" ({dropped} of {result.get('records')} left out: {', '.join(result['dropped'])})"
    if result.get("run_type") == "grpo":
        body = [accuracy_text(m) or "no accuracy (no ground truth)", f"reward {metric(m.get('eval_reward'))}"]
    else:
        body = [f"eval_loss {metric(m.get('eval_loss'))}"]
        if m.get("eval_mean_token_accuracy") is not None:
            body.append(f"token accuracy {percent(m.get('eval_mean_token_accuracy'))}")
    return head + ": " + "  ".join(body)


def headline(state: Any) -> str:
    """A few words for the TUI's header: GRPO's last eval accuracies, then the latest `cockpit eval` result."""
    parts = []
    if state.is_grpo and any(state.eval.get(k) is not None for k in ACCURACY_KEYS):
        parts.append("eval " + accuracy_text(state.eval).replace(" accuracy", ""))
    if state.tests:
        result = list(state.tests.values())[-1]
        m = result.get("metrics") or {}
        if result.get("run_type") == "grpo":
            score = f"answer {percent(m.get('eval_answer_accuracy'))}"
        else:
            score = f"eval_loss {metric(m.get('eval_loss'))}"
        parts.append(f"test {result.get('name')} {score}")
    return "  ".join(parts)
