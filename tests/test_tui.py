"""The TUI driven through Textual's Pilot: home, watch (finished, failed, GRPO), a real new run, stop, apply-fix,
and what each screen shows at 80x24 and 120x40."""

from __future__ import annotations

import functools
import io
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("textual")

from conftest import pilot_wait  # noqa: E402
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


def copy_run(name: str, dest: Path) -> Path:
    """A recorded run copied where the test may write (findings.json, control)."""
    shutil.copytree(FIXTURES / name, dest)
    return dest


wait_for = functools.partial(pilot_wait, timeout=10.0)


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
        drawn = str(loss.render()).splitlines()
        assert "eval_loss" in drawn[0] and not any("eval_loss" in line for line in drawn[1:])  # the legend is not on the data
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
        newest = panel.event
        await pilot.press("left_square_bracket")  # [ on GRPO: the step before's generations
        assert panel.event is not newest and panel.event["step"] < newest["step"]
        await pilot.press("right_square_bracket")
        assert panel.event is newest
        for chart in screen.query(MetricChart):  # every chart keeps its title, whatever its labels' width
            assert str(chart.render()).splitlines()[0].startswith(chart.title[:12]), chart.title


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
            if key in form.request.fields:
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
        error = str(app.screen.query_one("#form-error").render())
        assert "learning rate: must be a number" in error and "--set" not in error  # the field, not a flag


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


# ---- at 80x24 and 120x40 --------------------------------------------------------------------------


def shown(widget) -> bool:
    """On screen: displayed, and so are all its containers."""
    node = widget
    while node is not None and hasattr(node, "display"):
        if not node.display:
            return False
        node = node.parent
    return True


@pytest.mark.anyio
async def test_small_terminal_shows_progress_loss_chart_top_finding_and_keys_for_the_rest(tmp_path):
    """80x24: the progress line, the loss chart alone, the top finding, the footer; 1-5 bring the rest."""
    app = CockpitApp(run_dir=copy_run("failed_run", tmp_path / "oom-demo"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: run_screen(app).settled)
        screen = run_screen(app)
        header = str(screen.query_one("#header").render())
        assert "step 8/40" in header and "loss 2.3" in header and "elapsed" in header
        assert shown(screen.query_one("#chart-loss")) and not shown(screen.query_one("#chart-grad-norm"))
        top = str(screen.query_one("#top-finding").render())
        assert shown(screen.query_one("#top-finding")) and top.startswith("● ")
        for key, panel in (("3", "#findings"), ("4", "#log"), ("5", "#memory"), ("2", "#samples")):
            await pilot.press(key)
            assert shown(screen.query_one(panel)), panel
            assert not shown(screen.query_one("#chart-loss"))
        await pilot.press("1")
        assert shown(screen.query_one("#chart-loss"))
        await pilot.press("1")  # the charts on show: 1 steps to the next one
        assert shown(screen.query_one("#chart-grad-norm")) and not shown(screen.query_one("#chart-loss"))


@pytest.mark.anyio
async def test_the_footer_shows_every_key_the_readme_names(tmp_path):
    from textual.widgets._footer import FooterKey

    app = CockpitApp(run_dir=copy_run("grpo_run", tmp_path / "grpo"))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: run_screen(app).settled)
        await pilot.pause()
        keys = {key.key_display for key in app.screen.query(FooterKey)}
        assert {"s", "c", "f", "[", "]", "g", "1", "2", "3", "4", "5", "esc", "q"} <= keys, keys
        footer = app.screen.query_one("Footer")
        assert sum(key.size.width for key in footer.query(FooterKey)) <= 80  # nothing cut at 80 columns


@pytest.mark.anyio
async def test_hiding_the_right_column_widens_the_left(tmp_path):
    app = CockpitApp(run_dir=copy_run("sft_run", tmp_path / "quick-test"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: run_screen(app).settled)
        screen = run_screen(app)
        await pilot.press("3", "4", "5")
        await pilot.pause()
        assert not screen.query_one("#right").display
        assert screen.query_one("#left").size.width == SIZE[0]
        assert shown(screen.query_one("#top-finding"))  # the findings panel is hidden: the top one stays in sight
        await pilot.press("3", "4", "5", "1", "2")  # the right column back, the left one away
        await pilot.pause()
        assert not screen.query_one("#left").display and screen.query_one("#right").size.width == SIZE[0]


@pytest.mark.anyio
async def test_escape_goes_home_after_a_fix_run(tmp_path):
    """Home -> run A -> f (the form) -> the new run B replaces the form -> esc: home, not run A."""
    from cockpit.supervisor import RunHandle
    from cockpit.tui.screens.home import HomeScreen

    runs = tmp_path / "runs"
    run_a = copy_run("sft_run", runs / "quick-test-1")
    run_b = copy_run("failed_run", runs / "oom-demo-1")
    app = CockpitApp(runs_dir=runs)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 2)
        app.open_run(run_a)
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.settled)
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen))
        app.run_started(RunHandle.attach(run_b))  # what the form does once the engine has started
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.handle.run_dir == run_b)
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)


