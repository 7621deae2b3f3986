"""The decoded training samples: trained tokens highlighted, masked ones dimmed, the boundary marked."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

TRAINED = "bold black on dark_sea_green2"
MASKED = "grey50"
BOUNDARY = "bold black on yellow"


def render_sample(sample: dict[str, Any], position: int, count: int) -> Text:
    """One sample as the collator trains on it, with a header line saying what is what."""
    text = Text()
    tokens, trained = sample.get("tokens"), sample.get("trained_tokens")
    text.append(f"sample {position + 1}/{count}", style="bold")
    text.append(f"  {sample.get('split', 'train')} #{sample.get('index', '?')}  {tokens} tokens, {trained} trained", style="dim")
    text.append("  ([ ] step)\n", style="dim")
    text.append("masked", style=MASKED)
    text.append(" ")
    text.append("trained", style=TRAINED)
    text.append(" ")
    text.append("▶", style=BOUNDARY)
    text.append(" completion starts\n\n", style="dim")
    previous = False
    for segment in sample.get("segments") or []:
        is_trained = bool(segment.get("trained"))
        if is_trained and not previous:
            text.append("▶", style=BOUNDARY)
        text.append(str(segment.get("text", "")), style=TRAINED if is_trained else MASKED)
        previous = is_trained
    if sample.get("truncated"):
        text.append(" ✂ truncated at max_length", style="bold white on red")
    if not trained:
        text.append("\n\nno token of this sample is trained: its labels are all masked", style="bold red")
    return text


class SamplesPanel(VerticalScroll):
    """Steps through the `samples` event, one sample at a time."""

    index: reactive[int] = reactive(0)
    """Which sample is shown."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.samples: list[dict[str, Any]] = []
        self.border_title = "training samples"

    def compose(self):
        yield Static(Text("samples: waiting for the engine to prepare the data", style="dim"), id="sample-text")

    def show(self, samples: list[dict[str, Any]]) -> None:
        if samples == self.samples:
            return
        self.samples = samples
        self.index = min(self.index, max(0, len(samples) - 1))
        self._draw()

    def step(self, delta: int) -> None:
        if self.samples:
            self.index = (self.index + delta) % len(self.samples)

    def watch_index(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if not self.is_mounted:
            return
        target = self.query_one("#sample-text", Static)
        if not self.samples:
            target.update(Text("samples: waiting for the engine to prepare the data", style="dim"))
            return
        target.update(render_sample(self.samples[self.index], self.index, len(self.samples)))
        self.scroll_home(animate=False)
