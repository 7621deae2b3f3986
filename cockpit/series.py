"""Bounded series of a run's metrics, for the rules and the charts alike (standard library only).

A metric logged every step for a week of training costs the same memory as one logged 500 times:
values are kept in at most `capacity` buckets of equal size (count, sum, sum of squares, first and
last step); when they are full, neighbours merge and buckets double in size. Means and variances
over index ranges are exact while the series fits (every test run and most real ones) and
bucket-aligned after.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable

CAPACITY = 1024


class Series:
    """(step, value) pairs in order; finite values only (NaN/Inf are counted by the state, not drawn)."""

    __slots__ = ("capacity", "size", "n", "first", "last", "last_step", "lo", "hi", "_count", "_sum", "_sq", "_step0", "_step1")

    def __init__(self, capacity: int = CAPACITY):
        self.capacity = capacity
        self.size = 1  # values per full bucket
        self.n = 0
        self.first: float | None = None
        self.last: float | None = None
        self.last_step: int | None = None
        self.lo: float | None = None  # the smallest and largest values ever added
        self.hi: float | None = None
        self._count: list[int] = []
        self._sum: list[float] = []
        self._sq: list[float] = []
        self._step0: list[float] = []
        self._step1: list[float] = []

    def __len__(self) -> int:
        return self.n

    def add(self, step: float, value: float) -> None:
        if not math.isfinite(value):
            return
        if self.first is None:
            self.first = self.lo = self.hi = value
        self.lo, self.hi = min(self.lo, value), max(self.hi, value)  # type: ignore[type-var]
        self.last, self.last_step = value, step
        self.n += 1
        if self._count and self._count[-1] < self.size:
            self._count[-1] += 1
            self._sum[-1] += value
            self._sq[-1] += value * value
            self._step1[-1] = step
            return
        if len(self._count) >= self.capacity:
            self._halve()
            if self._count[-1] < self.size:
                self.n -= 1
                self.add(step, value)
                return
        self._count.append(1)
        self._sum.append(value)
        self._sq.append(value * value)
        self._step0.append(step)
        self._step1.append(step)

    def _halve(self) -> None:
        def pairs(xs: list, join) -> list:
            return [join(xs[i], xs[i + 1]) if i + 1 < len(xs) else xs[i] for i in range(0, len(xs), 2)]

        def add(a, b):
            return a + b

        self._count = pairs(self._count, add)
        self._sum = pairs(self._sum, add)
        self._sq = pairs(self._sq, add)
        self._step0 = pairs(self._step0, lambda a, b: a)
        self._step1 = pairs(self._step1, lambda a, b: b)
        self.size *= 2

    def _range(self, start: int, end: int) -> tuple[float, float, float]:
        """(count, sum, sum of squares) of values[start:end], whole buckets counted pro rata at the edges."""
        start, end = max(0, start), min(self.n, end)
        count = total = sq = 0.0
        if end <= start:
            return 0.0, 0.0, 0.0
        for b in range(start // self.size, min(len(self._count), (end - 1) // self.size + 1)):
            lo = b * self.size
            hi = lo + self._count[b]
            share = (min(hi, end) - max(lo, start)) / self._count[b]
            if share <= 0:
                continue
            count += share * self._count[b]
            total += share * self._sum[b]
            sq += share * self._sq[b]
        return count, total, sq

    def mean(self, start: int, end: int) -> float:
        """Mean of values[start:end]."""
        count, total, _ = self._range(start, end)
        return total / count if count else 0.0

    def var(self, start: int, end: int) -> float:
        count, total, sq = self._range(start, end)
        if count < 2:
            return 0.0
        m = total / count
        return max(0.0, sq / count - m * m) * count / (count - 1)

    def step_at(self, index: int) -> float:
        """The step of values[index] (of its bucket's first value once buckets hold several)."""
        return self._step0[min(len(self._step0) - 1, max(0, index) // self.size)]

    def points(self, max_points: int) -> tuple[list[float], list[float]]:
        """At most `max_points` (step, mean) points for a chart; the last point is the last value."""
        n = len(self._count)
        if not n:
            return [], []
        group = max(1, math.ceil(n / max(1, max_points)))
        xs: list[float] = []
        ys: list[float] = []
        for i in range(0, n, group):
            c = sum(self._count[i : i + group])
            xs.append(self._step1[min(n, i + group) - 1])
            ys.append(sum(self._sum[i : i + group]) / c)
        xs[-1], ys[-1] = self.last_step, self.last  # type: ignore[assignment]
        return xs, ys


class Window:
    """The last `size` values with their median, kept sorted so each push costs O(size) memmove."""

    def __init__(self, size: int):
        self.size = size
        self.items: deque[float] = deque()
        self.sorted: list[float] = []

    def push(self, value: float) -> None:
        self.items.append(value)
        bisect.insort(self.sorted, value)
        if len(self.items) > self.size:
            old = self.items.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]

    def __len__(self) -> int:
        return len(self.items)

    def median(self) -> float | None:
        n = len(self.sorted)
        if not n:
            return None
        mid = n // 2
        return self.sorted[mid] if n % 2 else (self.sorted[mid - 1] + self.sorted[mid]) / 2

    def mean(self) -> float | None:
        return sum(self.items) / len(self.items) if self.items else None


class Marks(list):
    """Steps (or tuples) where something happened: the first `keep` kept, every one counted.

    `len()` is the count of all of them, so rates and counts stay true on a run of any length.
    """

    def __init__(self, keep: int = 256, items: Iterable = ()):
        super().__init__()
        self.keep = keep
        self.total = 0
        for item in items:
            self.append(item)

    def append(self, item) -> None:
        self.total += 1
        if list.__len__(self) < self.keep:
            super().append(item)

    def __len__(self) -> int:
        return self.total

    def __bool__(self) -> bool:
        return self.total > 0