@pytest.mark.anyio
async def test_watch_then_escape_goes_home(tmp_path):
    from cockpit.tui.screens.home import HomeScreen

    app = CockpitApp(run_dir=copy_run("sft_run", tmp_path / "quick-test"), runs_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: run_screen(app).settled)
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)


@pytest.mark.anyio
async def test_header_counts_the_checkpoints_on_disk(tmp_path):
    """Rotation keeps save_total_limit checkpoints: the header counts those there are, not the saves."""
    run_dir = copy_run("sft_run", tmp_path / "quick-test")
    saves = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if '"checkpoint"' in line]
    assert len(saves) == 2
    kept = run_dir / "checkpoints" / "checkpoint-6"
    kept.mkdir(parents=True)
    (kept / "cockpit_complete.json").write_text("{}")
    (run_dir / "checkpoints" / "checkpoint-3").mkdir()  # no completion marker: it does not count
    app = CockpitApp(run_dir=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: run_screen(app).settled)
        assert run_screen(app).last.checkpoints == 1
        assert "checkpoints 1" in str(app.screen.query_one("#header").render())


def test_header_lines_fit_both_sizes_keeping_the_progress_fields():
    from cockpit.tui.feed import Snapshot
    from cockpit.tui.widgets.run.header import progress_line, top_line

    snap = Snapshot(changed=set(), title="mistral-nli-qlora-20261122-091500", status="running", phase="training", step=66,
                    total_steps=400, epoch=0.4, eta_s=185, elapsed_s=62, tokens_per_s=1234.5, last_loss=6.661, checkpoints=3,
                    config={"run": {"name": "mistral-nli-qlora", "type": "sft"}, "model": {"name_or_path": "mistralai/Mistral-7B-v0.3", "finetune": "qlora"}})
    for width in (78, 118):
        line = progress_line(snap, width).plain
        assert len(line) <= width
        for part in ("step 66/400", "ETA 3m05s", "1,234 tok/s", "elapsed 1m02s", "loss 6.661"):
            assert part in line, (width, line)
        top = top_line(snap, width).plain
        assert len(top) <= width and "SFT" in top and "RUNNING" in top and "091500" in top
    assert "checkpoints 3" in progress_line(snap, 118).plain  # whole at 120 columns, not cut


def test_chart_ticks_are_whole_steps_and_labels_short():
    from cockpit.tui.widgets.run.charts import nice_ticks, tick_labels

    assert nice_ticks(1, 3, 8, whole=True) == [1, 2, 3]  # a 3-step run: 1 2 3, not 1.00 1.75 2.50
    assert all(t == int(t) for t in nice_ticks(1, 37, 6, whole=True))
    assert tick_labels(nice_ticks(-1e-5, 0.0, 3)) == ["-1e-5", "-5e-6", "0"]  # no -0.0000
    assert "-0" not in "".join(tick_labels(nice_ticks(-0.00004, 0.008, 4)))
    assert tick_labels([0.0, 2e-6, 4e-6]) == ["0", "2e-6", "4e-6"]  # a learning rate's labels stay short


@pytest.mark.anyio
async def test_nan_values_are_marked_and_the_axis_reaches_the_last_step(tmp_path):
    """grad_norm NaN from step 3 on: the chart says so in its title and marks the steps; its x axis runs to
    the run's last step like the others."""
    run_dir = copy_run("sft_run", tmp_path / "quick-test")
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    out = []
    for line in lines:
        event = json.loads(line)
        if event["type"] == "metrics" and event["step"] >= 3:
            event["grad_norm"] = "NaN"
        out.append(json.dumps(event))
    (run_dir / "events.jsonl").write_text("\n".join(out) + "\n")
    app = CockpitApp(run_dir=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: run_screen(app).settled)
        chart = app.screen.query_one("#chart-grad-norm", MetricChart)
        assert [s for _, s, _ in chart.nonfinite][0] == [3, 4, 5, 6]
        assert chart.title_line().plain.startswith("grad_norm") and "NaN" in chart.title_line().plain  # 20 cells: short
        assert chart.x_max == 6
        assert "6" in str(chart.render()).splitlines()[-1]  # the last tick is the last step
        await pilot.resize_terminal(80, 24)
        await pilot.press("1")  # the small layout: one chart at a time, the whole width
        await pilot.pause()
        assert chart.display and "x NaN/Inf at step 3 (+3)" in chart.title_line().plain


