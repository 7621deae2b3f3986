"""The config's layers, later wins: schema defaults < preset (< its `builtin_tiny` block when the
model is builtin:tiny) < `--config` file < flags < `--set section.key=value`.

YAML is read with the safe loader, bounded in size and in what its aliases expand to; paths in a
file are relative to that file; secrets are kept out of what is written for people.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml

from engine import run_dir as run_files
from engine.config.checks import check_consistency
from engine.config.schema import PASSTHROUGH, defaults, known_keys
from engine.config.validate import check_layer, nearest
from engine.errors import ConfigError

PRESETS_DIR = Path(__file__).resolve().parents[2] / "presets"
MAX_YAML_BYTES = 1 << 20  # a config is a page of keys; a bigger file is not one
MAX_YAML_NODES = 100_000  # what aliases may expand to (a 1 KB "billion laughs" expands to 10^9)
SECRET_PATTERN = re.compile(r"(token|api[_-]?key|secret|password)", re.IGNORECASE)
_PRESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing documents whose aliases expand past MAX_YAML_NODES nodes."""

    def compose_document(self):
        node = super().compose_document()
        _count_nodes(node, {}, [0])
        return node


def _count_nodes(node: Any, memo: dict[int, int], total: list[int]) -> int:
    """Nodes of `node` with every alias expanded, counted without expanding (sizes are memoised)."""
    known = memo.get(id(node))
    if known is not None:
        size = known
    else:
        size = 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                size += _count_nodes(k, memo, total) + _count_nodes(v, memo, total)
        elif isinstance(node, yaml.SequenceNode):
            for v in node.value:
                size += _count_nodes(v, memo, total)
        memo[id(node)] = size
    if size > MAX_YAML_NODES:
        raise yaml.YAMLError(f"its aliases expand to more than {MAX_YAML_NODES} values")
    return size


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file as a mapping; one ConfigError line for a missing, huge, binary or invalid file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file" if not path.exists() else f"{path}: not a regular file; give a .yaml file")
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: {size} bytes is not a config file (at most {MAX_YAML_BYTES}); give the YAML file of a run's settings")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML ({getattr(exc, 'problem', None) or exc}); fix the file") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (model:, train:, ...), got {type(data).__name__}")
    return data


def parse_override(text: str, source: str = "--set") -> tuple[str, str, Any]:
    """`section.key=value` -> (section, key, value); the value is read as YAML (1e-5, true, [a, b])."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"{source} {text!r}: expected section.key=value, e.g. --set train.learning_rate=1e-5")
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = yaml.load(raw, Loader=_BoundedLoader) if raw.strip() else ""  # noqa: S506
    except (yaml.YAMLError, RecursionError):
        value = raw
    return section, key, value


def dotted_to_layer(overrides: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    """{"train.max_length": 2048} -> a validated nested layer."""
    layer: dict[str, dict[str, Any]] = {}
    for dotted, value in overrides.items():
        if "." not in dotted:
            raise ConfigError(f"{source}: '{dotted}' is not section.key{nearest(dotted, known_keys())}")
        section, key = dotted.split(".", 1)
        layer.setdefault(section, {})[key] = value
    return check_layer(layer, source)


def merge(base: dict[str, dict[str, Any]], layer: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = copy.deepcopy(base)
    for section, values in layer.items():
        out.setdefault(section, {}).update(copy.deepcopy(values))
    return out


PATH_KEYS = (("data", "path"), ("data", "eval_path"), ("model", "chat_template"))


def _resolve_paths(layer: dict[str, dict[str, Any]], base: Path) -> dict[str, dict[str, Any]]:
    """Paths in a config file are relative to that file, so a preset works from any directory."""
    for section, key in PATH_KEYS:
        value = layer.get(section, {}).get(key)
        if isinstance(value, str) and value and not _is_remote(value) and not Path(value).is_absolute():
            layer[section][key] = str((base / value).resolve())
    files = layer.get("grpo", {}).get("reward_files")
    if isinstance(files, list):
        layer["grpo"]["reward_files"] = [resolve_reward_file(f, base) for f in files]
    name = layer.get("model", {}).get("name_or_path")
    if isinstance(name, str) and name.startswith((".", "/")) and not Path(name).is_absolute():
        layer["model"]["name_or_path"] = str((base / name).resolve())
    return layer


def _is_remote(value: str) -> bool:
    """A dataset named on the hub (hf:owner/name) rather than a file."""
    return value.startswith("hf:")


def resolve_reward_file(spec: Any, base: Path) -> Any:
    """`path.py:function` with the path made absolute against `base` (the file that names it)."""
    if not isinstance(spec, str) or ":" not in spec:
        return spec  # check_grpo names the problem
    path, func = spec.rsplit(":", 1)
    if path and not Path(path).expanduser().is_absolute():
        path = str((base / Path(path).expanduser()).resolve())
    return f"{path}:{func}"


# ---- presets -----------------------------------------------------------------------------------


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    names = preset_names()
    if not _PRESET_NAME.match(name or "") or name not in names:
        hint = nearest(name, names) if names else ""
        raise ConfigError(f"unknown preset '{name}'{hint}; `cockpit presets list` shows them all (a preset is a name; "
                          "for a file of your own use --config FILE)", key="run.preset")
    return PRESETS_DIR / f"{name}.yaml"


def preset_summary(name: str) -> str:
    """The first comment line of a preset: what it is for."""
    for line in preset_path(name).read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def load_preset(name: str) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(layer, builtin_tiny layer) of a preset, validated, paths resolved against presets/."""
    path = preset_path(name)
    raw = read_yaml(path)
    layer = _resolve_paths(check_layer(raw, str(path)), path.parent)
    tiny_raw = raw.get("builtin_tiny") or {}
    if not isinstance(tiny_raw, dict):
        raise ConfigError(f"{path}: 'builtin_tiny' must map section.key to a value")
    tiny = _resolve_paths(dotted_to_layer(tiny_raw, f"{path} (builtin_tiny)"), path.parent)
    return layer, tiny


