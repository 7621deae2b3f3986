"""Snapshots of the run screen drawn from recorded runs (no clock: finished runs, fixed event times).

Update them after a deliberate change of the layout: pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("pytest_textual_snapshot")

from cockpit.tui.app import CockpitApp  # noqa: E402
from cockpit.tui.screens.run import RunScreen  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


async def settled(pilot) -> None:
    """Wait until the run screen has drawn everything on disk (not a fixed sleep)."""
    deadline = time.monotonic() + 15
    while not (isinstance(pilot.app.screen, RunScreen) and pilot.app.screen.settled):
        assert time.monotonic() < deadline, "the run screen did not settle"
        await pilot.pause(0.05)
    await pilot.pause()


def recorded(name: str, tmp_path: Path, as_name: str) -> CockpitApp:
    run_dir = tmp_path / as_name  # the header shows the dir's name: the same in every test run
    shutil.copytree(FIXTURES / name, run_dir)
    return CockpitApp(run_dir=run_dir)


def test_run_screen_sft(snap_compare, tmp_path):
    assert snap_compare(recorded("sft_run", tmp_path, "quick-test"), terminal_size=(120, 40), run_before=settled)


def test_run_screen_sft_small_terminal(snap_compare, tmp_path):
    assert snap_compare(recorded("sft_run", tmp_path, "quick-test"), terminal_size=(80, 24), run_before=settled)


def test_run_screen_grpo(snap_compare, tmp_path):
    assert snap_compare(recorded("grpo_run", tmp_path, "grpo-gsm8k"), terminal_size=(120, 40), run_before=settled)


def test_run_screen_failed(snap_compare, tmp_path):
    assert snap_compare(recorded("failed_run", tmp_path, "oom-demo"), terminal_size=(120, 40), run_before=settled)
