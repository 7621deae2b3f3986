"""The run dir: the names of its files, its checkpoints, and the lock its one live engine holds.

Standard library only: the cockpit reads a run dir with it, the engine writes one. Every module
that names a file of the run dir takes the name from here.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path

CONFIG = "config.yaml"  # the fully resolved config (secrets redacted)
SECRETS = ".secrets.yaml"  # the secrets config.yaml redacts, for the engine only (mode 0600)
EVENTS = "events.jsonl"  # the event stream (engine/events.py)
LOG = "engine.log"  # the engine's stdout and stderr
FINDINGS = "findings.json"  # the diagnoses (cockpit/diagnose)
CONTROL = "control"  # stop / save requests from the cockpit to the engine
LINT = "lint.json"  # the data's lint report, computed once before the engine starts
LOCK = "engine.lock"  # held by the live engine (flock); says its pid
CHECKPOINTS = "checkpoints"  # checkpoint-N/ as the Trainer writes them
FINAL = "final"  # the trained adapter or model with its tokenizer
BEST = "best"  # the model with the best eval metric
BEST_INFO = "cockpit_best.json"  # in best/: its step and metric
COMPLETE = "cockpit_complete.json"  # in a checkpoint: written last, after its files are synced
SKIPPED = "skipped"  # incomplete checkpoints are moved here, never deleted
EPOCH_PREFIX = "epoch_"  # epoch_N/: the model after epoch N (train.epoch_models)
TENSORBOARD = "tensorboard"  # TensorBoard's event files (train.report_to tensorboard)
EVAL = "eval"  # `cockpit eval` results: <name>.json and <name>.log each

_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    path = Path(path)
    return (path / EVENTS).is_file() or (path / CONFIG).is_file()


def checkpoint_step(path: str | os.PathLike[str]) -> int | None:
    """N of a `checkpoint-N` path, else None."""
    match = _CHECKPOINT.search(str(path).replace("\\", "/").rstrip("/"))
    return int(match.group(1)) if match else None


def epoch_dir(epoch: int) -> str:
    """The name of the model saved after epoch `epoch` (1-based)."""
    return f"{EPOCH_PREFIX}{epoch}"


def epoch_dirs(run_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """Every epoch_N/ model of a run, oldest first."""
    found = []
    for child in Path(run_dir).glob(EPOCH_PREFIX + "*"):
        suffix = child.name[len(EPOCH_PREFIX):]
        if suffix.isdigit() and child.is_dir():
            found.append((int(suffix), child))
    return sorted(found)


def checkpoint_dirs(run_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """Every `checkpoints/checkpoint-N` dir, complete or not, oldest first."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        step = checkpoint_step(child.name)
        if step is not None and child.is_dir():
            found.append((step, child))
    return sorted(found)


# ---- one live engine per run dir ----------------------------------------------------------------

try:
    import fcntl
except ImportError:  # not POSIX: no lock, as before (a second engine is not refused there)
    fcntl = None  # type: ignore[assignment]


class RunDirBusy(Exception):
    """Another engine holds the run dir's lock; `pid` is its process id."""

    def __init__(self, run_dir: Path, pid: int | None, host: str | None):
        self.run_dir, self.pid, self.host = run_dir, pid, host
        who = f"pid {pid}" if pid else "another process"
        if host and host != socket.gethostname():
            who += f" on {host}"
        super().__init__(
            f"{run_dir} is in use: its engine ({who}) is still running; watch it with `cockpit watch {run_dir}`, "
            f"or stop it first (s in the TUI)"
        )


def _read_holder(path: Path) -> tuple[int | None, str | None]:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
        return info.get("pid"), info.get("host")
    except (OSError, ValueError, AttributeError):
        return None, None


class EngineLock:
    """An exclusive flock on RUN_DIR/engine.lock for the engine's lifetime; the file says who holds it.

    The kernel drops a flock when its process dies (kill -9 included), so a stale lock file never
    blocks a resume, and a reader tells a live run from a dead one without trusting a pid.
    """

    def __init__(self, run_dir: str | os.PathLike[str]):
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def acquire(self, wait_s: float = 2.0) -> None:
        """Take the lock; raises RunDirBusy when another engine holds it (after `wait_s`: a reader's
        probe holds it shared for microseconds)."""
        if fcntl is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    pid, host = _read_holder(self.path)
                    os.close(fd)
                    raise RunDirBusy(self.path.parent, pid, host) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": round(time.time(), 3)}).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)  # type: ignore[union-attr]
            finally:
                os.close(self._fd)
                self._fd = None


def lock_holder(path: str | os.PathLike[str]) -> dict | None:
    """Who holds an exclusive flock on `path` now ({pid, host, since} as the file says, {} when it does
    not say), or None when nobody does. Also the sweep's claims (cockpit/sweep/claims.py)."""
    path = Path(path)
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                info = json.loads(path.read_text(encoding="utf-8") or "{}")
            except (OSError, ValueError):
                return {}
            return info if isinstance(info, dict) else {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def holder(run_dir: str | os.PathLike[str]) -> int | None:
    """The pid of the engine that holds the run dir now (0 when it does not say), or None when none does."""
    info = lock_holder(Path(run_dir) / LOCK)
    return None if info is None else (info.get("pid") or 0)


def check_free(run_dir: str | os.PathLike[str]) -> None:
    """Raise RunDirBusy when a live engine holds the run dir."""
    pid = holder(run_dir)
    if pid is not None:
        host = _read_holder(Path(run_dir) / LOCK)[1]
        raise RunDirBusy(Path(run_dir), pid or None, host)
