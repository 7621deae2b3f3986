"""Starts, attaches to, tails and signals an engine run. Shared by `cockpit run` and the TUI.

The run dir is the interface: the engine appends to RUN_DIR/events.jsonl, reads stop/save
requests from RUN_DIR/control and holds RUN_DIR/engine.lock while it lives, so a run started here
can be watched or stopped from anywhere. A RunHandle folds the events once, into its `state` (the
one RunState) through its `diagnoser`. Imports no Textual and no torch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cockpit.diagnose import Diagnoser, Finding
from cockpit.state import RunState
from engine import config as config_mod
from engine import run_dir as names
from engine.events import EventTail

# The run dir's file names, from the one module that names them (engine/run_dir.py).
CONFIG_FILE, LOG_FILE, CONTROL_FILE, EVENTS_FILE = names.CONFIG, names.LOG, names.CONTROL, names.EVENTS


class RunDirError(ValueError):
    """A run dir that cannot be used as asked (exists, missing, not a run)."""


def new_run_dir(cfg: dict[str, Any], output_dir: str | Path | None = None) -> Path:
    """Make runs/<name>-<timestamp>, or the dir given, and return it; never one that holds anything.

    The dir is created here (mkdir is atomic), so two launches in the same second, or two
    processes given the same --output-dir, never share one.
    """
    if output_dir is not None:
        run_dir = Path(output_dir)
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise RunDirError(f"{run_dir} already exists; continue it with --resume {run_dir}, or choose another --output-dir")
        run_dir.mkdir(parents=True, exist_ok=True)
        try:  # claimed by creating config.yaml exclusively: of two launches at once, one wins
            os.close(os.open(run_dir / CONFIG_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            names.check_free(run_dir)
            raise RunDirError(f"{run_dir}: another cockpit has just started a run there; follow it with "
                              f"cockpit watch {run_dir}, or choose another --output-dir") from None
        return run_dir
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = cfg["run"]["name"] or "run"
    root = Path(cfg["run"]["runs_dir"])
    root.mkdir(parents=True, exist_ok=True)
    for suffix in range(1, 1000):
        run_dir = root / (f"{name}-{stamp}" + (f"-{suffix}" if suffix > 1 else ""))
        try:
            run_dir.mkdir()
        except FileExistsError:  # two runs started in the same second
            continue
        return run_dir
    raise RunDirError(f"{root}: no free run dir name for {name}-{stamp}; choose --output-dir")


def write_config(run_dir: Path, cfg: dict[str, Any]) -> None:
    """config.yaml (secrets redacted) and, where there are secrets, .secrets.yaml for the engine."""
    config_mod.write_run_config(run_dir, cfg)


# torchrun options that say where the other machines are; without them the run is one machine's.
MULTI_NODE_OPTIONS = ("--nnodes", "--rdzv-endpoint", "--rdzv_endpoint", "--master-addr", "--master_addr", "--node-rank", "--node_rank")


def engine_command(run_dir: Path, resume: bool = False, cfg: dict[str, Any] | None = None, partial: bool = False) -> list[str]:
    """`python -m engine RUN_DIR`, under torchrun with one process per GPU when run.gpus > 1 or when
    launcher options join it to other machines (one GPU each is still a run of several processes)."""
    run = (cfg or {}).get("run", {})
    gpus = run.get("gpus", 1)
    launcher = [str(a) for a in run.get("launcher_args") or []]
    engine = ["-m", "engine", str(run_dir)] + (["--resume"] if resume else []) + (["--partial"] if resume and partial else [])
    if gpus <= 1 and not launcher:
        return [sys.executable, *engine]
    if not any(a.split("=")[0] in MULTI_NODE_OPTIONS for a in launcher):
        launcher.insert(0, "--standalone")  # one machine: torchrun picks a free port itself
    return [sys.executable, "-m", "torch.distributed.run", *launcher, f"--nproc-per-node={gpus}", *engine]


@dataclass
class RunHandle:
    """One run: the engine process when we started it, a tail on its events, and their one fold."""

    run_dir: Path
    process: subprocess.Popen | None = None
    pid: int | None = None
    tail: EventTail = field(init=False)
    state: RunState = field(init=False)
    diagnoser: Diagnoser = field(init=False)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.tail = EventTail(self.run_dir / EVENTS_FILE)
        self.state = RunState()
        self.diagnoser = Diagnoser(self.state)

    @property
    def finished(self) -> dict[str, Any] | None:
        return self.state.finished

    @property
    def engine_pid(self) -> int | None:
        """The live engine's own pid (rank 0's under torchrun), from its run_started."""
        live = self.state.live
        return live.pid if live else None

    @classmethod
    def start(cls, run_dir: Path, resume: bool = False, env: dict[str, str] | None = None, handle: RunHandle | None = None,
              partial: bool = False) -> RunHandle:
        """Spawn the engine in its own process group, its output appended to engine.log.

        `handle`: the handle that has folded the run's earlier events (a resume), kept so that
        nothing is folded twice.
        """
        run_dir = Path(run_dir).resolve()
        cfg = config_mod.load_run_config(run_dir)
        log = open(run_dir / LOG_FILE, "ab")
        child_env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
        gpus = cfg["run"]["gpus"]
        if gpus > 1 and "OMP_NUM_THREADS" not in child_env:
            # torchrun would set 1 and warn; share the cores instead.
            child_env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // gpus))
        # The engine must not take the terminal's Ctrl-C: the cockpit asks it to stop with a checkpoint.
        process = subprocess.Popen(
            engine_command(run_dir, resume, cfg, partial),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            start_new_session=True,
        )
        log.close()
        if handle is None:
            handle = cls(run_dir=run_dir)
        handle.run_dir, handle.process, handle.pid = run_dir, process, process.pid
        handle.tail.keep_open = True  # the engine's last events (a refusal's error) outlive a removed run dir
        return handle

    def watch_to_end(self) -> subprocess.Popen | None:
        """Start `python -m cockpit.run_end` beside the engine, in a session of its own, so that the
        run gets its findings.json (or, refused as bad input, loses its dir) even when this process
        is gone by then: a TUI that quit or lost its terminal."""
        if self.pid is None:
            return None
        return subprocess.Popen([sys.executable, "-m", "cockpit.run_end", str(self.run_dir), str(self.pid)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    @classmethod
    def attach(cls, run_dir: Path) -> RunHandle:
        """A handle on a run started elsewhere (or finished); nothing is read until `poll`."""
        run_dir = Path(run_dir)
        if not names.is_run_dir(run_dir):
            raise RunDirError(f"{run_dir} is not a run dir (no {EVENTS_FILE} or {CONFIG_FILE})")
        return cls(run_dir=run_dir)

    def poll(self, max_bytes: int | None = None) -> list[tuple[dict[str, Any], bool, list[Finding]]]:
        """The events appended since the last poll, folded: (event, fresh, findings it raised or updated).

        `fresh` is False for an event at a step already folded (a resume repeats steps).
        """
        out = []
        for event in self.tail.read_new(max_bytes):
            before = self.state.repeated
            changed = self.diagnoser.feed(event)
            out.append((event, self.state.repeated == before, changed))
        return out

    def catch_up(self) -> None:
        """Fold every event written so far, silently (before a resume, or a watcher's first screen)."""
        while self.poll(4 * 1024 * 1024):
            pass

    def read_events(self) -> list[dict[str, Any]]:
        return [event for event, _, _ in self.poll()]

    def is_running(self) -> bool:
        """Whether an engine works on this run now: ours while its process lives; another's while it
        holds the run dir's lock (the kernel drops it when the engine dies, kill -9 included)."""
        if self.process is not None and self.process.poll() is None:
            return True
        if names.holder(self.run_dir) is not None:
            return True
        if self.process is not None or (self.run_dir / names.LOCK).exists():
            return False
        live = self.state.live  # an engine from before the lock: its pid, unless it said it finished
        if live is None or live.finished is not None or not live.pid:
            return False
        try:
            os.kill(live.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _send(self, word: str) -> None:
        with open(self.run_dir / CONTROL_FILE, "a", encoding="utf-8") as f:
            f.write(word + "\n")

    def request_save(self) -> None:
        """A checkpoint at the next step."""
        self._send("save")

    def request_stop(self) -> None:
        """Stop after the current step, with a checkpoint; also signalled, for a run still loading.

        The signal goes to the engine (rank 0 under torchrun, which passes the request to the other
        ranks at the next step), never to torchrun itself: torchrun would kill the ranks before they save.
        """
        self._send("stop")
        target = self.engine_pid or (self.pid if self._single_process() else None)
        if target and self.is_running():
            try:
                os.kill(target, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass

    def _single_process(self) -> bool:
        try:
            run = config_mod.load_run_config(self.run_dir)["run"]
            return run["gpus"] <= 1 and not run["launcher_args"]
        except (config_mod.ConfigError, OSError):
            return True

    def kill(self) -> None:
        """The last resort when a stop is not honoured: the engine and every process it started go
        (torchrun puts each rank in a session of its own, so a process group is not enough)."""
        if not (self.pid and self.is_running()):
            return
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for proc in procs:
            try:
                proc.kill()
            except psutil.Error:
                pass

    def wait(self, timeout: float | None = None) -> int | None:
        if self.process is None:
            deadline = None if timeout is None else time.monotonic() + timeout
            while self.is_running():
                if deadline is not None and time.monotonic() > deadline:
                    return None
                time.sleep(0.2)
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_tail(self, lines: int = 40) -> str:
        path = self.run_dir / LOG_FILE
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                text = f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
