"""Reward functions for the `grpo-demo` preset, and an example of your own rewards (--reward FILE:FUNCTION).

A reward gets the prompts, the completions (strings, or lists of one assistant message for chat
prompts) and every dataset column by name (here `answer`), and returns one float per completion.
These two give partial credit, so even a random model's groups differ and GRPO has a signal.
"""

from __future__ import annotations


def _text(completion) -> str:
    return completion if isinstance(completion, str) else "".join(m.get("content") or "" for m in completion)


def digit_share(prompts, completions, **kwargs) -> list[float]:
    """Share of the completion's visible characters that are digits (1.0: nothing but digits)."""
    out = []
    for c in completions:
        chars = [ch for ch in _text(c) if not ch.isspace()]
        out.append(sum(ch.isdigit() for ch in chars) / len(chars) if chars else 0.0)
    return out


def brevity(prompts, completions, **kwargs) -> list[float]:
    """1.0 for a reply of 1 or 2 visible characters, falling to 0 at 20: answer, then stop. An empty
    reply scores 0 (saying nothing is not an answer)."""
    out = []
    for c in completions:
        n = len(_text(c).strip())
        out.append(0.0 if n == 0 else max(0.0, min(1.0, (20 - n) / 18)))
    return out

