"""The sweep dir: where a sweep keeps its definition, its study and its trials.

```
sweeps/<name>-<timestamp>/
  sweep.yaml        the sweep as given, checked and completed (what --resume and --join read)
  study.journal     the Optuna study (its journal file)
  trial-000/ ...    one ordinary run dir per trial: watch, doctor, compare and --resume work on it
  claims/ workers/  flocks: which worker runs which trial, which workers are alive (claims.py)
  interrupted/      a trial's earlier attempt that left no checkpoint to resume from (never deleted)
```

Standard library and PyYAML: the home screen lists sweeps without importing optuna.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from cockpit.sweep.spec import SweepSpec
from cockpit.sweep.space import SweepError

SPEC = "sweep.yaml"
INTERRUPTED = "interrupted"
DEFAULT_ROOT = "sweeps"


def is_sweep_dir(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / SPEC).is_file()


def create(spec: SweepSpec, base_name: str, root: Path, output_dir: Path | None) -> Path:
    """Make `root/<name>-<timestamp>` (or `output_dir`, which must be new or empty) and write sweep.yaml."""
    from cockpit.supervisor import RunDirError, new_run_dir

    name = spec.name or base_name or "sweep"
    try:
        # The run dir's atomic naming: two sweeps started in the same second get two dirs.
        sweep_dir = new_run_dir({"run": {"name": name, "runs_dir": str(root)}}, None) if output_dir is None else _own_dir(output_dir)
    except RunDirError as exc:
        raise SweepError(str(exc)) from None
    except OSError as exc:
        raise SweepError(f"{output_dir or root}: cannot make the sweep dir ({exc.strerror}); choose another --output-dir") from None
    write_spec(sweep_dir, spec)
    return sweep_dir


def _own_dir(path: Path) -> Path:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        hint = f"continue it with cockpit sweep --resume {path}" if is_sweep_dir(path) else "choose another --output-dir"
        raise SweepError(f"{path} already exists; {hint}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_spec(sweep_dir: Path, spec: SweepSpec) -> None:
    """sweep.yaml, written whole and renamed (a kill never leaves half of it)."""
    data = {"fingerprint": spec.fingerprint(), "created": round(time.time(), 3), "command": " ".join(["cockpit", *sys.argv[1:]]),
            **spec.to_dict()}
    tmp = Path(sweep_dir) / (SPEC + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    tmp.replace(Path(sweep_dir) / SPEC)


def read_raw(sweep_dir: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load((Path(sweep_dir) / SPEC).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"{sweep_dir} is not a sweep dir (no {SPEC}); give the dir `cockpit sweep` printed") from None
    except (OSError, yaml.YAMLError) as exc:
        raise SweepError(f"{Path(sweep_dir) / SPEC}: unreadable ({exc}); the sweep cannot be continued") from None
    if not isinstance(data, dict):
        raise SweepError(f"{Path(sweep_dir) / SPEC}: not a sweep definition")
    return data


def read_spec(sweep_dir: Path) -> SweepSpec:
    return SweepSpec.from_dict(read_raw(sweep_dir))


def same_sweeps(root: Path, fingerprint: str) -> list[Path]:
    """Sweep dirs under `root` made by the same sweep (same fingerprint), newest first."""
    if not Path(root).is_dir():
        return []
    found = []
    for child in Path(root).iterdir():
        if not is_sweep_dir(child):
            continue
        try:
            data = read_raw(child)
        except SweepError:
            continue
        if data.get("fingerprint") == fingerprint:
            found.append((float(data.get("created") or 0), child))
    return [path for _, path in sorted(found, reverse=True)]


def trial_dirs(sweep_dir: Path) -> list[Path]:
    """The trials' run dirs, by number."""
    return sorted(p for p in Path(sweep_dir).glob("trial-[0-9]*") if p.is_dir())


def list_sweeps(root: str | os.PathLike[str]) -> list[Path]:
    """Every sweep dir under `root`, newest first."""
    folder = Path(root)
    if not folder.is_dir():
        return []
    dirs = [p for p in folder.iterdir() if is_sweep_dir(p)]
    return sorted(dirs, key=lambda p: (p / SPEC).stat().st_mtime, reverse=True)
