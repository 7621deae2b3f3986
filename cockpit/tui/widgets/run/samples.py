"""The decoded training samples: trained tokens highlighted, masked ones dimmed, the boundary marked."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from cockpit.samples_view import render_sample as draw


def render_sample(sample: dict[str, Any], position: int, count: int, prompts: bool = False) -> Text:
    """One sample as the collator trains on it, drawn as `cockpit samples` draws it (cockpit/samples_view.py),
    the tokens first: the panel is small. A GRPO run's samples are prompts, which generation starts from."""
    if prompts:
        return draw({**sample, "prompt_only": True}, position, count)
    return draw(sample, position, count, hint="([ ] step)", formatted=False)


def waiting_text(status: str) -> str:
    """What the panel says before there are samples: waiting while the engine runs, why not after."""
    if status == "running":
        return "samples: waiting for the engine to prepare the data"
    if status == "failed":
        return "samples: none, the engine failed before it prepared the data (see the error above)"
    return f"samples: none, the run {status} before the engine prepared the data"


class SamplesPanel(VerticalScroll):
    """Steps through the `samples` event, one sample at a time."""

    index: reactive[int] = reactive(0)
    """Which sample is shown."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.samples: list[dict[str, Any]] = []
        self.status = "running"
        self.prompts = False  # a GRPO run's: prompts, which generation starts from
        self.border_title = "training samples"

    def compose(self):
        yield Static(Text(waiting_text(self.status), style="dim"), id="sample-text")

    def show(self, samples: list[dict[str, Any]], status: str = "running") -> None:
        if samples == self.samples and status == self.status:
            return
        self.samples, self.status = samples, status
        self.index = min(self.index, max(0, len(samples) - 1))
        self._draw()

    def show_prompts(self, on: bool) -> None:
        """GRPO: the samples are prompts, and [ ] step through generations instead."""
        if on != self.prompts:
            self.prompts = on
            self.border_title = "prompts" if on else "training samples"
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
            target.update(Text(waiting_text(self.status), style="dim"))
            return
        target.update(render_sample(self.samples[self.index], self.index, len(self.samples), prompts=self.prompts))
        self.scroll_home(animate=False)
