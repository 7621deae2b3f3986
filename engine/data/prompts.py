"""GRPO rows: prompts with their ground truth, read by the one loader (same formats, split and errors).

A GRPO row is ``{"prompt": [messages] | str, "answer": str, "solution": str}``: the prompt the model
completes, and the truth the rewards check (``solution`` is the name TRL's accuracy rewards read).
The truth is the record's completion (for GSM8K's question/answer, the number after ``####``), or
the column named by grpo.answer_field. Standard library only.
"""

from __future__ import annotations

from typing import Any

from engine.data import load as data_loader
from engine.errors import EngineError
from engine.train.rewards import completion_text, ground_truth
from engine.train.sft import load_data

# Columns that hold the prompt of a prompt + answer record with no completion column of its own.
PROMPT_COLUMNS = ("prompt", "question", "problem", "query", "input", "instruction")


def system_prompt(cfg: dict[str, Any]) -> str | None:
    """data.system_prompt where set, else the grpo section's (the answer format the rewards expect)."""
    return cfg["data"]["system_prompt"] or cfg["grpo"]["system_prompt"] or None


def _answer_templates(cfg: dict[str, Any]) -> tuple[str | None, str | None]:
    """Templates that map grpo.answer_field (and the record's prompt column) onto prompt/completion."""
    dcfg, field = cfg["data"], cfg["grpo"]["answer_field"]
    if not field or dcfg["prompt_template"]:
        return dcfg["prompt_template"], dcfg["completion_template"] or (f"{{{field}}}" if field else None)
    first = next((rec for _, rec in data_loader.iter_records(dcfg["path"]) if isinstance(rec, dict) and rec), None)
    if first is None:
        return None, None
    if field not in first:
        cols = ", ".join(map(str, first)) or "none"
        raise EngineError("data", f"{dcfg['path']}: grpo.answer_field '{field}' is not a column (columns: {cols}); name the column with the ground truth",
                          code="no_answer", key="grpo.answer_field")
    column = next((c for c in PROMPT_COLUMNS if c in first and c != field), None)
    if column is None:
        raise EngineError("data", f"{dcfg['path']}: no prompt column ({', '.join(PROMPT_COLUMNS)}); map it with --set data.prompt_template='{{your_column}}'")
    return f"{{{column}}}", f"{{{field}}}"


def load(cfg: dict[str, Any], chat: bool | None = None) -> data_loader.Splits:
    """Train/eval GRPO rows; errors are EngineError("data") with the loader's one-line message."""
    prompt_template, completion_template = _answer_templates(cfg)
    splits = load_data(
        cfg,
        chat,
        prompt_template=prompt_template,
        completion_template=completion_template,
        system_prompt=system_prompt(cfg),
        loss_on="completion",  # the last assistant turn is the reference answer, the rest the prompt
    )
    if splits.format == "text":
        raise EngineError("data", f"{splits.path}: plain text records have no prompt to complete; GRPO needs prompts "
                          "(question/answer, prompt/completion, messages...) or a mapping with --set data.prompt_template")
    splits.train = [to_grpo_row(r) for r in splits.train]
    # Every eval prompt: grpo.eval_prompts picks among those that fit max_prompt_length (engine.train.grpo).
    splits.eval = [to_grpo_row(r) for r in splits.eval]
    return splits


def eval_subset(splits: data_loader.Splits, limit: int) -> int:
    """Keep the first `limit` eval prompts (0: all), taken from those left once over-long ones are
    dropped, so the eval runs on as many as asked; returns how many there were to choose from."""
    available = len(splits.eval)
    if limit and available > limit:
        splits.eval = splits.eval[:limit]
        splits.warnings.append(f"evaluating on {limit} of the {available} eval prompts that fit (grpo.eval_prompts={limit}; 0 evaluates all)")
    return available


def to_grpo_row(row: dict[str, Any]) -> dict[str, Any]:
    """A normalised prompt/completion row -> a GRPO row (the completion becomes the truth)."""
    truth = ground_truth(completion_text(row["completion"]))
    return {"prompt": row["prompt"], "answer": truth, "solution": truth}


def prompt_display(prompt: Any) -> str:
    """The part of a prompt a person reads: the last user turn (the system prompt is the same for all)."""
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
    return str((users[-1] if users else prompt[-1]).get("content") or "") if prompt else ""
