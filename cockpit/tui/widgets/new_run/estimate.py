"""The memory estimate under the new-run form, redrawn whenever the form's config resolves."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from cockpit.memory_estimate import form_markup
from engine.memory import estimate as estimate_mod


class MemoryEstimate(Static):
    """One line (two when it warns: the fix) of what the run will need per GPU, and whether it fits.

    Fast enough to follow every edit: model sizes come from file headers and are cached per model;
    the GPUs are read once, when first needed.
    """

    DEFAULT_CSS = "MemoryEstimate { height: auto; padding: 0 1; border-top: solid $panel; }"

    def __init__(self, gpus: list[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.gpus = gpus
        self.estimate: estimate_mod.Estimate | None = None

    def show(self, cfg: dict[str, Any]) -> None:
        if self.gpus is None:
            self.gpus = estimate_mod.visible_gpus()
        self.estimate = estimate_mod.estimate(cfg, gpus=self.gpus)
        self.update(form_markup(self.estimate))

    def clear(self, why: str) -> None:
        """No estimate while the form does not resolve to a config; the line says so, and why."""
        from rich.markup import escape

        self.estimate = None
        self.update(f"[dim]memory estimate: none {escape(why)}[/]")
