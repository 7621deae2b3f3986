"""Snapshots of every screen at 80x24 and 120x40, drawn from recorded runs with a fixed clock.

Home, the new-run form with an error showing, the run screen (SFT live, SFT failed with a red
finding, GRPO) and the quit dialog. A live run is a recorded run cut at step 4 whose run dir this
test holds the engine's lock on, as a live engine does.

Update them after a deliberate change of the layout: pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("pytest_textual_snapshot")

from cockpit.tui.app import CockpitApp  # noqa: E402
from cockpit.tui.screens.run import RunScreen  # noqa: E402
from cockpit.tui.widgets.run.charts import MetricChart  # noqa: E402
from engine import run_dir as names  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
LIVE_STEP = 4


async def settled(pilot) -> None:
    """Wait until the run screen has drawn everything on disk (not a fixed sleep)."""
    deadline = time.monotonic() + 15
    while not (isinstance(pilot.app.screen, RunScreen) and pilot.app.screen.settled):
        assert time.monotonic() < deadline, "the run screen did not settle"
        await pilot.pause(0.05)
    await pilot.pause(0.3)  # the last layout change (GRPO's panels) drawn


def recorded(name: str, tmp_path: Path, as_name: str) -> Path:
    run_dir = tmp_path / as_name  # the header shows the dir's name: the same in every test run
    shutil.copytree(FIXTURES / name, run_dir)
    return run_dir


@pytest.fixture
def live_run(tmp_path):
    """The recorded quick-test run cut after step 4, its lock held as the live engine holds it.

    Yields (run dir, the clock the screen reads: a few seconds after the last event)."""
    run_dir = recorded("sft_run", tmp_path, "quick-test-live")
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    kept = [e for e in events if e.get("step") is None or e["step"] <= LIVE_STEP and not (e["type"] == "eval" and e["step"] > 3)]
    kept = [e for e in kept if e["type"] != "run_finished"]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in kept), encoding="utf-8")
    log = (run_dir / "engine.log").read_text(encoding="utf-8").splitlines()
    logged = [i for i, line in enumerate(log) if line.startswith("{'loss'")]  # the Trainer's line per step
    (run_dir / "engine.log").write_text("\n".join(log[: logged[LIVE_STEP - 1] + 1]) + "\n", encoding="utf-8")
    lock = names.EngineLock(run_dir)
    lock.acquire()
    try:
        yield run_dir, kept[-1]["time"] + 3.0
    finally:
        lock.release()


async def live_drawn(pilot) -> None:
    """Wait until the live run's screen shows step 4 with every chart drawn."""
    deadline = time.monotonic() + 15
    while True:
        screen = pilot.app.screen
        if isinstance(screen, RunScreen) and screen.last is not None and screen.last.step == LIVE_STEP \
                and not any(chart.dirty for chart in screen.query(MetricChart)):
            break
        assert time.monotonic() < deadline, "the live run was not drawn"
        await pilot.pause(0.05)
    await pilot.pause(0.3)


@SIZES
def test_run_screen_sft_live(snap_compare, live_run, size):
    run_dir, now = live_run
    assert snap_compare(CockpitApp(run_dir=run_dir, clock=lambda: now), terminal_size=size, run_before=live_drawn)


@SIZES
def test_run_screen_sft_failed_with_a_red_finding(snap_compare, tmp_path, size):
    app = CockpitApp(run_dir=recorded("failed_run", tmp_path, "oom-demo"))
    assert snap_compare(app, terminal_size=size, run_before=settled)


@SIZES
def test_run_screen_grpo(snap_compare, tmp_path, size):
    app = CockpitApp(run_dir=recorded("grpo_run", tmp_path, "grpo-gsm8k"))
    assert snap_compare(app, terminal_size=size, run_before=settled)


@SIZES
def test_quit_dialog(snap_compare, live_run, size):
    """Quitting while the run trains asks; the footer shows the dialog's keys, not the run screen's."""
    run_dir, now = live_run

    async def ask(pilot) -> None:
        from cockpit.tui.screens.quit import QuitScreen

        await live_drawn(pilot)
        await pilot.press("q")
        assert isinstance(pilot.app.screen, QuitScreen)
        await pilot.pause(0.3)

    assert snap_compare(CockpitApp(run_dir=run_dir, clock=lambda: now), terminal_size=size, run_before=ask)


def runs_dir(tmp_path: Path) -> Path:
    """Three recorded runs under one runs dir, with names as `cockpit run` makes them and fixed
    modification times (the list's order)."""
    runs = tmp_path / "runs"
    for i, (name, as_name) in enumerate((("sft_run", "quick-test-20261121-140000"), ("grpo_run", "grpo-gsm8k-20261121-150500"),
                                         ("failed_run", "mistral-nli-qlora-20261122-091500"))):
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


@SIZES
def test_home_screen(snap_compare, tmp_path, monkeypatch, size):
    runs_dir(tmp_path)
    monkeypatch.chdir(tmp_path)  # the screen names its runs dir: the same in every test run
    assert snap_compare(CockpitApp(runs_dir=Path("runs")), terminal_size=size, run_before=home_listed)


@SIZES
def test_new_run_form_with_an_error(snap_compare, tmp_path, monkeypatch, size):
    """ctrl+s with a learning rate of `abc`: the error shows under the fields in the form's words, the
    field is marked and focused, and the estimate line says why it is empty."""
    from textual.widgets import Input

    from cockpit.tui.screens.new_run import NewRunScreen, input_id

    runs_dir(tmp_path)
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the dataset field shows a path relative to the project

    async def start_with_a_bad_value(pilot) -> None:
        await home_listed(pilot)
        await pilot.press("n")
        while not isinstance(pilot.app.screen, NewRunScreen):
            await pilot.pause(0.05)
        screen = pilot.app.screen
        screen.query_one("#field-data-path", Input).value = "data/toolcall_sample.jsonl"
        screen.query_one("#" + input_id("train.learning_rate"), Input).value = "abc"
        await pilot.press("ctrl+s")
        await pilot.pause(0.5)

    assert snap_compare(CockpitApp(runs_dir=tmp_path / "runs"), terminal_size=size, run_before=start_with_a_bad_value)


def test_pytest_ends_on_its_own_summary_line():
    """With the snapshot plugin's report above it, `python -m pytest -q` still ends on "N passed ... in Ns"
    (a verbosity in the ini's addopts stacked with -q to -qq, which drops that line)."""
    import re
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_tui_snapshots.py",
                             "-k", "test_home_screen and 80x24"], cwd=root, capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0, result.stdout[-2000:]
    assert any("snapshot passed" in line for line in lines)
    assert re.fullmatch(r"1 passed, \d+ deselected in [\d.]+s", lines[-1]), lines[-3:]
