"""Metric charts: plotext line charts, redrawn only when their data changed and at most twice a second.

Each chart draws its own title line (name, legend, NaN/Inf note) above the plot, so neither a wide
y label nor a long name can push the title out, and no legend sits on the data. Ticks are chosen
here: whole steps on x, short labels on y.
"""

from __future__ import annotations

import math
import time

from rich.text import Text
from textual_plotext import PlotextPlot

MIN_REDRAW_S = 0.5
COLORS = ("cyan", "orange", "green", "magenta", "yellow", "blue", "red")  # plotext's names
RICH_COLOR = {"orange": "dark_orange"}
LEGEND_NAMES = {"loss": "train", "reward": "total"}  # a chart's own metric, among the others on it  # the legend's colour where rich names it otherwise
NONFINITE_COLOR = "red"
Line = tuple[str, list[float], list[float]]


def nice_ticks(lo: float, hi: float, count: int, whole: bool = False) -> list[float]:
    """Round values (1, 2, 2.5 or 5 times a power of ten apart) from lo to hi: at most `count` where it can, at least two."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    magnitude = 10 ** math.floor(math.log10(hi - lo))
    steps = sorted({m * magnitude * 10**k for m in (1, 2, 2.5, 5) for k in (-2, -1, 0)}, reverse=True)
    if whole:
        steps = sorted({max(1.0, float(math.ceil(s))) for s in steps if s >= 1 or s == steps[-1]}, reverse=True)
    fitting: list[list[float]] = []
    for step in steps:
        first = math.ceil(lo / step - 1e-9) * step
        ticks = [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]
        ticks = [0.0 if abs(t) < step * 1e-9 else float(f"{t:.12g}") for t in ticks]
        if len(ticks) >= 2:
            fitting.append(ticks)
    if not fitting:
        return [lo, hi]
    # The most ticks that are not more than asked for (labels must not touch), else the fewest.
    within = [t for t in fitting if len(t) <= max(2, count)]
    return max(within, key=len) if within else min(fitting, key=len)


def tick_labels(ticks: list[float]) -> list[str]:
    """Short y labels, one format for the whole axis: 0.016, 59.5, 4.9e-6, 120k; never -0."""
    spacing = min((abs(b - a) for a, b in zip(ticks, ticks[1:]) if b != a), default=abs(ticks[0]) or 1.0)
    top = max(abs(t) for t in ticks)
    if 0 < top < 1e-3:
        def label(v: float) -> str:
            mantissa, exponent = f"{v:.1e}".split("e")
            return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    elif top >= 1e5:
        def label(v: float) -> str:
            return f"{v / 1000:.0f}k"
    else:
        # As many decimals as the spacing has (0.25 apart: two), so neighbouring labels differ.
        decimals = next((d for d in range(7) if abs(round(spacing, d) - spacing) <= spacing * 1e-6), 6)

        def label(v: float) -> str:
            return f"{v:.{decimals}f}"
    return ["0" if t == 0 or float(label(t).replace("k", "e3")) == 0 else label(t) for t in ticks]


def step_label(value: float) -> str:
    return str(int(round(value)))


class MetricChart(PlotextPlot):
    """One chart of one or more lines (label, steps, values); the y axis scales to the data.

    Steps where a line's value was NaN or Inf are marked with a red x at the top of the chart, and
    the x axis runs to the run's last step, so a line that ends in NaN does not look like a run that
    stopped early.
    """

    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.lines: list[Line] = []
        self.nonfinite: list[tuple[str, list[float], int]] = []  # (label, steps kept, how many in all)
        self.x_max: float | None = None
        self.ended = False  # the run is over: a chart with no data will get none
        self._dirty = False
        self._drawn_at = 0.0

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(MIN_REDRAW_S, self._flush)

    def on_resize(self) -> None:
        self.refresh()  # plotext draws for one size: a chart resized by a layout change must draw again

    def set_lines(self, lines: list[Line], nonfinite: list[tuple[str, list[float], int]] | None = None,
                  x_max: float | None = None, ended: bool = False) -> None:
        self.lines = lines
        self.nonfinite = nonfinite or []
        self.x_max = x_max
        self.ended = ended
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

    def title_line(self) -> Text:
        """The chart's name, its legend when it has several lines, and where values were not finite."""
        text = Text(self.title, style="bold")
        if not self.lines and not self.nonfinite:
            text.append(" (not logged)" if self.ended else " (no data yet)", style="dim")
        if len(self.lines) > 1:
            for i, (label, _, _) in enumerate(self.lines):
                label = LEGEND_NAMES.get(label, label) if label == self.title else label
                eval_line = label.startswith("eval")
                color = COLORS[i % len(COLORS)]
                text.append("  " + ("•" if eval_line else "━") + " ", style=RICH_COLOR.get(color, color))
                text.append(label, style="dim")
        width = max(1, self.size.width)
        for label, steps, count in self.nonfinite:
            if not steps:
                continue
            first = step_label(steps[0])
            whose = f"{label} " if len(self.lines) > 1 else ""
            # The longest note that fits: the NaN must show even on a chart 20 cells wide.
            notes = [f"  x {whose}NaN/Inf at step {first}" + (f" (+{count - 1})" if count > 1 else ""), f" {whose}NaN from {first}", " NaN"]
            room = width - text.cell_len
            note = next((n for n in notes if len(n) <= room), notes[-1])
            if len(note) > room:  # not even " NaN": the title gives way
                text.truncate(max(1, width - len(note)), overflow="ellipsis")
            text.append(note, style=f"bold {NONFINITE_COLOR}")
        text.truncate(width, overflow="ellipsis")
        return text

    def render(self):
        width, height = self.size.width, self.size.height
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.plotsize(width, max(1, height - 1))
        plt._set_size(width, max(1, height - 1))  # see PlotextPlot.render: resizing needs both
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        xs_all = [x for _, xs, _ in self.lines for x in xs] + [s for _, steps, _ in self.nonfinite for s in steps]
        ys_all = [y for _, _, ys in self.lines for y in ys]
        if xs_all:
            x_lo, x_hi = min(xs_all), max(xs_all + ([self.x_max] if self.x_max is not None else []))
            if x_hi <= x_lo:
                x_hi = x_lo + 1
            y_lo, y_hi = (min(ys_all), max(ys_all)) if ys_all else (0.0, 1.0)
            if y_hi <= y_lo:  # a flat line: give it room above and below
                pad = abs(y_lo) * 0.1 or 1.0
                y_lo, y_hi = y_lo - pad, y_hi + pad
            plt.xlim(x_lo, x_hi)
            plt.ylim(y_lo, y_hi)
            xticks = nice_ticks(x_lo, x_hi, max(2, width // 10), whole=True)
            plt.xticks(xticks, [step_label(x) for x in xticks])
            # Two rows or more between y labels: plotext drops labels that share a row, and which one it
            # keeps varies from run to run.
            rows = max(1, height - 4)  # less the title, the frame and the x labels
            yticks = nice_ticks(y_lo, y_hi, max(2, min(5, (rows + 1) // 2)))
            while len(yticks) > 2 and (len(yticks) - 1) * 2 > rows:
                yticks = yticks[::2]
            plt.yticks(yticks, tick_labels(yticks))
            for i, (label, xs, ys) in enumerate(self.lines):
                is_eval = label.startswith("eval")
                plot = plt.scatter if is_eval or len(xs) == 1 else plt.plot
                plot(xs, ys, marker="dot" if is_eval else "braille", color=COLORS[i % len(COLORS)])
            for _, steps, _ in self.nonfinite:
                if steps:
                    plt.scatter(steps, [y_hi] * len(steps), marker="x", color=NONFINITE_COLOR)
        return Text("\n").join([self.title_line(), Text.from_ansi(plt.build())])
