"""Shared fixtures: real tiny trainings on the CPU, no network."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

# No test may reach the hub: hub ids must fail fast and clearly, not after network retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "data" / "toolcall_sample.jsonl"


@pytest.fixture
def run_engine(tmp_path):
    """Resolve a config, write it to a fresh run dir and run the engine in this process.

    Returns (exit code, events, run_dir). In-process keeps each training to seconds: the heavy
    imports are paid once per test session.
    """
    from engine import config as config_mod
    from engine.__main__ import main as engine_main
    from engine.events import read_events

    from cockpit.supervisor import write_config

    counter = {"n": 0}

    def _run(preset: str | None = "quick-test", sets: list[str] | None = None, flags: dict | None = None, resume_dir: Path | None = None,
             partial: bool = False):
        if resume_dir is None:
            cfg = config_mod.resolve(preset=preset, flags=flags or {}, sets=sets or [])
            counter["n"] += 1
            run_dir = tmp_path / f"run{counter['n']}"
            write_config(run_dir, cfg)
        else:
            run_dir = resume_dir
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            code = engine_main([str(run_dir)] + (["--resume"] if resume_dir is not None else []) + (["--partial"] if partial else []))
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
        events = list(read_events(run_dir / "events.jsonl")) if (run_dir / "events.jsonl").exists() else []
        return code, events, run_dir

    return _run


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e.get("type") == kind]


@pytest.fixture
def anyio_backend():
    """The TUI tests (pytest.mark.anyio) run on asyncio, as Textual does."""
    return "asyncio"


async def pilot_wait(pilot, condition, timeout: float, what: str = "", every: float = 0.05) -> None:
    """Pause a Textual pilot until `condition()` holds (the app's timers and readers run meanwhile)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what or getattr(condition, '__name__', condition)}"
        await pilot.pause(every)
