"""Values checked against the schema with pydantic (types, bounds, finite numbers), and a layer of
values checked key by key; every error is one line naming the key, what is wrong and the fix."""

from __future__ import annotations

import difflib
import functools
import re
import typing
from typing import Any

from engine.config.schema import NAME_PATTERN, PASSTHROUGH, PRESET_META, RUN_DIR_OWNED, SECTIONS, known_keys, section_fields
from engine.errors import ConfigError

_NAME = re.compile(NAME_PATTERN)
_NUMBER_TYPES = (int, float)


def nearest(key: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else f"; known: {', '.join(candidates)}"


@functools.lru_cache(maxsize=None)
def _adapter(section: str, key: str):
    from pydantic import ConfigDict, TypeAdapter

    hints = typing.get_type_hints(SECTIONS[section], include_extras=True)
    return TypeAdapter(hints[key], config=ConfigDict(allow_inf_nan=False))


def _wants_number(section: str, key: str) -> bool:
    hint = typing.get_type_hints(SECTIONS[section])[key]
    args = typing.get_args(hint) or (hint,)
    return any(a in _NUMBER_TYPES for a in args)


def _problem(error: dict[str, Any], value: Any) -> str:
    """pydantic's first error in a user's words."""
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    if kind == "finite_number":
        return f"must be a finite number, got {value!r}"
    if kind in ("greater_than_equal", "greater_than", "less_than", "less_than_equal"):
        bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than": "<", "less_than_equal": "<="}
        limit = next(iter(ctx.values()), "?")
        return f"must be {bounds[kind]} {limit}, got {value!r}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '?')}, got {value!r}"
    if kind.startswith("int"):
        return f"must be a whole number, got {value!r}"
    if kind.startswith("float"):
        return f"must be a number, got {value!r}"
    if kind.startswith("bool"):
        return f"must be true or false, got {value!r}"
    if kind.startswith("string"):
        return f"must be text, got {value!r}"
    if kind.startswith("list"):
        return f"must be a list, got {value!r}"
    return f"{error.get('msg', 'is not valid')}, got {value!r}"


_YAML_BOOL_WORDS = {False: ("no", "off", "false"), True: ("yes", "on", "true")}


def check_value(section: str, key: str, value: Any, source: str) -> Any:
    """One value against the schema; returns it coerced (1e-5 written without a dot is read as a
    number, as YAML 1.1 leaves it a string). Raises ConfigError."""
    fields = section_fields(section)
    dotted = f"{section}.{key}"
    if key not in fields:
        raise ConfigError(f"{source}: unknown key '{dotted}'{nearest(dotted, known_keys())}", key=dotted, problem="unknown key")
    help_text = fields[key].metadata.get("help", "")
    if isinstance(value, bool) and _wants_number(section, key):
        problem = f"must be a number, got {value!r}"
    else:
        from pydantic import ValidationError

        try:
            value = _adapter(section, key).validate_python(value)
            problem = None
        except ValidationError as exc:
            problem = _problem(exc.errors()[0], value)
            # YAML 1.1 reads no/off/yes/on as booleans: `eval_strategy: no` means the word.
            for word in _YAML_BOOL_WORDS.get(value, ()) if isinstance(value, bool) else ():
                try:
                    value, problem = _adapter(section, key).validate_python(word), None
                    break
                except ValidationError:
                    continue
        except RecursionError:
            problem = "is nested too deeply"
    if problem is None and dotted == "run.name" and value is not None and not _NAME.match(value):
        problem = f"must be a plain name (letters, digits, . _ + -; no / or ..), got {value!r}"
    if problem is not None:
        raise ConfigError(f"{source}: '{dotted}' {problem} ({help_text})", key=dotted, problem=problem)
    return value


def check_layer(layer: Any, source: str) -> dict[str, dict[str, Any]]:
    """A nested layer (a preset, a config file): known sections, known keys, values in range."""
    if not isinstance(layer, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (model:, train:, ...), got {type(layer).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for section, values in layer.items():
        if section in PRESET_META:
            continue
        if section not in SECTIONS and section not in PASSTHROUGH:
            raise ConfigError(f"{source}: unknown section '{section}'{nearest(str(section), list(SECTIONS) + list(PASSTHROUGH))}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section '{section}' must be a mapping of keys, got {values!r}")
        if section in PASSTHROUGH:
            out[section] = check_passthrough(values, source)
            continue
        out[section] = {k: check_value(section, str(k), v, source) for k, v in values.items()}
    return out


def check_passthrough(values: dict[str, Any], source: str) -> dict[str, Any]:
    """`trl:` keys go to TRL as they are (the engine checks them against TRL's class), except those the run dir owns."""
    for key in values:
        if key in RUN_DIR_OWNED:
            raise ConfigError(
                f"{source}: 'trl.{key}' cannot be set: the run dir decides where checkpoints and logs go "
                "(RUN_DIR/checkpoints, where --resume finds them); use --output-dir for the run dir",
                key=f"trl.{key}", problem="set by the run dir",
            )
    return dict(values)
