"""Robust trend statistics for the rules: a few outliers must not make or break a finding.

The Theil-Sen slope (median of the pairwise slopes) and Kendall's tau (the share of concordant
minus discordant pairs) over a series' chart points (bucket means, at most `POINTS` of them), so the
cost stays the same however long the run.
"""

from __future__ import annotations

import statistics

from cockpit.series import Series

POINTS = 48


def points(series: Series, start_share: float = 0.0) -> tuple[list[float], list[float]]:
    """(steps, values) of a series from `start_share` of its length on, at most POINTS of them."""
    xs, ys = series.points(POINTS * 2)
    cut = int(len(xs) * start_share)
    return xs[cut:], ys[cut:]


def theil_sen(xs: list[float], ys: list[float]) -> float | None:
    """Median slope over every pair of points (per step); None with fewer than 3 points."""
    slopes = [(ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] != xs[i]]
    return statistics.median(slopes) if len(xs) >= 3 and slopes else None


def kendall_tau(ys: list[float]) -> float:
    """How consistently the values rise (1), fall (-1) or neither (0), in the order given."""
    n = len(ys)
    if n < 3:
        return 0.0
    score = sum((ys[j] > ys[i]) - (ys[j] < ys[i]) for i in range(n) for j in range(i + 1, n))
    return score / (n * (n - 1) / 2)


def rising(series: Series, start_share: float = 0.0, tau: float = 0.6) -> tuple[float, float] | None:
    """(slope per step, tau) when the series rises steadily over its part from `start_share`; else None."""
    xs, ys = points(series, start_share)
    t = kendall_tau(ys)
    slope = theil_sen(xs, ys)
    if slope is None or t < tau or slope <= 0:
        return None
    return slope, t


def falling(series: Series, start_share: float = 0.0, tau: float = 0.6) -> tuple[float, float] | None:
    """(slope per step, tau) when the series falls steadily over its part from `start_share`; else None."""
    xs, ys = points(series, start_share)
    t = kendall_tau(ys)
    slope = theil_sen(xs, ys)
    if slope is None or t > -tau or slope >= 0:
        return None
    return slope, t
