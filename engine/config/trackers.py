"""Trackers (train.report_to): each name known and its package installed, checked before any model
loads, and where each one writes (inside the run dir).

transformers refuses an unknown name and a missing package only when the Trainer is built, after the
model has loaded. Standard library only for the usual three (a package's presence is a find_spec);
transformers is imported only to judge a name outside them.
"""

from __future__ import annotations

import importlib.util
import netrc
import os
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

# The trackers the `trackers` extra installs, and the packages transformers takes for each.
PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "trackio": ("trackio",)}
EXTRA = 'pip install -e ".[trackers]"'
_OFF = ("none", "")
_WANDB_NO_LOGIN = ("offline", "disabled", "dryrun")  # WANDB_MODE values that need no account


def tracker_names(report_to: Any) -> list[str]:
    """train.report_to as a list of tracker names ("none" and empty mean none)."""
    items = [report_to] if isinstance(report_to, str) else list(report_to or [])
    return [str(n).strip() for n in items if str(n).strip() not in _OFF]


def _installed(name: str) -> bool:
    return any(importlib.util.find_spec(package) is not None for package in PACKAGES[name])


def _others() -> tuple[list[str], list[str]]:
    """transformers' tracker names beyond the usual three, and those installed here."""
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK, get_available_reporting_integrations

    return sorted(INTEGRATION_TO_CALLBACK), list(get_available_reporting_integrations())


def _wandb_logged_in() -> bool:
    """An API key in the environment or in the netrc file wandb login writes."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def check(report_to: Any) -> None:
    """Refuse, in one line naming the tracker and the fix, a name transformers does not know, a tracker
    whose package is missing, and wandb without an account (it would stop the run to ask for one)."""
    for name in tracker_names(report_to):
        if name == "all":
            continue  # transformers' own: every tracker installed
        if name in PACKAGES:
            if not _installed(name):
                raise ConfigError(f"train.report_to {name}: the {PACKAGES[name][0]} package is not installed; {EXTRA} "
                                  f"(tensorboard, wandb, trackio), or --report-to none", key="train.report_to")
        else:
            known, available = _others()
            if name not in known:
                import difflib

                near = difflib.get_close_matches(name, known, n=1)
                hint = f"did you mean '{near[0]}'? " if near else ""
                raise ConfigError(f"train.report_to: unknown tracker '{name}'; {hint}known: none, all, {', '.join(known)}",
                                  key="train.report_to")
            if name not in available:
                raise ConfigError(f"train.report_to {name}: its package is not installed; pip install {name}, or --report-to none",
                                  key="train.report_to")
        if name == "wandb" and os.environ.get("WANDB_MODE", "").lower() not in _WANDB_NO_LOGIN and not _wandb_logged_in():
            raise ConfigError("train.report_to wandb: no W&B login (no WANDB_API_KEY, no ~/.netrc entry); run `wandb login`, "
                              "or WANDB_MODE=offline to keep the logs in RUN_DIR/wandb (WANDB_MODE=disabled: no logs)",
                              key="train.report_to")


def set_log_dirs(run_dir: Path) -> None:
    """Trackers write inside the run dir, as the checkpoints do (set in the engine's environment before the
    Trainer exists): TensorBoard's event files in RUN_DIR/tensorboard, W&B's local files (offline runs
    included) in RUN_DIR/wandb. transformers' default would bury TensorBoard's under checkpoints/runs/<date>_<host>,
    and W&B's would go to the directory the command ran in."""
    from engine import run_dir as names

    os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(run_dir) / names.TENSORBOARD)
    os.environ["WANDB_DIR"] = str(run_dir)
