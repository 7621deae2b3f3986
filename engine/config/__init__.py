"""One schema for every run, and the layers that resolve a config (standard library, PyYAML and pydantic).

- schema.py: the sections and their typed, bounded, documented fields;
- validate.py: values checked against the schema, one line per error;
- checks.py: rules across fields;
- layers.py: presets, config files, flags and --set merged in order; what a run dir keeps.

The cockpit validates a config before it starts the engine; the engine validates it again.
"""

from engine.config.checks import check_consistency, check_grpo, check_train, reward_weights
from engine.config.layers import (
    PRESETS_DIR, dotted_to_layer, dump, is_builtin_tiny, load_preset, load_run_config, merge, parse_override,
    preset_names, preset_path, preset_summary, read_yaml, redact, resolve, resolve_reward_file, write_run_config,
)
from engine.config.schema import PASSTHROUGH, SECTIONS, defaults, field_help, known_keys, section_fields
from engine.config.validate import check_layer, check_value
from engine.errors import ConfigError

__all__ = [
    "ConfigError", "PASSTHROUGH", "PRESETS_DIR", "SECTIONS", "check_consistency", "check_grpo", "check_layer", "check_train",
    "check_value", "defaults", "dotted_to_layer", "dump", "field_help", "is_builtin_tiny", "known_keys", "load_preset",
    "load_run_config", "merge", "parse_override", "preset_names", "preset_path", "preset_summary", "read_yaml", "redact",
    "resolve", "resolve_reward_file", "reward_weights", "section_fields", "write_run_config",
]
