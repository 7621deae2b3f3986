"""The TUI driven through Textual's Pilot: home, watch (finished, failed, GRPO), a real new run, stop, apply-fix."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("textual")

from rich.console import Console  # noqa: E402
from textual.widgets import DataTable, Input  # noqa: E402

from cockpit.tui import new_run  # noqa: E402
from cockpit.tui.app import CockpitApp  # noqa: E402
from cockpit.tui.screens.new_run import NewRunScreen, input_id  # noqa: E402
from cockpit.tui.screens.quit import QuitScreen  # noqa: E402
from cockpit.tui.screens.run import RunScreen  # noqa: E402
from cockpit.tui.widgets.run.charts import MetricChart  # noqa: E402
from cockpit.tui.widgets.run.generations import GenerationsPanel, render_group  # noqa: E402
from cockpit.tui.widgets.run.findings import FindingsPanel  # noqa: E402
from cockpit.tui.widgets.run.log import ErrorPanel  # noqa: E402
from cockpit.tui.widgets.run.samples import SamplesPanel  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
SIZE = (120, 40)


@pytest.fixture
def anyio_backend():
    return "asyncio"


def copy_run(name: str, dest: Path) -> Path:
    """A recorded run copied where the test may write (findings.json, control)."""
    shutil.copytree(FIXTURES / name, dest)
    return dest


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:
    """Pause until `condition()` holds (the reader thread and timers run meanwhile)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {condition.__name__ if hasattr(condition, '__name__') else condition}")
        await pilot.pause(0.05)


def as_text(renderable) -> str:
    console = Console(width=120, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text()


def run_screen(app) -> RunScreen:
    assert isinstance(app.screen, RunScreen), type(app.screen)
    return app.screen


@pytest.mark.anyio
async def test_home_lists_runs_and_opens_one(tmp_path):
    runs = tmp_path / "runs"
    copy_run("sft_run", runs / "quick-test-1")
    copy_run("failed_run", runs / "oom-demo-1")
    app = CockpitApp(runs_dir=runs)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        rows = {str(table.get_row_at(i)[0]): table.get_row_at(i) for i in range(2)}
        assert "completed" in str(rows["quick-test-1"][3]) and rows["quick-test-1"][4] == "6/6"
        assert "failed" in str(rows["oom-demo-1"][3])
        table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.settled)
        await pilot.press("escape")
        assert not isinstance(app.screen, RunScreen)
        # Attach by path: a dir that is not a run says so and stays home.
        app.screen.query_one("#attach-path", Input).value = str(tmp_path)
        await pilot.press("a", "enter")
        assert not isinstance(app.screen, RunScreen)


@pytest.mark.anyio
async def test_watch_finished_run(tmp_path):
    app = CockpitApp(run_dir=copy_run("sft_run", tmp_path / "quick-test"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: run_screen(app).settled)
        screen = run_screen(app)
        assert screen.last.status == "completed" and screen.last.step == 6
        loss = screen.query_one("#chart-loss", MetricChart)
        assert [label for label, *_ in loss.lines] == ["loss", "eval_loss"]
        assert len(loss.lines[0][1]) == 6
        samples = screen.query_one(SamplesPanel)
        assert len(samples.samples) == 3
        await pilot.press("right_square_bracket")
        assert samples.index == 1
        assert not screen.query_one(ErrorPanel).display
        assert not screen.query_one("#grpo-charts").display
        await pilot.press("4")
        assert not screen.query_one("#log").display
        await pilot.press("s")  # a finished run cannot be stopped: a message, nothing else
        assert not (tmp_path / "quick-test" / "control").exists()


@pytest.mark.anyio
async def test_watch_failed_run_shows_the_error_and_its_finding(tmp_path):
    app = CockpitApp(run_dir=copy_run("failed_run", tmp_path / "oom-demo"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: run_screen(app).settled)
        screen = run_screen(app)
        assert screen.last.status == "failed"
        error = screen.query_one(ErrorPanel)
        assert error.display and "out of memory" in str(error.render()).lower()
        assert "after step 8 on a batch of 4 x 1024 tokens: 22.9 of 23.6 GiB in use on cuda:0" in str(error.render())
        findings = screen.query_one(FindingsPanel).findings
        assert findings and findings[0].severity == "red"


@pytest.mark.anyio
async def test_grpo_run_shows_rewards_and_generations(tmp_path):
    app = CockpitApp(run_dir=copy_run("grpo_run", tmp_path / "grpo"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: run_screen(app).settled)
        screen = run_screen(app)
        assert screen.query_one("#grpo-charts").display
        reward = screen.query_one("#chart-reward", MetricChart)
        assert [label for label, *_ in reward.lines] == ["reward", "correct", "format"]
        panel = screen.query_one(GenerationsPanel)
        assert "clipped" in as_text(render_group(panel.event, panel.group_index))
        await pilot.press("g")
        assert "zero spread" in as_text(render_group(panel.event, panel.group_index))


@pytest.mark.anyio
async def test_apply_fix_prefills_the_form_and_resumes_when_sound(tmp_path):
    run_dir = copy_run("sft_run", tmp_path / "quick-test")
    (run_dir / "checkpoints" / "checkpoint-6").mkdir(parents=True)
    app = CockpitApp(run_dir=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: run_screen(app).settled)
        panel = app.screen.query_one(FindingsPanel)
        fixable = [i for i, f in enumerate(panel.findings) if f.overrides]
        assert fixable, [f.code for f in panel.findings]
        finding = panel.findings[fixable[0]]
        panel.query_one("#finding-list").highlighted = fixable[0]
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen))
        form = app.screen
        for key, value in finding.overrides.items():
            if key in new_run.FORM_KEYS:
                assert form.query_one("#" + input_id(key), Input).value == new_run.as_text(value)
        assert form.request.config_file == run_dir / "config.yaml"
        assert form.validate()
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)


