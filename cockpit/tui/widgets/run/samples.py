"""The decoded training samples: trained tokens highlighted, masked ones dimmed, the boundary marked."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from cockpit.samples_view import render_sample as draw


def render_sample(sample: dict[str, Any], position: int, count: int) -> Text:
    """One sample as the collator trains on it, drawn as `cockpit samples` draws it (cockpit/samples_view.py),
    the tokens first: the panel is small. A GRPO run's samples are prompts, which generation starts from."""
    return draw(sample, position, count, hint="([ ] step)", formatted=False)


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
