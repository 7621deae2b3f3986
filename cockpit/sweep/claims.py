"""Which sweep worker runs which trial: exclusive flocks on small files in the sweep dir.

A worker holds `workers/<host>-<pid>.lock` while it lives and `claims/trial-NNN.lock` while it runs
that trial. The kernel drops a flock when its process dies (kill -9 included), so a trial whose
claim is free and whose Optuna state is still RUNNING was interrupted, and the next worker resumes
it; nothing has to notice a crash or clean up after one. Linux's NFS client maps flock onto NFS
locks, which is what lets workers on several machines share one sweep dir (--join).

The flocks are engine/run_dir.py's EngineLock (one engine per run dir), taken without waiting: a
worker skips a trial another one has claimed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.run_dir import EngineLock, RunDirBusy
from engine.run_dir import lock_holder as holder  # who holds a flock, as the run dir's lock is probed

CLAIMS = "claims"
WORKERS = "workers"
ASK_LOCK = "ask.lock"


class Flock(EngineLock):
    """An exclusive flock on one file, taken without waiting; the file says who holds it (the run
    dir's lock, on a file of the sweep dir)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd = None

    def try_acquire(self) -> bool:
        try:
            self.acquire(wait_s=0)
        except RunDirBusy:
            return False
        return True


def trial_claim(sweep_dir: Path, number: int) -> Flock:
    return Flock(Path(sweep_dir) / CLAIMS / f"trial-{number:03d}.lock")


def claimed(sweep_dir: Path, number: int) -> bool:
    return holder(Path(sweep_dir) / CLAIMS / f"trial-{number:03d}.lock") is not None


@contextlib.contextmanager
def ask_lock(sweep_dir: Path, timeout_s: float = 120.0) -> Iterator[None]:
    """One worker at a time between "which trial next" and claiming it, so that a trial just asked
    for (RUNNING, not yet claimed) is never taken for an interrupted one by another worker."""
    lock = Flock(Path(sweep_dir) / ASK_LOCK)
    deadline = time.monotonic() + timeout_s
    while not lock.try_acquire():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{Path(sweep_dir) / ASK_LOCK}: another worker has held it for {timeout_s:.0f}s")
        time.sleep(0.05)
    try:
        yield
    finally:
        lock.release()


def register_worker(sweep_dir: Path) -> Flock:
    """This process, marked as a live worker of the sweep until it exits."""
    lock = Flock(Path(sweep_dir) / WORKERS / f"{socket.gethostname()}-{os.getpid()}.lock")
    lock.try_acquire()
    return lock


def live_workers(sweep_dir: Path) -> list[dict[str, Any]]:
    """The workers running the sweep now ({pid, host, since}).

    The files of dead workers stay: removing one could race a new worker between its open and its flock.
    """
    folder = Path(sweep_dir) / WORKERS
    if not folder.is_dir():
        return []
    return [info for info in (holder(path) for path in sorted(folder.glob("*.lock"))) if info is not None]
