"""A run's last word once its engine has ended: findings.json written, or the run dir removed when
the engine refused the run as bad input before it trained anything (as `cockpit run` does).

For runs whose starter may be gone: the TUI starts one of these beside each run it launches, so a
TUI that quits, or whose terminal closes, still leaves every run with its final findings. It sleeps
on the engine's lock (the kernel wakes it when the engine exits) and costs nothing meanwhile.

    python -m cockpit.run_end RUN_DIR ENGINE_PID      (see RunHandle.watch_to_end; no torch, no Textual)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from engine import run_dir as names

POLL_S = 0.5


def engine_alive(pid: int) -> bool:
    """The process lives (a zombie, waiting for its parent to read its exit status, has ended)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_for_end(run_dir: Path, pid: int) -> None:
    """Return once the engine started as `pid` has ended (and released the run dir's lock)."""
    while names.holder(run_dir) is None:  # not locked yet (still importing), or never will be
        if not engine_alive(pid):
            return
        time.sleep(POLL_S)
    try:
        import fcntl

        fd = os.open(run_dir / names.LOCK, os.O_RDONLY)
    except (ImportError, OSError):
        fd = None
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # blocks until the engine's exclusive lock is gone
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    while engine_alive(pid):  # torchrun outlives rank 0's lock by a moment
        time.sleep(POLL_S)


def conclude(run_dir: Path) -> str:
    """Fold the whole run once and leave its last word: "removed" or "findings"."""
    from cockpit.diagnose import save_findings
    from cockpit.launch import discard_if_refused
    from cockpit.supervisor import RunHandle

    handle = RunHandle.attach(run_dir)
    handle.catch_up()
    if discard_if_refused(handle.state, run_dir):
        return "removed"
    handle.diagnoser.finish()
    save_findings(run_dir, handle.diagnoser.findings)
    return "findings"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[1].isdigit():
        print("usage: python -m cockpit.run_end RUN_DIR ENGINE_PID", file=sys.stderr)
        return 2
    run_dir = Path(args[0])
    wait_for_end(run_dir, int(args[1]))
    if not names.is_run_dir(run_dir):  # removed meanwhile (the TUI discarded a refused run itself)
        return 0
    try:
        conclude(run_dir)
    except OSError as exc:  # a full disk: nothing to tell anyone, the run's events are intact
        print(f"{run_dir}: findings not saved: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
