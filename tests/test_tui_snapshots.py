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


def runs_dir(tmp_path: Path) -> Path:
    """Three recorded runs under one runs dir, with fixed modification times (the list's order)."""
    import os

    runs = tmp_path / "runs"
    for i, (name, as_name) in enumerate((("sft_run", "quick-test-1"), ("grpo_run", "grpo-gsm8k-1"), ("failed_run", "oom-demo-1"))):
        shutil.copytree(FIXTURES / name, runs / as_name)
        for path in (runs / as_name).iterdir():
            os.utime(path, (1_800_000_000 + i, 1_800_000_000 + i))
    return runs


async def home_listed(pilot) -> None:
    from textual.widgets import DataTable

    deadline = time.monotonic() + 15
    while pilot.app.screen.query(DataTable).first().row_count < 3:
        assert time.monotonic() < deadline, "the home list did not fill"
        await pilot.pause(0.05)
    await pilot.pause()


def test_home_screen(snap_compare, tmp_path, monkeypatch):
    runs_dir(tmp_path)
    monkeypatch.chdir(tmp_path)  # the screen names its runs dir: the same in every test run
    assert snap_compare(CockpitApp(runs_dir=Path("runs")), terminal_size=(120, 40), run_before=home_listed)


def test_new_run_form(snap_compare, tmp_path, monkeypatch):
    """The form's fields are the options table's rows; QLoRA is estimated for a GPU, so the picture is the
    same on any machine."""
    from textual.widgets import Input

    from cockpit.tui.screens.new_run import NewRunScreen, input_id

    runs_dir(tmp_path)
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the dataset field shows a path relative to the project

    async def open_form(pilot) -> None:
        await home_listed(pilot)
        await pilot.press("n")
        while not isinstance(pilot.app.screen, NewRunScreen):
            await pilot.pause(0.05)
        screen = pilot.app.screen
        screen.query_one("#field-data-path", Input).value = "data/toolcall_sample.jsonl"
        screen.query_one("#" + input_id("model.finetune"), Input).value = "qlora"
        await pilot.pause(1.0)  # the form validates after typing stops, the estimate redraws
        screen.query_one("#field-data-path", Input).focus()
        await pilot.pause()

    assert snap_compare(CockpitApp(runs_dir=tmp_path / "runs"), terminal_size=(120, 40), run_before=open_form)