def test_engine_log_lines_are_shortened_and_wrapped():
    from cockpit.tui.widgets.run.log import display_lines, wrap

    shown_lines, _ = display_lines([
        "/home/u/.venv/lib/python3.11/site-packages/torch/utils/data/dataloader.py:759: UserWarning: 'pin_memory' is set",
        "  super().__init__(loader)",  # the warning's source line
        "",
        "{'loss': '2.1', 'grad_norm': '1.3'}",
    ])
    assert shown_lines == ["torch/utils/data/dataloader.py:759: UserWarning: 'pin_memory' is set", "{'loss': '2.1', 'grad_norm': '1.3'}"]
    rows = wrap(shown_lines[0], 30)
    assert all(len(row) <= 30 for row in rows) and "".join(r.strip() for r in rows).replace(" ", "") == shown_lines[0].replace(" ", "")


def test_home_keeps_status_step_loss_and_red_at_80_columns():
    from types import SimpleNamespace

    from cockpit.tui.widgets.home.run_table import COLUMNS, layout

    row = SimpleNamespace(name="mistral-nli-qlora-20261122-091500", preset="mistral-nli-qlora", model="mistralai/Mistral-7B-v0.3",
                          status="failed", step=8, total_steps=40, last_loss=2.3, red_findings=2)
    cells = [[c.cell(row) for c in COLUMNS]]
    narrow = [c.key for c, _ in layout(COLUMNS, cells, 78)]
    assert {"run", "status", "step", "loss", "red"} <= set(narrow)
    assert sum(w for _, w in layout(COLUMNS, cells, 78)) + 2 * len(narrow) <= 78
    assert [c.key for c, _ in layout(COLUMNS, cells, 118)] == [c.key for c in COLUMNS]


def test_home_title_names_the_runs_dir_as_typed(tmp_path, monkeypatch):
    from cockpit.tui.screens.home import title

    monkeypatch.chdir(tmp_path)
    assert title(3, Path("runs")) == "3 runs in ./runs"
    assert title(1, tmp_path / "runs") == "1 run in ./runs"
    assert title(0, Path("/srv/runs")) == "no runs in /srv/runs yet"
    assert title(2, Path("runs"), sweeps=1) == "2 runs in ./runs, 1 sweep in ./sweeps"  # a sweep's row is not a run


@pytest.mark.anyio
async def test_the_form_opens_on_the_dataset_and_shows_its_error_in_sight(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = CockpitApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        form = app.screen
        assert app.focused is form.query_one("#field-data-path")
        form.query_one("#field-data-path", Input).value = "missing.jsonl"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "file not found" in str(form.query_one("#form-error").render()), timeout=20)
        error = form.query_one("#form-error")
        assert error.region.y + error.region.height <= 24 - 1 and error.region.height > 0  # above the footer, in sight
        assert str(error.render()).startswith("error: dataset: missing.jsonl")
        assert app.focused is form.query_one("#field-data-path")
        form.query_one("#field-data-path", Input).value = ""
        assert not form.validate()
        assert "fill in a JSON, JSONL or CSV file" in str(error.render())
        assert "none until the error above is fixed" in str(form.query_one("#form-estimate").render())


@pytest.mark.anyio
async def test_a_grpo_preset_gets_grpo_fields(tmp_path, monkeypatch):
    from textual.widgets import Select

    from engine.config.options import OPTIONS

    monkeypatch.chdir(tmp_path)
    app = CockpitApp(runs_dir=tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        form = app.screen
        form.query_one("#field-preset", Select).value = "grpo-demo"
        await wait_for(pilot, lambda: form.query("#" + input_id("grpo.num_generations")))
        for option in OPTIONS:
            if option.grpo_only:
                assert form.query("#" + input_id(option.key)), option.key
            if option.sft_only:
                assert not form.query("#" + input_id(option.key)), option.key
        assert form.query_one("#" + input_id("grpo.num_generations"), Input).value == "8"
        form.query_one("#" + input_id("grpo.num_generations"), Input).value = "1"
        assert not form.validate()
        assert "generations" in str(form.query_one("#form-error").render())
