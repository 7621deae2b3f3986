"""Helpers the rules share: evidence made JSON-safe, rounding, a safer learning rate; and how a fix
is written (config keys as the CLI flag a user types), from the one options table."""

from __future__ import annotations

import math
from typing import Any

# One table for flags, form fields and fixes (engine/config/options.py); re-exported for the rules.
from engine.config.options import flag, flags, lower_lr, num  # noqa: E402,F401


def clean(value: Any) -> Any:
    """Evidence made JSON-safe: NaN/Inf as strings, floats rounded to 6 significant digits."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def round_up(value: float, multiple: int = 64) -> int:
    """Rounded up to a multiple (token lengths: 64, the granularity kernels like)."""
    return int(math.ceil(value / multiple) * multiple)
