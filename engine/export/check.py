"""Whether an exported model computes what the trained one did: logits on a few prompts, compared
within the rounding of the precision they were written in."""

from __future__ import annotations

from typing import Any

# Prompts of the logits check: rendered through the run's chat template where it has one.
CHECK_PROMPTS = (
    "Hello! Who are you?",
    "What is 17 plus 25?",
    "Write one sentence about the sea.",
    "Call the weather tool for Paris.",
)
# How far merged logits may be from the adapter model's, relative to the largest logit: merging in
# float32 changes them by rounding only; in bf16/fp16 the merged weights are rounded to 8 or 11 bits.
TOLERANCE = {"fp32": 1e-4, "bf16": 3e-2, "fp16": 1e-2}


class CheckFailed(Exception):
    """The exported model does not compute what the trained one did (exit code 1)."""


def prompt_ids(tokenizer: Any) -> list[list[int]]:
    """Token ids of the check prompts, as the model sees a user's turn."""
    out = []
    for text in CHECK_PROMPTS:
        if tokenizer.chat_template:
            rendered = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
            out.append(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        else:
            out.append(tokenizer(text)["input_ids"])
    return out


def logits(model: Any, ids: list[list[int]]) -> list[Any]:
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        return [model(input_ids=torch.tensor([row], device=device)).logits[0].float().cpu() for row in ids]


def compare(reference: list[Any], other: list[Any], precision: str, what: str) -> str:
    """One line on how close two models' logits are; raises CheckFailed past the tolerance."""
    import torch

    delta = max(float((a - b).abs().max()) for a, b in zip(reference, other))
    scale = max(float(a.abs().max()) for a in reference) or 1.0
    positions = sum(a.shape[0] for a in reference)
    agree = sum(int((a.argmax(-1) == b.argmax(-1)).sum()) for a, b in zip(reference, other))
    line = (f"logits check, {what}: {len(reference)} prompts, {positions} positions: max |difference| {delta:.2g} "
            f"(largest logit {scale:.3g}), same top token at {100 * agree / positions:.0f}% of positions")
    if delta > TOLERANCE[precision] * scale or not torch.isfinite(torch.tensor(delta)):
        raise CheckFailed(f"{line}: past the {precision} tolerance ({TOLERANCE[precision]:g} of the largest logit); not exported")
    return line + ": match"
