"""The sweep in the TUI, driven through Textual's Pilot while a real sweep trains: one row on home that
opens the sweep screen, its trials table live, the curves of the drawn trials overlaid, a key that
stops a trial (the sweep counts it as stopped by hand and goes on), a key that opens a trial's run."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("textual")

from conftest import pilot_wait  # noqa: E402
from cockpit.tui.app import CockpitApp  # noqa: E402
from cockpit.tui.screens.run import RunScreen  # noqa: E402
from cockpit.tui.screens.sweep import SweepScreen  # noqa: E402
from cockpit.tui.widgets.run.charts import MetricChart  # noqa: E402
from cockpit.tui.widgets.sweep.trials_table import TrialsTable  # noqa: E402
from engine import run_dir as names  # noqa: E402

SIZE = (120, 40)
wait_for = functools.partial(pilot_wait, timeout=120.0, every=0.1)


def status(screen: SweepScreen, name: str) -> str | None:
    last = screen.last
    row = next((r for r in last.comparison.rows if r.name == name), None) if last else None
    return row.status if row else None


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_sweep_on_home_opens_its_screen_where_a_trial_is_stopped_and_opened(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    sweep = subprocess.Popen([sys.executable, "-m", "cockpit.cli", "sweep", "--preset", "quick-test", "--lr", "1e-3,3e-3",
                              "--max-steps", "40", "--eval-steps", "4", "--save-steps", "20"],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("sweeps/*/trial-000/events.jsonl")):
            assert time.monotonic() < deadline and sweep.poll() is None, sweep.communicate()
            time.sleep(0.1)
        (sweep_dir,) = (tmp_path / "sweeps").iterdir()
        app = CockpitApp(runs_dir=tmp_path / "runs")
        async with app.run_test(size=SIZE) as pilot:
            home = app.screen
            await wait_for(pilot, lambda: any(getattr(r, "is_sweep", False) for r in home.rows), what="the sweep's row on home")
            (row,) = home.rows
            assert row.name == f"{sweep_dir.name} (sweep)" and row.total_steps == 2
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen), what="the sweep screen")
            screen = app.screen
            await wait_for(pilot, lambda: status(screen, "trial-000") == "running" and screen.last.loss and screen.last.loss[0][1]
                           and screen.last.evals and screen.last.evals[0][1], what="trial-000's curves, loss and eval")
            assert "1 worker running" in screen.last.title
            await pilot.press("s")  # stop the trial under the cursor: trial-000
            await wait_for(pilot, lambda: status(screen, "trial-000") == "pruned", what="trial-000 stopped and told")
            stopped = next(r for r in screen.last.comparison.rows if r.name == "trial-000")
            assert stopped.why.startswith("stopped by hand at step") and stopped.step < 40
            await wait_for(pilot, lambda: status(screen, "trial-001") == "completed", timeout=180, what="the sweep going on")
            table = screen.query_one(TrialsTable)
            assert table.row_count == 2
            loss, evals = screen.query_one("#sweep-loss", MetricChart), screen.query_one("#sweep-eval", MetricChart)
            await wait_for(pilot, lambda: [label for label, _, _ in loss.lines] == ["trial-000", "trial-001"], what="both curves")
            assert evals.title == "eval_loss" and all(xs for _, xs, _ in evals.lines)
            await pilot.press("space")  # hide trial-000's curves
            await wait_for(pilot, lambda: [label for label, _, _ in loss.lines] == ["trial-001"], what="trial-000 hidden")
            await pilot.press("down", "enter")  # trial-001's run screen
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="the trial's run screen")
            assert Path(app.screen.handle.run_dir).name == "trial-001"
        out, err = sweep.communicate(timeout=120)
        assert sweep.returncode == 0, out + err
        assert "trial-000  pruned: stopped by hand" in out
        assert names.holder(sweep_dir / "trial-000") is None
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
