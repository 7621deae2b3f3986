"""What the trials of a sweep vary: value lists (`--set train.learning_rate=1e-5,5e-6`) and ranges
(`log-uniform 1e-6..1e-4`, `int 5..20`, `int 8..64 step 8`, `uniform 0..0.1`, `log-int 8..128`).

Every value is checked against the key's type and bounds by the one schema (engine/config) when the
sweep is given, so a list that does not parse for its key fails before any trial starts. Standard
library, PyYAML and the config package only.
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass
from typing import Any

import yaml

from engine.config import PASSTHROUGH, SECTIONS, ConfigError, check_layer, parse_override
from engine.config.options import num

RANGE_KINDS = ("uniform", "log-uniform", "int", "log-int")
_RANGE = re.compile(r"^\s*(uniform|log-uniform|int|log-int)\s+(\S+?)\s*\.\.\s*(\S+?)(?:\s+step\s+(\S+))?\s*$")
# A word and numeric bounds: a range misspelt (loguniform 1e-6..1e-4) is an error, not a text value.
_LOOKS_LIKE_RANGE = re.compile(r"^\s*[a-z][a-z-]*\s+[-+0-9.eE]+\s*\.\.\s*[-+0-9.eE]+\s*$")
EXAMPLE = "--set train.learning_rate=1e-5,5e-6 or train.learning_rate: log-uniform 1e-6..1e-4"


class SweepError(ValueError):
    """A sweep that cannot run as given: one line naming the key, file or option and the fix."""


def yaml_text(value: Any) -> str:
    """A value as YAML reads it back to the same thing (1e-05 -> 1.0e-05, which YAML 1.1 reads as a float)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, allow_unicode=True).strip()
    return text[: -len("\n...")] if text.endswith("\n...") else text  # a scalar document ends with "..."


def set_text(key: str, value: Any) -> str:
    """`section.key=value` for launch.Request.sets (the last config layer)."""
    return f"{key}={yaml_text(value)}"


