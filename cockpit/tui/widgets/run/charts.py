"""Metric charts: plotext line charts, redrawn only when their data changed and at most twice a second."""

from __future__ import annotations

import time

from textual_plotext import PlotextPlot

MIN_REDRAW_S = 0.5
COLORS = ("cyan", "orange", "green", "magenta", "yellow", "blue", "red")


class MetricChart(PlotextPlot):
    """One chart of one or more lines (label, steps, values); the y axis scales to the data."""

    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.lines: list[tuple[str, list[float], list[float]]] = []
        self._dirty = False
        self._drawn_at = 0.0

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(MIN_REDRAW_S, self._flush)

    def set_lines(self, lines: list[tuple[str, list[float], list[float]]]) -> None:
        self.lines = lines
        self._dirty = True
        if time.monotonic() - self._drawn_at >= MIN_REDRAW_S:
            self._flush()

    def _flush(self) -> None:
        if self._dirty and self.display:
            self._dirty = False
            self._drawn_at = time.monotonic()
            self.refresh()

    @property
    def dirty(self) -> bool:
        """New data not drawn yet."""
        return self._dirty and self.display

    @property
    def points_wanted(self) -> int:
        """About two points per cell of width (braille draws two per cell)."""
        return max(60, 2 * (self.size.width or 60))

    def render(self):
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        if not self.lines:
            plt.title(f"{self.title} (no data yet)")
        for i, (label, xs, ys) in enumerate(self.lines):
            marker = "dot" if label.startswith("eval") else "braille"
            plot = plt.scatter if label.startswith("eval") or len(xs) == 1 else plt.plot
            plot(xs, ys, marker=marker, color=COLORS[i % len(COLORS)], label=label if len(self.lines) > 1 else None)
        return super().render()