# ---- resolution --------------------------------------------------------------------------------


def is_builtin_tiny(name: Any) -> bool:
    return isinstance(name, str) and name.strip().lower() == "builtin:tiny"


def _set_layer(sets: list[str]) -> dict[str, dict[str, Any]]:
    layer: dict[str, dict[str, Any]] = {}
    for text in sets:
        section, key, value = parse_override(text)
        if section in PASSTHROUGH:
            layer = merge(layer, check_layer({section: {key: value}}, f"--set {text}"))
            continue
        try:
            checked = check_layer({section: {key: value}}, f"--set {text}")
        except ConfigError:
            # A template such as "Premise: {premise}" reads as a YAML mapping; a str field takes the raw text.
            if not isinstance(value, (dict, list)):
                raise
            checked = check_layer({section: {key: text.split("=", 1)[1]}}, f"--set {text}")
        layer = merge(layer, checked)
    return layer


def resolve(
    preset: str | None = None,
    config_file: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    sets: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The fully resolved config: defaults < preset (< builtin_tiny block) < file < flags < --set."""
    preset_layer: dict[str, dict[str, Any]] = {}
    tiny_layer: dict[str, dict[str, Any]] = {}
    if preset:
        preset_layer, tiny_layer = load_preset(preset)
        preset_layer = merge(preset_layer, {"run": {"name": preset_layer.get("run", {}).get("name") or preset}})
    file_layer: dict[str, dict[str, Any]] = {}
    if config_file:
        path = Path(config_file)
        file_layer = _resolve_paths(check_layer(read_yaml(path), str(path)), path.resolve().parent)
    from engine.config.options import flag as flag_text

    flag_layer: dict[str, dict[str, Any]] = {}
    for dotted, value in (flags or {}).items():  # each checked alone, so its message names the flag as typed
        if value is not None:
            flag_layer = merge(flag_layer, dotted_to_layer({dotted: value}, flag_text(dotted, value)))
    layers = [preset_layer, file_layer, flag_layer, _set_layer(sets or [])]
    cfg = defaults()
    for layer in layers:
        cfg = merge(cfg, layer)
    if tiny_layer and is_builtin_tiny(cfg["model"]["name_or_path"]):
        cfg = defaults()
        for layer in [preset_layer, tiny_layer, *layers[1:]]:
            cfg = merge(cfg, layer)
    check_consistency(cfg)
    return cfg


# ---- what is written, and read back --------------------------------------------------------------


def _is_secret(key: Any, value: Any) -> bool:
    return bool(SECRET_PATTERN.search(str(key))) and value not in (None, "", False)


def redact(cfg: Any) -> Any:
    """A copy with secrets (tokens, API keys, passwords) replaced, for config.yaml and events."""
    if isinstance(cfg, dict):
        return {k: ("***" if _is_secret(k, v) else redact(v)) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [redact(v) for v in cfg]
    return cfg


def secrets(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The secret values of a config, by section: kept in RUN_DIR/.secrets.yaml for the engine only."""
    return {s: {k: v for k, v in values.items() if _is_secret(k, v)} for s, values in cfg.items()
            if isinstance(values, dict) and any(_is_secret(k, v) for k, v in values.items())}


def dump(cfg: dict[str, Any]) -> str:
    return yaml.safe_dump(redact(cfg), sort_keys=False, allow_unicode=True)


def write_run_config(run_dir: str | os.PathLike[str], cfg: dict[str, Any]) -> None:
    """config.yaml (redacted, for people) and, when the config has secrets, .secrets.yaml (0600, for the engine)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Written whole, then renamed: a kill or a full disk never leaves a half config.yaml behind.
    tmp = run_dir / (run_files.CONFIG + ".tmp")
    tmp.write_text(dump(cfg), encoding="utf-8")
    tmp.replace(run_dir / run_files.CONFIG)
    hidden = secrets(cfg)
    if hidden:
        path = run_dir / run_files.SECRETS
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(yaml.safe_dump(hidden, sort_keys=False, allow_unicode=True))


def load_run_config(run_dir: str | Path, with_secrets: bool = False) -> dict[str, dict[str, Any]]:
    """The resolved config saved in a run dir, validated again; the engine reads its secrets too."""
    path = Path(run_dir) / run_files.CONFIG
    cfg = merge(defaults(), check_layer(read_yaml(path), str(path)))
    secret_file = Path(run_dir) / run_files.SECRETS
    if with_secrets and secret_file.is_file():
        cfg = merge(cfg, read_yaml(secret_file))
    return cfg