def split_values(text: str) -> list[str]:
    """`a,b,[c, d],'e, f'` -> ['a', 'b', '[c, d]', "'e, f'"]: commas inside brackets or quotes do not split."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return parts


def check_item(key: str, value: Any, source: str, raw: str | None = None) -> Any:
    """One value for `section.key`, checked and coerced by the schema (trl keys go to TRL as given)."""
    if "." not in key:
        raise SweepError(f"{source}: '{key}' is not section.key (e.g. train.learning_rate)")
    section, name = key.split(".", 1)
    try:
        return check_layer({section: {name: value}}, source)[section][name]
    except ConfigError as exc:
        # A template such as "Premise: {premise}" reads as a YAML mapping; a text field takes the raw text.
        if raw is None or not isinstance(value, (dict, list)):
            raise SweepError(str(exc)) from None
        try:
            return check_layer({section: {name: raw}}, source)[section][name]
        except ConfigError:
            raise SweepError(str(exc)) from None


def _whole_numbers(key: str) -> bool | None:
    """True for a key the schema types as whole numbers, False for other numbers, None when unknown (trl)."""
    section, name = key.split(".", 1)
    if section in PASSTHROUGH or section not in SECTIONS:
        return None
    hint = typing.get_type_hints(SECTIONS[section]).get(name)
    args = set(typing.get_args(hint) or (hint,))
    if int in args and float not in args:
        return True
    return False if float in args else None


@dataclass(frozen=True)
class Param:
    """One key the trials vary: a list of values, or a range Optuna samples from."""

    key: str
    kind: str  # "choices" or one of RANGE_KINDS
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None

    @property
    def is_range(self) -> bool:
        return self.kind != "choices"

    def grid(self) -> list[Any] | None:
        """The values a grid takes: the list, or every whole number of an int range; None for a float range."""
        if self.kind == "choices":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))  # type: ignore[arg-type]
        return None

    def describe(self) -> str:
        if self.kind == "choices":
            return ", ".join(num(v) if isinstance(v, (int, float)) else yaml_text(v) for v in self.choices)
        step = f" step {num(self.step)}" if self.step else ""
        return f"{self.kind} {num(self.low)}..{num(self.high)}{step}"

    # Optuna stores categorical choices as None/bool/int/float/str; other values (lists) travel as YAML text.
    def optuna_choices(self) -> list[Any]:
        return [v if v is None or isinstance(v, (bool, int, float, str)) else yaml_text(v) for v in self.grid() or []]

    def decode(self, value: Any) -> Any:
        """The config value of what Optuna sampled (the inverse of optuna_choices)."""
        if self.kind == "choices" and isinstance(value, str) and value not in self.choices:
            for choice in self.choices:
                if yaml_text(choice) == value:
                    return choice
        return value

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "choices":
            return {"values": list(self.choices)}
        return {"range": self.describe()}

    @classmethod
    def from_dict(cls, key: str, data: dict[str, Any]) -> Param:
        if "values" in data:
            return cls(key, "choices", tuple(data["values"]))
        return parse_range(key, data["range"], f"sweep.yaml: params: {key}: {data['range']}")


def parse_range(key: str, text: str, where: str) -> Param:
    """`log-uniform 1e-6..1e-4`, `int 5..20`, `int 8..64 step 8`, `uniform 0..0.1`, `log-int 8..128`.

    `where` opens every error line: the option or the file and key the range was given in.
    """
    match = _RANGE.match(text)
    if not match:
        raise SweepError(f"{where}: not a range; write one of: uniform 0..0.1, log-uniform 1e-6..1e-4, "
                         "int 5..20, int 8..64 step 8, log-int 8..128 (or a list of values)")
    kind, low_text, high_text, step_text = match.groups()
    try:
        low, high = float(low_text), float(high_text)
        step = float(step_text) if step_text else None
    except ValueError:
        raise SweepError(f"{where}: the bounds must be numbers, e.g. {kind} 1e-6..1e-4") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise SweepError(f"{where}: the low bound must be below the high one, e.g. {kind} {num(min(low, high))}..{num(max(low, high))}")
    if kind.startswith("log") and low <= 0:
        raise SweepError(f"{where}: a log range needs bounds above 0, e.g. log-uniform 1e-6..1e-4")
    if step is not None and (kind.startswith("log") or not step > 0):
        raise SweepError(f"{where}: step goes with int or uniform ranges only, and must be above 0")
    whole = _whole_numbers(key)
    if kind in ("int", "log-int"):
        if whole is False:
            raise SweepError(f"{where}: {key} takes any number; use uniform or log-uniform")
        if low != int(low) or high != int(high) or (step is not None and step != int(step)):
            raise SweepError(f"{where}: an int range needs whole bounds, e.g. int 5..20")
        low, high = int(low), int(high)
        step = int(step) if step is not None else None
    elif whole:
        raise SweepError(f"{where}: {key} takes whole numbers; use int {num(math.ceil(low))}..{num(math.floor(high))} "
                         f"or log-int")
    for bound in (low, high):  # the schema's bounds (a warm-up ratio below 1, a rank of at least 1)
        check_item(key, bound, where)
    return Param(key, kind, low=low, high=high, step=step)


def parse_values(key: str, raw: str, where: str) -> Param | None:
    """The values of `key=raw`: a Param for a list or a range, None for a single value (every trial's).

    `where` opens every error line: the option as typed (`--set train.learning_rate=1e-5,x`, `--lr 1e-5,x`).
    """
    if _RANGE.match(raw) or _LOOKS_LIKE_RANGE.match(raw):
        return parse_range(key, raw, where)
    items = split_values(raw)
    if len(items) == 1:
        return None
    values = []
    for item in items:
        if not item:
            raise SweepError(f"{where}: an empty value between commas; write the values as a,b,c")
        _, _, value = parse_override(f"{key}={item}", where)
        values.append(check_item(key, value, f"{where} (value {item!r})", raw=item))
    seen: list[Any] = []
    for value in values:
        if value in seen:
            raise SweepError(f"{where}: {yaml_text(value)} is given twice; give each value once")
        seen.append(value)
    return Param(key, "choices", tuple(values))


def param_from_set(text: str, source: str = "--set") -> Param | None:
    """A `--set section.key=...` text: a Param when it lists values or a range, None for a plain override."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise SweepError(f"{source} {text!r}: expected section.key=value or section.key=a,b,c, e.g. {EXAMPLE}")
    key, raw = text.split("=", 1)
    return parse_values(key.strip(), raw, f"{source} {text}")


def param_from_yaml(key: str, value: Any, source: str) -> Param:
    """One entry of a sweep file's `params:`: a list of values, or a range written as text."""
    if not isinstance(key, str) or "." not in key:
        raise SweepError(f"{source}: params: '{key}' is not section.key (e.g. train.learning_rate)")
    if isinstance(value, list):
        if len(value) < 2:
            raise SweepError(f"{source}: params: {key}: give at least two values to compare (one value belongs under set:)")
        checked = [check_item(key, v, f"{source}: params: {key}") for v in value]
        if len({yaml_text(v) for v in checked}) != len(checked):
            raise SweepError(f"{source}: params: {key}: a value is given twice; give each value once")
        return Param(key, "choices", tuple(checked))
    if isinstance(value, str):
        return parse_range(key, value, f"{source}: params: {key}: {value}")
    raise SweepError(f"{source}: params: {key}: give a list of values ([1e-5, 5e-6]) or a range (log-uniform 1e-6..1e-4), "
                     f"got {value!r}")


def grid_size(params: list[Param]) -> int | None:
    """How many trials the full grid has; None when a param is a float range (no grid)."""
    total = 1
    for param in params:
        values = param.grid()
        if values is None:
            return None
        total *= len(values)
    return total
