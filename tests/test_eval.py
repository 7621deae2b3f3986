"""`cockpit eval RUN_DIR --dataset TEST`: a saved model of a real tiny run on a test file, measured as
the run's own eval measured it; bad input is one line and exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import SAMPLE, of_type

from engine.events import read_events


def cockpit(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """quick-test: 6 steps, an eval and a checkpoint at steps 3 and 6, best/ and final/; and its eval split as a test file."""
    import signal

    from engine import config as config_mod
    from engine.__main__ import main as engine_main

    from cockpit.supervisor import write_config

    root = tmp_path_factory.mktemp("eval")
    write_config(root / "r", config_mod.resolve(preset="quick-test"))
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert engine_main([str(root / "r")]) == 0  # in this process: the run is what the tests read, not how it starts
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    test = root / "test.jsonl"
    lines = [line for line in SAMPLE.read_text().splitlines() if json.loads(line).get("metadata") == "eval"]
    test.write_text("\n".join(lines) + "\n")
    return root / "r", test, len(lines)


def run_evals(run_dir) -> dict[int, float]:
    return {e["step"]: e["eval_loss"] for e in of_type(list(read_events(run_dir / "events.jsonl")), "eval")}


@pytest.fixture(scope="module")
def best_scored(trained):
    """`cockpit eval RUN --dataset TEST`: best/ scored, once for the tests that read its result."""
    run_dir, test, _ = trained
    result = cockpit("eval", str(run_dir), "--dataset", str(test))
    assert result.returncode == 0, result.stderr
    return result


def test_best_on_the_eval_split_scores_what_the_run_scored(trained, best_scored):
    run_dir, test, n = trained
    result = best_scored
    saved = json.loads((run_dir / "eval" / "test-best.json").read_text())
    best_step = json.loads((run_dir / "best" / "cockpit_best.json").read_text())["step"]
    assert saved["checkpoint"] == "best" and saved["model_step"] == best_step and saved["run_type"] == "sft"
    assert saved["records"] == saved["evaluated"] == n
    assert saved["metrics"]["eval_loss"] == pytest.approx(run_evals(run_dir)[best_step], rel=1e-4)
    assert 0 <= saved["metrics"]["eval_mean_token_accuracy"] <= 1
    line = result.stdout.splitlines()[0]
    assert line.startswith(f"test-best: best (step {best_step}) on test.jsonl, {n} records: eval_loss {saved['metrics']['eval_loss']:.4g}")
    assert saved["dataset"] == str(test)
    assert "token accuracy" in line and result.stdout.splitlines()[1] == f"written: {run_dir / 'eval' / 'test-best.json'}"
    # The result is in the event stream too, where doctor (and the TUI) read it.
    (event,) = of_type(list(read_events(run_dir / "events.jsonl")), "test_eval")[-1:]
    assert event["step"] is None and event["metrics"] == saved["metrics"]
    doctor = cockpit("doctor", str(run_dir))
    assert f"test test-best: best (step {best_step})" in doctor.stdout


def test_a_checkpoint_scores_what_the_run_scored_at_its_step(trained):
    run_dir, test, _ = trained
    result = cockpit("eval", str(run_dir), "--dataset", str(test), "--checkpoint", "checkpoint-3", "--name", "early", "--json")
    assert result.returncode == 0, result.stderr
    saved = json.loads(result.stdout)
    assert saved["name"] == "early" and saved["model_step"] == 3 and (run_dir / "eval" / "early.json").is_file()
    assert saved["metrics"]["eval_loss"] == pytest.approx(run_evals(run_dir)[3], rel=1e-4)
    assert saved["metrics"]["eval_loss"] != pytest.approx(run_evals(run_dir)[6], rel=1e-4)  # another model, another loss


@pytest.mark.parametrize("case, expect", [
    ("no-checkpoint", "has no checkpoint-9; saved models: best, final; checkpoints: checkpoint-3, checkpoint-6"),
    ("bad-checkpoint", "--checkpoint latest: expected best, final or checkpoint-N"),
    ("no-dataset", "missing.jsonl: no such file"),
    ("bad-data", "no known format in the columns (question_text)"),
    ("not-a-run", "is not a run dir (no config.yaml)"),
    ("no-model", "holds no saved model yet"),
])
def test_bad_input_is_one_line_and_exit_2(trained, tmp_path, case, expect):
    run_dir, test, _ = trained
    args = {"no-checkpoint": [str(run_dir), "--dataset", str(test), "--checkpoint", "checkpoint-9"],
            "bad-checkpoint": [str(run_dir), "--dataset", str(test), "--checkpoint", "latest"],
            "no-dataset": [str(run_dir), "--dataset", str(tmp_path / "missing.jsonl")],
            "bad-data": [str(run_dir), "--dataset", str(tmp_path / "bad.jsonl")],
            "not-a-run": [str(tmp_path), "--dataset", str(test)],
            "no-model": [str(tmp_path / "fresh"), "--dataset", str(test)]}[case]
    (tmp_path / "bad.jsonl").write_text('{"question_text": "?"}\n')
    (tmp_path / "fresh").mkdir()
    shutil.copy(run_dir / "config.yaml", tmp_path / "fresh" / "config.yaml")  # a run dir whose engine never saved
    before = sorted(p.name for p in (run_dir / "eval").iterdir()) if (run_dir / "eval").exists() else []
    result = cockpit("eval", *args)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and expect in line and "Traceback" not in result.stderr
    after = sorted(p.name for p in (run_dir / "eval").iterdir()) if (run_dir / "eval").exists() else []
    assert after == before  # refused before anything was written


@pytest.mark.anyio
async def test_the_tui_header_shows_a_test_result(trained, best_scored):
    run_dir, _, _ = trained
    last = of_type(list(read_events(run_dir / "events.jsonl")), "test_eval")[-1]  # the header shows the latest
    await header_shows(run_dir, f"test {last['name']} eval_loss {last['metrics']['eval_loss']:.4g}")


async def header_shows(run_dir, words: str) -> None:
    """Open the run in the TUI as `cockpit watch` does, and find `words` in its header."""
    import time

    from cockpit.tui.app import CockpitApp
    from cockpit.tui.screens.run import RunScreen
    from cockpit.tui.widgets.run.header import RunHeader

    app = CockpitApp(run_dir=run_dir)
    async with app.run_test(size=(160, 40)) as pilot:
        deadline = time.monotonic() + 20
        while not (isinstance(app.screen, RunScreen) and app.screen.settled):
            assert time.monotonic() < deadline, "the run screen never settled"
            await pilot.pause(0.05)
        text = str(app.screen.query_one(RunHeader).render())
        assert words in text, text
