"""Metric series for charts: bounded memory however long the run, downsampled for drawing."""

from __future__ import annotations

import math


class Series:
    """(step, value) points kept within `capacity`.

    When full, every other point is dropped and only every `stride`-th new point is kept from then
    on, so a run of any length costs at most `capacity` points while the whole curve stays drawn.
    """

    def __init__(self, capacity: int = 4096):
        self.capacity = capacity
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.stride = 1
        self._seen = 0
        self.last: tuple[float, float] | None = None

    def __len__(self) -> int:
        return len(self.xs)

    def add(self, x: float, y: float) -> None:
        if not math.isfinite(y):
            return  # NaN/Inf cannot be drawn; the findings say when they happen
        self.last = (x, y)
        self._seen += 1
        if (self._seen - 1) % self.stride:
            return
        self.xs.append(x)
        self.ys.append(y)
        if len(self.xs) >= self.capacity:
            self.xs = self.xs[::2]
            self.ys = self.ys[::2]
            self.stride *= 2

    def points(self, max_points: int) -> tuple[list[float], list[float]]:
        """At most `max_points` points: the mean of each bucket of consecutive points, last point exact."""
        xs, ys = self.xs, self.ys
        if self.last is not None and (not xs or xs[-1] != self.last[0]):
            xs, ys = xs + [self.last[0]], ys + [self.last[1]]
        n = len(xs)
        if n <= max_points or max_points < 2:
            return list(xs), list(ys)
        size = n / max_points
        out_x: list[float] = []
        out_y: list[float] = []
        for i in range(max_points):
            lo, hi = int(i * size), max(int((i + 1) * size), int(i * size) + 1)
            chunk = ys[lo:hi]
            out_x.append(xs[hi - 1])
            out_y.append(sum(chunk) / len(chunk))
        out_x[-1], out_y[-1] = xs[-1], ys[-1]
        return out_x, out_y