def test_resume_check_allows_only_keys_a_checkpoint_can_follow(tmp_path):
    from engine import config as config_mod

    old = config_mod.load_run_config(FIXTURES / "sft_run")
    ckpt = tmp_path / "checkpoint-6"
    more_steps = config_mod.merge(old, {"train": {"max_steps": 100}})
    assert new_run.resume_check(old, more_steps, ckpt)[0]
    assert not new_run.resume_check(old, config_mod.merge(old, {"train": {"learning_rate": 1e-5}}), ckpt)[0]
    assert not new_run.resume_check(old, config_mod.merge(old, {"data": {"eval_split": 0.2}}), ckpt)[0]
    assert not new_run.resume_check(old, config_mod.merge(old, {"train": {"max_steps": 4}}), ckpt)[0]
    assert not new_run.resume_check(old, more_steps, None)[0]


@pytest.mark.anyio
async def test_new_run_form_reports_bad_values_inline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = CockpitApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        assert isinstance(app.screen, NewRunScreen)
        field = app.screen.query_one("#" + input_id("train.learning_rate"), Input)
        field.value = "fast"
        assert not app.screen.validate()
        assert field.has_class("-invalid")
        assert "train.learning_rate" in str(app.screen.query_one("#form-error").render())


@pytest.mark.anyio
async def test_new_run_trains_fills_its_screen_and_stops(tmp_path, monkeypatch):
    """Real training on builtin:tiny: the form starts it, the screen fills in, quit asks, stop checkpoints."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    app = CockpitApp(runs_dir=tmp_path / "runs", poll_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        form = app.screen
        form.query_one("#" + input_id("train.max_steps"), Input).value = "400"
        form.query_one("#field-extra", Input).value = "train.save_steps=1000 train.eval_strategy=no"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), timeout=30)
        screen = run_screen(app)
        loss = screen.query_one("#chart-loss", MetricChart)
        await wait_for(pilot, lambda: len(loss.lines) > 0 and len(loss.lines[0][1]) >= 3, timeout=60)
        assert screen.last.status == "running" and screen.last.total_steps == 400
        assert screen.query_one(SamplesPanel).samples
        # Quit while it trains asks first; cancel keeps the app.
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.last.status == "stopped", timeout=60)
        await wait_for(pilot, lambda: screen.settled, timeout=30)
        run_dir = Path(screen.handle.run_dir)
        assert list((run_dir / "checkpoints").glob("checkpoint-*"))
        assert (run_dir / "findings.json").is_file()
        await pilot.press("q")  # nothing runs any more: quits at once
    assert not screen.handle.is_running()


def test_the_form_refuses_what_cockpit_run_refuses(tmp_path):
    """One launch path: the form's request meets the launch checks `cockpit run` makes (the strategy here)."""
    from engine.errors import EngineError

    request = new_run.for_preset("quick-test")
    request.values["run.gpus"] = "2"
    request.extra = "run.distributed=fsdp"
    request.values["model.finetune"] = "qlora"
    with pytest.raises(EngineError) as exc:
        new_run.resolve(request)
    assert exc.value.key == "run.distributed" and exc.value.overrides == {"run.distributed": "ddp"}
    assert not (tmp_path / "runs").exists()
