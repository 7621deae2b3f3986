"""Which panels of the run screen are on show, at either size (no Textual).

Wide (120x40 and up): the charts and samples on the left, memory, findings and log on the right;
keys 1-5 hide and show them, and a column whose panels are all hidden gives its room to the other.
Narrow (80x24): the header's progress line, one panel (the loss chart first), the top finding and
the footer; keys 1-5 choose the panel, and 1 on the charts steps to the next chart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PANELS = ("charts", "detail", "findings", "log", "memory")  # keys 1-5, in that order
LEFT = ("charts", "detail")
RIGHT = ("memory", "findings", "log")
NARROW_WIDTH = 100  # columns under which one panel is shown at a time
NARROW_HEIGHT = 30  # rows under which the same


def is_narrow(width: int, height: int) -> bool:
    return width < NARROW_WIDTH or height < NARROW_HEIGHT


@dataclass
class PanelLayout:
    """The user's choices (hidden panels when wide; the panel and chart shown when narrow)."""

    narrow: bool = False
    hidden: set[str] = field(default_factory=set)
    focus: str = "charts"
    chart: int = 0

    def press(self, panel: str) -> None:
        """Key 1-5: toggle the panel (wide), or show it (narrow; the charts again: the next chart)."""
        if panel not in PANELS:
            raise ValueError(f"unknown panel {panel!r}")
        if self.narrow:
            if panel == self.focus == "charts":
                self.chart += 1
            self.focus = panel
        elif panel in self.hidden:
            self.hidden.discard(panel)
        else:
            self.hidden.add(panel)

    def visible(self, panel: str) -> bool:
        return self.focus == panel if self.narrow else panel not in self.hidden

    def column_visible(self, column: tuple[str, ...]) -> bool:
        return any(self.visible(p) for p in column)

    def chart_shown(self, names: list[str]) -> str | None:
        """Narrow: the one chart on show, of `names` in their order; None when wide (all are)."""
        if not self.narrow or not names:
            return None
        return names[self.chart % len(names)]
