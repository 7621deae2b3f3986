"""Decoded training examples split into trained and masked segments: what the model is trained on.

Read from the trainer's prepared dataset, whose `labels` are the ones the collator uses (-100 for
masked tokens), so the view cannot drift from what training sees.
"""

from __future__ import annotations

from typing import Any

IGNORE = -100


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


def sample_payload(dataset: Any, tokenizer: Any, count: int, max_length: int | None, split: str = "train") -> list[dict[str, Any]]:
    """Up to `count` examples of a prepared dataset as the `samples` event carries them."""
    out = []
    for index in range(min(count, len(dataset))):
        row = dataset[index]
        ids = list(row["input_ids"])
        labels = list(row.get("labels") or ids)
        out.append(
            {
                "index": index,
                "split": split,
                "segments": segments(ids, labels, tokenizer),
                "tokens": len(ids),
                "trained_tokens": sum(1 for label in labels if label != IGNORE),
                "truncated": max_length is not None and len(ids) >= max_length,
            }
        )
    return out
