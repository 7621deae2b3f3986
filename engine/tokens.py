"""Token lengths of normalised rows under a tokenizer: what max_length keeps and what it cuts.

Shared by the engine's pre-flight (before the model loads) and `cockpit lint`'s token checks. Texts
are rendered through the chat template once each and encoded in batches by the fast tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

BATCH = 512


def _tools(row: dict[str, Any]) -> Any:
    tools = row.get("tools")
    if isinstance(tools, str):
        tools = json.loads(tools) if tools.strip() else None
    return tools or None


def render(row: dict[str, Any], tokenizer: Any) -> tuple[str, str]:
    """(prompt text, full text) of one row as the trainer will see it."""
    if "text" in row:
        return "", row["text"]
    tools = _tools(row)
    if "messages" in row:
        messages = row["messages"]
        last_assistant = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=len(messages))
        prompt_msgs, full_msgs = messages[:last_assistant], messages
    else:
        prompt_msgs, full_msgs = row["prompt"], row["prompt"] + row["completion"] if isinstance(row["prompt"], list) else None
    if full_msgs is None:  # plain strings: the trainer appends EOS to the completion
        return row["prompt"], row["prompt"] + row["completion"] + (tokenizer.eos_token or "")
    prompt = tokenizer.apply_chat_template(prompt_msgs, tools=tools, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(full_msgs, tools=tools, tokenize=False)
    return prompt, full


def stats(values: list[int]) -> dict[str, int]:
    """min, median, p95 and max of token (or character) lengths."""
    if not values:
        return {"min": 0, "median": 0, "p95": 0, "max": 0}
    s = sorted(values)
    return {"min": s[0], "median": s[len(s) // 2], "p95": s[min(len(s) - 1, int(len(s) * 0.95))], "max": s[-1]}


def percentile(values: list[int], q: float) -> int:
    """The q-quantile of the lengths (nearest rank)."""
    if not values:
        return 0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * len(s))) - 1))]


class RenderError(ValueError):
    """The chat template cannot render a record (an unknown role, tools it does not know...)."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


def lengths(rows: Iterable[dict[str, Any]], tokenizer: Any) -> tuple[list[int], list[int]]:
    """(prompt lengths, total lengths) in tokens, row by row. Raises RenderError on the first failure."""
    prompt_lens: list[int] = []
    total_lens: list[int] = []
    prompts: list[str] = []
    fulls: list[str] = []

    def flush() -> None:
        if not fulls:
            return
        enc_full = tokenizer(fulls, add_special_tokens=False)["input_ids"]
        enc_prompt = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        prompt_lens.extend(len(p) for p in enc_prompt)
        total_lens.extend(len(f) for f in enc_full)
        prompts.clear()
        fulls.clear()

    for index, row in enumerate(rows):
        try:
            prompt, full = render(row, tokenizer)
        except Exception as exc:  # jinja errors, template-raised exceptions: all mean "cannot render"
            raise RenderError(index, f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
        prompts.append(prompt)
        fulls.append(full)
        if len(fulls) >= BATCH:
            flush()
    flush()
    return prompt_lens, total_lens


def length_report(prompt_lens: list[int], total_lens: list[int], max_length: int, mode: str = "keep_start") -> dict[str, Any]:
    """Token stats of one split and what max_length does to it."""
    completion_lens = [t - p for p, t in zip(prompt_lens, total_lens)]
    truncated = sum(1 for t in total_lens if t > max_length)
    if mode == "keep_start":
        # Kept from the start: a prompt that fills max_length leaves no completion token at all.
        lost = sum(1 for p in prompt_lens if p >= max_length)
    else:
        lost = 0
    return {
        "records": len(total_lens),
        "tokens": {"prompt": stats(prompt_lens), "completion": stats(completion_lens), "total": stats(total_lens)},
        "truncated": truncated,
        "completion_lost": lost,
        "keep_max_length": {"p100": max(total_lens, default=0), "p99": percentile(total_lens, 0.99)},
    }
