"""A training sample as the collator trains it, drawn as Rich text: one renderer for the TUI's samples
panel, `cockpit samples` and `cockpit run --show-examples` (Rich only, no Textual).

A sample (the `samples` event, engine/data/samples.py) shows the record as the chat template formats
it, then its tokens decoded: trained ones highlighted, masked ones dimmed, the completion's start and
any truncation marked, with its counts. Without colour (NO_COLOR, a pipe, a file) the marks are
plain text: trained tokens inside [[ ]].
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

TRAINED = "bold black on dark_sea_green2"
MASKED = "grey50"
BOUNDARY = "bold black on yellow"
CUT = "bold white on red"
START, OPEN, CLOSE = "▶", "[[", "]]"


def _header(sample: dict[str, Any], position: int, count: int, hint: str) -> Text:
    tokens, trained = sample.get("tokens"), sample.get("trained_tokens")
    share = f" ({trained / tokens:.0%})" if isinstance(tokens, int) and tokens and isinstance(trained, int) else ""
    counts = f"{tokens} prompt tokens" if sample.get("prompt_only") else f"{tokens} tokens, {trained} trained{share}"
    text = Text()
    text.append(f"sample {position + 1}/{count}", style="bold")
    text.append(f"  {sample.get('split', 'train')} #{sample.get('index', '?')}  {counts}", style="dim")
    if sample.get("truncated"):
        text.append(f", cut at max_length {sample.get('max_length') or ''}".rstrip(), style="dim")
    if hint:
        text.append(f"  {hint}", style="dim")
    return text


def _formatted(sample: dict[str, Any], plain: bool) -> Text:
    """The record as the template renders it, the completion's start marked."""
    body, at = str(sample.get("text") or ""), sample.get("prompt_chars")
    text = Text()
    if isinstance(at, int) and 0 <= at <= len(body):
        text.append(body[:at])
        text.append(START, style=None if plain else BOUNDARY)
        text.append(body[at:])
    else:
        text.append(body)
    if sample.get("text_cut"):
        text.append(" … (longer: shortened here)", style="dim")
    return text


def _tokens(sample: dict[str, Any], plain: bool) -> Text:
    """The decoded tokens: trained highlighted (or inside [[ ]]), masked dimmed, the cut marked."""
    text = Text()
    if sample.get("truncated") and sample.get("cut") == "start":
        text.append("✂ ", style=None if plain else CUT)
    previous = False
    for segment in sample.get("segments") or []:
        is_trained = bool(segment.get("trained"))
        chunk = str(segment.get("text", ""))
        if plain:
            text.append(f"{OPEN}{chunk}{CLOSE}" if is_trained else chunk)
        else:
            if is_trained and not previous:
                text.append(START, style=BOUNDARY)
            text.append(chunk, style=TRAINED if is_trained else MASKED)
        previous = is_trained
    if sample.get("truncated") and sample.get("cut") != "start":
        text.append(" ✂ cut at max_length", style=None if plain else CUT)
    return text


def render_sample(sample: dict[str, Any], position: int, count: int, plain: bool = False, hint: str = "",
                  formatted: bool = True) -> Text:
    """One sample: its header and counts, the formatted text, then the tokens as trained.

    `plain`: marks that survive without colour. `hint`: keys or commands shown in the header.
    `formatted`: False leaves the formatted text out (a small panel shows the tokens first).
    """
    text = _header(sample, position, count, hint)
    text.append("\n")
    if sample.get("prompt_only"):  # GRPO: the model completes the prompt; its completions are what trains
        text.append("prompt as generation sees it (GRPO trains on the completions it generates)\n", style="bold")
        text.append(str(sample.get("text") or "".join(str(s.get("text", "")) for s in sample.get("segments") or [])))
        if sample.get("answer") is not None:
            text.append("\nanswer the rewards check: ", style="bold")
            text.append(str(sample["answer"]))
        return text
    if formatted and sample.get("text"):
        text.append(f"formatted text ({START} the completion starts)\n", style="bold")
        body = _formatted(sample, plain)
        text.append_text(body)
        text.append("\n" if body.plain.endswith("\n") else "\n\n")  # one blank line, whatever the template ends with
    legend = "trained tokens inside [[ ]]" if plain else None
    text.append("tokens as trained: ", style="bold")
    if legend:
        text.append(legend)
    else:
        text.append("masked", style=MASKED)
        text.append(" ")
        text.append("trained", style=TRAINED)
        text.append(" ")
        text.append(START, style=BOUNDARY)
        text.append(" completion starts", style="dim")
    text.append("\n")
    text.append_text(_tokens(sample, plain))
    if not sample.get("trained_tokens"):
        text.append("\n\nno token of this sample is trained: its labels are all masked", style=None if plain else "bold red")
    return text


def samples_title(samples: list[dict[str, Any]]) -> str:
    if samples and all(s.get("prompt_only") for s in samples):
        return f"{len(samples)} training prompts as generation sees them"
    return f"{len(samples)} training examples as the collator trains them"


def print_samples(console: Any, samples: list[dict[str, Any]], index: int | None = None) -> None:
    """Every sample (or the one at `index`) on a Rich console; plain marks where it shows no colour."""
    plain = console.no_color or console.color_system is None
    chosen = list(enumerate(samples)) if index is None else [(index, samples[index])]
    for n, (position, sample) in enumerate(chosen):
        if n:
            console.print()
        console.print(render_sample(sample, position, len(samples), plain=plain), highlight=False, markup=False)
