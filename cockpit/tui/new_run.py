"""The new-run form's domain: what it shows, how it becomes a config, and how a fix becomes a run.

The form goes through the one launch path (cockpit/launch.py), as `cockpit run` does, so a run
started here is the run `cockpit run` would start with the same choices, refused for the same
reasons. Its fields are the labelled rows of the one options table. No Textual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit import launch as launch_mod
from cockpit.launch import build_config
from cockpit.supervisor import CONFIG_FILE, RunHandle
from engine import config as config_mod
from engine import run_dir as names
from engine.config.options import FORM_OPTIONS, OPTIONS

# The two fields every form has, above the run type's own (form_fields).
PATH_FIELDS = {"data.path": "dataset", "model.name_or_path": "model"}


def form_fields(run_type: str | None) -> dict[str, str]:
    """The options users change most for this run type, in form order: dotted key -> label.

    The labelled rows of the options table; GRPO's own (generations, rewards, completion length)
    for GRPO runs, SFT's own (max length, loss on) for the others.
    """
    grpo = run_type == "grpo"
    return {o.key: o.label for o in FORM_OPTIONS if not (o.grpo_only and not grpo) and not (o.sft_only and grpo)}  # type: ignore[misc]

# Keys a resumed run may change: the checkpoint's optimizer and scheduler state restore the learning
# rate and its schedule, and the data order depends on the batch shape, so those need a fresh start.
RESUMABLE_TRAIN_KEYS = frozenset(
    {
        "num_train_epochs",
        "max_steps",
        "max_length",
        "truncation_mode",
        "logging_steps",
        "eval_strategy",
        "eval_steps",
        "save_strategy",
        "save_steps",
        "save_total_limit",
        "save_best",
        "max_grad_norm",
        "report_to",
        "per_device_eval_batch_size",
    }
)
_KEY_IN_MESSAGE = re.compile(r"'?([a-z_]+\.[a-z_0-9]+)'?")


@dataclass
class RunRequest:
    """What the form holds: the layers `cockpit run` takes, as text typed by a user."""

    preset: str | None = None
    config_file: Path | None = None  # a run's config.yaml when the form comes from a finding's fix
    run_type: str = "sft"
    fields: dict[str, str] = field(default_factory=lambda: form_fields("sft"))  # dotted key -> label
    dataset: str = ""
    model: str = ""
    values: dict[str, str] = field(default_factory=dict)  # dotted key -> text, for `fields`
    base: dict[str, str] = field(default_factory=dict)  # the same keys as resolved before any edit
    extra: str = ""  # more section.key=value, space separated
    resume_from: Path | None = None  # a checkpoint of another run to continue from
    resume_note: str = ""  # why it resumes, or why it cannot

    def sets(self) -> list[str]:
        """--set texts: the form's values a user changed, then the extra ones."""
        out = [f"{k}={v.strip()}" for k, v in self.values.items() if v.strip() and v.strip() != self.base.get(k, "").strip()]
        return out + self.extra.split()

    def flags(self) -> dict[str, Any]:
        return {"dataset": self.dataset.strip() or None, "model": self.model.strip() or None}


def as_text(value: Any) -> str:
    """A config value as a user would type it in the form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def get(cfg: dict[str, Any], dotted: str) -> Any:
    section, _, key = dotted.partition(".")
    return (cfg.get(section) or {}).get(key)


def to_launch(request: RunRequest, output_dir: Path | None = None) -> launch_mod.Request:
    """The form's request as the launch path takes it."""
    return launch_mod.Request(preset=request.preset, config_file=request.config_file, values=request.flags(),
                              sets=request.sets(), output_dir=output_dir, resume_from=request.resume_from)


def resolve(request: RunRequest) -> launch_mod.Prepared:
    """Every check `cockpit run` makes on the same layers: config, data, launch.

    Raises engine.config.ConfigError or engine.errors.EngineError, each with a one-line message.
    """
    return launch_mod.prepare(to_launch(request))


def for_preset(preset: str | None, config_file: Path | None = None) -> RunRequest:
    """A request whose fields show what the preset (or config file) resolves to."""
    request = RunRequest(preset=preset, config_file=config_file)
    try:
        cfg = build_config(preset, config_file, {}, [])
    except config_mod.ConfigError:
        cfg = config_mod.defaults()
        if preset:
            try:
                cfg = config_mod.merge(cfg, config_mod.load_preset(preset)[0])
            except config_mod.ConfigError:
                pass
    request.run_type = str(get(cfg, "run.type") or "sft")
    request.fields = form_fields(request.run_type)
    request.dataset = as_text(get(cfg, "data.path"))
    request.model = as_text(get(cfg, "model.name_or_path"))
    request.base = {k: as_text(get(cfg, k)) for k in request.fields}
    request.values = dict(request.base)
    return request


