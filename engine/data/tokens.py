"""The one token counter: lengths of normalised rows under a tokenizer, and what max_length does to them.

`cockpit lint` (streaming a file) and the engine's pre-flight (the loaded splits) both count with
`TokenCounter`, and both judge the lengths with `length_report` and the findings in
engine/data/checks.py, so they agree on every number and severity. A row is rendered through the
chat template once; the full text is encoded by the fast tokenizer in a worker thread while the
next batch renders. The prompt's length is the prefix of the full encoding up to where the prompt
ends when a token starts exactly there (the common case: templates end the prompt on a special
token or a newline), else the prompt encoded on its own, as TRL tokenizes it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

BATCH = 256
ROUND_TO = 64  # suggested max_length values are rounded up to a multiple of this (kernels like it)
OUTLIER = 1.5  # a longest record over 1.5x the 99th percentile is an outlier: suggest p99, drop the rest


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


def stats(values: Iterable[int]) -> dict[str, int]:
    """min, median, p95 and max of token (or character) lengths."""
    s = sorted(values)
    if not s:
        return {"min": 0, "median": 0, "p95": 0, "max": 0}
    return {"min": s[0], "median": s[len(s) // 2], "p95": s[min(len(s) - 1, int(len(s) * 0.95))], "max": s[-1]}


def percentile(values: Iterable[int], q: float) -> int:
    """The q-quantile of the lengths (nearest rank)."""
    s = sorted(values)
    if not s:
        return 0
    return s[min(len(s) - 1, max(0, int(round(q * len(s))) - 1))]


def round_up(value: float, multiple: int = ROUND_TO) -> int:
    return int(math.ceil(value / multiple) * multiple)


def keep_max_length(total_lens: Iterable[int]) -> dict[str, int]:
    """The max_length that keeps every record whole (p100) and 99% of them (p99)."""
    s = sorted(total_lens)
    return {"p100": s[-1] if s else 0, "p99": percentile(s, 0.99)}


def suggest_max_length(keep: dict[str, Any] | None) -> tuple[int | None, bool]:
    """(max_length to suggest, whether the longest records are outliers to drop instead).

    Every record whole, rounded up; where the longest is an outlier (over 1.5x p99), the 99th
    percentile, with the rest dropped (data.too_long=drop).
    """
    if not keep:
        return None, False
    p100, p99 = keep.get("p100"), keep.get("p99")
    if not isinstance(p100, (int, float)) or p100 <= 0:
        return None, False
    if isinstance(p99, (int, float)) and p99 > 0 and p100 > OUTLIER * p99:
        return round_up(p99), True
    return round_up(p100), False


class RenderError(ValueError):
    """The chat template cannot render a record (an unknown role, tools it does not know...)."""

    def __init__(self, place: Any, message: str):
        super().__init__(message)
        self.place = place


class TokenCounter:
    """Counts rows as they come: `add(row, place)`, then `finish()`; lengths in the order added.

    A row the template cannot render is kept in `failures` (place, message) and not counted;
    `strict=True` raises RenderError on the first one instead.
    """

    def __init__(self, tokenizer: Any, strict: bool = False):
        self.tokenizer = tokenizer
        self.strict = strict
        self.prompt_lens: list[int] = []
        self.total_lens: list[int] = []
        self.places: list[Any] = []
        self.failures: list[tuple[Any, str]] = []
        self._prompts: list[str] = []
        self._fulls: list[str] = []
        self._batch_places: list[Any] = []
        self._pending = None
        self._pool = None
        self._backend = getattr(tokenizer, "_tokenizer", None)  # the Rust encoder: offsets, no Python lists

    def add(self, row: dict[str, Any], place: Any) -> tuple[str, str] | None:
        """Render one row; returns its (prompt, full) texts, or None when it cannot be rendered."""
        try:
            prompt, full = render(row, self.tokenizer)
        except Exception as exc:  # jinja errors, template-raised exceptions: all mean "cannot render"
            message = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            if self.strict:
                raise RenderError(place, message) from None
            self.failures.append((place, message))
            return None
        self._prompts.append(prompt)
        self._fulls.append(full)
        self._batch_places.append(place)
        if len(self._fulls) >= BATCH:
            self._flush()
        return prompt, full

    def _encode(self, texts: list[str]) -> list[Any]:
        if self._backend is not None:
            return self._backend.encode_batch(texts, add_special_tokens=False)
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def _flush(self) -> None:
        if not self._fulls:
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1)
        self._collect()
        batch = (self._prompts, self._fulls, self._batch_places)
        self._pending = (self._pool.submit(self._encode, self._fulls), *batch)
        self._prompts, self._fulls, self._batch_places = [], [], []

    def _prompt_len(self, enc: Any, prompt: str, full: str) -> int | None:
        """The prompt's tokens as a prefix of the full encoding, where a token starts where the prompt ends."""
        if not prompt:
            return 0
        if not full.startswith(prompt) or not hasattr(enc, "offsets"):
            return None
        if len(prompt) >= len(full):
            return len(enc)
        index = enc.char_to_token(len(prompt))
        if index is None or enc.offsets[index][0] != len(prompt):
            return None
        return index

    def _collect(self) -> None:
        if self._pending is None:
            return
        future, prompts, fulls, places = self._pending
        self._pending = None
        encodings = future.result()
        alone = []
        for enc, prompt, full, place in zip(encodings, prompts, fulls, places):
            cut = self._prompt_len(enc, prompt, full)
            if cut is None:
                alone.append((len(self.total_lens), prompt))
            self.total_lens.append(len(enc))
            self.prompt_lens.append(cut if cut is not None else 0)
            self.places.append(place)
        if alone:  # the boundary falls inside a token: the prompt encoded on its own, as TRL does
            for (index, _), enc in zip(alone, self._encode([p for _, p in alone])):
                self.prompt_lens[index] = len(enc)

    def finish(self) -> TokenCounter:
        self._flush()
        self._collect()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        return self


def length_report(prompt_lens: list[int], total_lens: list[int], max_length: int, mode: str = "keep_start") -> dict[str, Any]:
    """Token stats of one split and what max_length does to it.

    keep_start keeps the beginning: a prompt that fills max_length leaves no completion token
    (`completion_lost`). keep_end keeps the end, so every completion keeps its last tokens.
    """
    completion_lens = [t - p for p, t in zip(prompt_lens, total_lens)]
    truncated = [i for i, t in enumerate(total_lens) if t > max_length]
    lost = [i for i, p in enumerate(prompt_lens) if p >= max_length] if mode == "keep_start" else []
    return {
        "records": len(total_lens),
        "tokens": {"prompt": stats(prompt_lens), "completion": stats(completion_lens), "total": stats(total_lens)},
        "truncated": len(truncated),
        "completion_lost": len(lost),
        "keep_max_length": keep_max_length(total_lens),
        "truncated_index": truncated,
        "lost_index": lost,
    }
