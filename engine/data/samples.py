"""Decoded training examples split into trained and masked segments: what the model is trained on.

Read from the trainer's prepared dataset, whose `labels` are the ones the collator uses (-100 for
masked tokens), so the view cannot drift from what training sees. Each sample also carries the
record as the chat template formats it, before tokenization and truncation, so a reader can put
the two side by side (what the data says, what the model is trained on).
"""

from __future__ import annotations

import json
from typing import Any

IGNORE = -100
TEXT_CHARS = 20_000  # the formatted text kept per sample: a few long records must not swell the event


def segments(input_ids: list[int], labels: list[int], tokenizer: Any) -> list[dict[str, Any]]:
    """Consecutive runs of trained / masked tokens, each decoded to text."""
    out: list[dict[str, Any]] = []
    run: list[int] = []
    trained: bool | None = None
    for token, label in zip(input_ids, labels):
        is_trained = label != IGNORE
        if trained is not None and is_trained != trained:
            out.append({"text": tokenizer.decode(run), "trained": trained})
            run = []
        run.append(token)
        trained = is_trained
    if run:
        out.append({"text": tokenizer.decode(run), "trained": bool(trained)})
    return out


def formatted(row: dict[str, Any], tokenizer: Any) -> tuple[str | None, int | None]:
    """The record as the template renders it (TRL's own inputs: prompt/completion, messages or text),
    and where the completion starts in it (None where there is no prompt/completion split)."""
    tools = row.get("tools")
    tools = json.loads(tools) if isinstance(tools, str) else tools  # as TRL reads the column
    if "prompt" in row and "completion" in row:
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, list):
            full = tokenizer.apply_chat_template(prompt + completion, tools=tools, tokenize=False)
            head = tokenizer.apply_chat_template(prompt, tools=tools, tokenize=False, add_generation_prompt=True)
        else:
            full, head = str(prompt) + str(completion), str(prompt)
        return full, len(head) if full.startswith(head) else None
    if isinstance(row.get("messages"), list):
        return tokenizer.apply_chat_template(row["messages"], tools=tools, tokenize=False), None
    if isinstance(row.get("text"), str):
        return row["text"], None
    return None, None


def sample_payload(dataset: Any, tokenizer: Any, count: int, max_length: int | None, split: str = "train",
                   truncation_mode: str = "keep_start") -> list[dict[str, Any]]:
    """Up to `count` examples of a prepared dataset as the `samples` event carries them."""
    out = []
    for index in range(min(count, len(dataset))):
        row = dataset[index]
        ids = list(row["input_ids"])
        labels = list(row.get("labels") or ids)
        text, prompt_chars = formatted(row, tokenizer)
        truncated = max_length is not None and len(ids) >= max_length
        sample = {
            "index": index,
            "split": split,
            "segments": segments(ids, labels, tokenizer),
            "tokens": len(ids),
            "trained_tokens": sum(1 for label in labels if label != IGNORE),
            "truncated": truncated,
            "max_length": max_length,
        }
        if truncated:
            sample["cut"] = "start" if truncation_mode == "keep_end" else "end"
        if text is not None:
            sample["text"] = text[:TEXT_CHARS]
            sample["text_cut"] = len(text) > TEXT_CHARS
            sample["prompt_chars"] = prompt_chars
        out.append(sample)
    return out