def key_in_error(message: str, key: str | None = None, fields: dict[str, str] | None = None) -> str | None:
    """The form key an error is about (its `key`, else the one its message names), so the form can mark that field."""
    known = {**PATH_FIELDS, **(fields if fields is not None else form_fields("sft"))}
    if key in known:
        return key
    for match in _KEY_IN_MESSAGE.finditer(message):
        if match.group(1) in known:
            return match.group(1)
    return None


def in_form_words(message: str, key: str | None, fields: dict[str, str]) -> str:
    """An error as the form's user reads it: about the field they typed in, not about flags they never typed.

    `--set train.learning_rate=abc: 'train.learning_rate' must be a number` (how the launch path
    names a value) becomes `learning rate: must be a number`, and a flag of a form field
    (`use --model builtin:tiny`) becomes the field's name (`use model builtin:tiny`).
    """
    labels = {**PATH_FIELDS, **fields}
    prefix = re.match(r"--set ([a-z_]+\.[a-z_0-9]+)=.*?: '\1' ", message)
    if prefix:
        key = key or prefix.group(1)
        message = message[prefix.end():]
    for option in OPTIONS:
        if option.key in labels and not option.is_switch:
            message = re.sub(re.escape(option.flag) + r"(?= |$|\))", labels[option.key], message)
    label = labels.get(key or "")
    return f"{label}: {message}" if label and not message.startswith(label) else message


def last_checkpoint(run_dir: Path) -> Path | None:
    found = names.checkpoint_dirs(run_dir)
    return found[-1][1] if found else None


def resume_check(old: dict[str, Any], new: dict[str, Any], checkpoint: Path | None) -> tuple[bool, str]:
    """Whether a new run may continue from `checkpoint` of the old one, and why (one line)."""
    if checkpoint is None:
        return False, "starts fresh: the run saved no checkpoint"
    for section in ("run", "model", "lora", "data", "trl"):
        a = {k: v for k, v in (old.get(section) or {}).items() if not (section == "run" and k in ("name", "runs_dir"))}
        b = {k: v for k, v in (new.get(section) or {}).items() if not (section == "run" and k in ("name", "runs_dir"))}
        if a != b:
            changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            return False, f"starts fresh: {section}.{changed[0]} changed, the checkpoint was trained otherwise"
    old_train, new_train = old.get("train") or {}, new.get("train") or {}
    changed = sorted(k for k in set(old_train) | set(new_train) if old_train.get(k) != new_train.get(k))
    blocked = [k for k in changed if k not in RESUMABLE_TRAIN_KEYS]
    if blocked:
        return False, f"starts fresh: train.{blocked[0]} cannot change on resume (the checkpoint restores the optimizer and schedule)"
    step = int(checkpoint.name.split("-")[-1])
    max_steps = new_train.get("max_steps", -1)
    if isinstance(max_steps, int) and 0 < max_steps <= step:
        return False, f"starts fresh: {checkpoint.name} is already at or past train.max_steps={max_steps}"
    return True, f"resumes from {checkpoint.name} (same model and data; only {', '.join(changed) or 'nothing'} changed)"


def from_fix(run_dir: Path, overrides: dict[str, Any]) -> RunRequest:
    """The form for a finding's fix: the run's config.yaml, the overrides applied on top."""
    run_dir = Path(run_dir)
    config_file = run_dir / CONFIG_FILE
    request = for_preset(None, config_file)
    override_texts = {k: as_text(v) for k, v in overrides.items()}
    for key, text in override_texts.items():
        if key in request.fields:
            request.values[key] = text
    request.extra = " ".join(f"{k}={t}" for k, t in override_texts.items() if k not in request.fields)
    try:
        old = config_mod.load_run_config(run_dir)
        new = build_config(None, config_file, request.flags(), request.sets())
    except config_mod.ConfigError as exc:
        request.resume_note = f"starts fresh: {exc}"
        return request
    ok, note = resume_check(old, new, last_checkpoint(run_dir))
    request.resume_from = last_checkpoint(run_dir) if ok else None
    request.resume_note = note
    return request


def launch(prepared: launch_mod.Prepared) -> RunHandle:
    """Start what `resolve` checked: the run dir made, its config written, the engine started, and
    beside it the watcher that writes the run's findings.json once it ends, even after this TUI has
    quit or lost its terminal (cockpit/run_end.py).

    Raises supervisor.RunDirError when the dir cannot be used.
    """
    handle = launch_mod.start(prepared)
    handle.watch_to_end()
    return handle
