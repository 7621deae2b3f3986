"""The TUI on real runs of builtin:tiny started from its form: the log follows through hidden panels and
resizes, quitting with "stop" still leaves the run's final findings.json, a run the engine refuses
leaves no run dir, and a run whose TUI is gone gets its findings all the same."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import pytest

pytest.importorskip("textual")

from conftest import pilot_wait  # noqa: E402
from textual.widgets import Input  # noqa: E402

from cockpit.tui import new_run  # noqa: E402
from cockpit.tui.app import CockpitApp  # noqa: E402
from cockpit.tui.screens.new_run import NewRunScreen, input_id  # noqa: E402
from cockpit.tui.screens.quit import QuitScreen  # noqa: E402
from cockpit.tui.screens.run import RunScreen  # noqa: E402
from cockpit.tui.widgets.run.log import EngineLog, ErrorPanel, display_lines  # noqa: E402
from cockpit.tui.widgets.run.samples import SamplesPanel  # noqa: E402
from engine import run_dir as names  # noqa: E402

WIDE, SMALL = (120, 40), (80, 24)
wait_for = functools.partial(pilot_wait, timeout=30.0)


def wait_until(condition, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what or condition}"
        time.sleep(0.1)


def engine_last_line(run_dir: Path) -> str | None:
    """engine.log's last line as the log panel shows it (a progress bar's last state, paths shortened)."""
    raw = (run_dir / names.LOG).read_bytes().decode("utf-8", errors="replace").split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    shown, _ = display_lines([line.rstrip("\r").rsplit("\r", 1)[-1] for line in raw])
    return shown[-1] if shown else None


def log_current(screen: RunScreen) -> bool:
    """The panel's last line is engine.log's last line, and it is in sight (scrolled to the end)."""
    log = screen.query_one(EngineLog)
    return (log.display and log.last_line is not None and log.last_line == engine_last_line(Path(screen.handle.run_dir))
            and log.scroll_y >= log.max_scroll_y)


def saved_codes(run_dir: Path) -> list[str]:
    return [f["code"] for f in json.loads((run_dir / names.FINDINGS).read_text(encoding="utf-8"))["findings"]]


def final_codes(run_dir: Path) -> list[str]:
    """The findings of the whole run, folded once more from its events, whole-run rules included."""
    from cockpit.diagnose.finding import sort_findings
    from cockpit.supervisor import RunHandle

    handle = RunHandle.attach(run_dir)
    handle.catch_up()
    handle.diagnoser.finish()
    return [f.code for f in sort_findings(handle.diagnoser.findings)]


async def start_from_form(pilot, app, values: dict[str, str], extra: str = "", model: str | None = None) -> None:
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen), what="the form")
    form = app.screen
    for key, value in values.items():
        form.query_one("#" + input_id(key), Input).value = value
    if model is not None:
        form.query_one("#field-model-name-or-path", Input).value = model
    form.query_one("#field-extra", Input).value = extra
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), timeout=60, what="the run screen")


@pytest.mark.anyio
async def test_the_log_follows_the_engine_through_hidden_panels_and_resizes(tmp_path, monkeypatch):
    """On a live run: 3 4 5 hide the right column (the left widens), 3 4 5 show it again, 120x40 ->
    80x24 -> 120x40; after each the log's last line is the engine's last line, in sight."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    app = CockpitApp(runs_dir=tmp_path / "runs", poll_s=0.1)
    async with app.run_test(size=WIDE) as pilot:
        await start_from_form(pilot, app, {"train.max_steps": "24"},
                              extra="train.save_steps=1000 train.eval_steps=15")
        screen = app.screen
        await wait_for(pilot, lambda: screen.last is not None and screen.last.step >= 3, timeout=90, what="step 3")
        for key in "345":
            await pilot.press(key)
        assert not screen.query_one("#right").display
        assert screen.query_one("#left").size.width == screen.size.width  # no empty column
        await wait_for(pilot, lambda: screen.last.step >= 6, what="step 6")
        for key in "345":
            await pilot.press(key)
        await wait_for(pilot, lambda: log_current(screen), timeout=10, what="the log after 3 4 5 twice")
        await pilot.resize_terminal(*SMALL)
        await pilot.press("4")  # at 80x24 one panel shows at a time: the log
        await wait_for(pilot, lambda: log_current(screen), timeout=10, what="the log at 80x24")
        await pilot.resize_terminal(*WIDE)
        await wait_for(pilot, lambda: log_current(screen), timeout=10, what="the log back at 120x40")
        await wait_for(pilot, lambda: screen.settled, timeout=120, what="the end of the run")
        assert screen.last.status == "completed"
        await wait_for(pilot, lambda: log_current(screen), timeout=10, what="the log at the end")


@pytest.mark.anyio
async def test_quit_with_stop_leaves_the_final_findings(tmp_path, monkeypatch):
    """q while the run trains asks; "stop" quits at once, the engine checkpoints and stops, and the
    run's findings.json is written after its end (by cockpit/run_end.py: the TUI is gone by then)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    app = CockpitApp(runs_dir=tmp_path / "runs", poll_s=0.1)
    async with app.run_test(size=WIDE) as pilot:
        await start_from_form(pilot, app, {"train.max_steps": "400"}, extra="train.save_steps=1000 train.eval_strategy=no")
        screen = app.screen
        handle = screen.handle
        await wait_for(pilot, lambda: screen.last is not None and screen.last.step >= 2, timeout=90, what="step 2")
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("s")
    run_dir = Path(handle.run_dir)
    handle.wait(timeout=120)
    events = [json.loads(line) for line in (run_dir / names.EVENTS).read_text(encoding="utf-8").splitlines()]
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "stopped"
    assert list((run_dir / names.CHECKPOINTS).glob("checkpoint-*"))
    findings = run_dir / names.FINDINGS
    wait_until(lambda: findings.is_file() and findings.stat().st_mtime >= events[-1]["time"], what="the final findings.json")
    assert saved_codes(run_dir) == final_codes(run_dir)


def test_a_run_whose_tui_is_gone_still_gets_its_findings(tmp_path, monkeypatch):
    """The form's launch path, and nobody watching (as after the terminal closed): findings.json appears."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    request = new_run.for_preset("quick-test")
    request.values["train.max_steps"] = "3"
    request.extra = "train.eval_strategy=no"
    handle = new_run.launch(new_run.resolve(request))
    run_dir = Path(handle.run_dir)
    assert handle.wait(timeout=120) == 0
    wait_until(lambda: (run_dir / names.FINDINGS).is_file(), what="findings.json")
    assert saved_codes(run_dir) == final_codes(run_dir)
    assert "too-few-steps" in saved_codes(run_dir)  # a whole-run rule: it had its say after the end


@pytest.mark.anyio
async def test_a_model_that_cannot_be_downloaded_leaves_no_run_dir(tmp_path, monkeypatch):
    """As `cockpit run` does: the engine refuses the run (no network here), the run dir goes, and the
    screen says so; the samples panel stops waiting, and the crash finding's fix is the message's."""
    monkeypatch.chdir(tmp_path)
    app = CockpitApp(runs_dir=tmp_path / "runs", poll_s=0.1)
    async with app.run_test(size=WIDE) as pilot:
        await start_from_form(pilot, app, {}, model="nobody/no-such-model")
        screen = app.screen
        run_dir = Path(screen.handle.run_dir)
        await wait_for(pilot, lambda: screen.last is not None and screen.last.removed, timeout=120, what="the run dir's removal")
        assert not run_dir.exists()
        # The panel is drawn on the refresh after the fold that saw the removal.
        await wait_for(pilot, lambda: "run dir was removed" in str(screen.query_one(ErrorPanel).render()), timeout=10,
                       what="the error panel")
        error = str(screen.query_one(ErrorPanel).render())
        assert "cannot download model 'nobody/no-such-model'" in error and "run dir was removed" in error
        assert "failed before it prepared the data" in str(screen.query_one("#sample-text").render())
        assert not screen.query_one(SamplesPanel).samples
        crash = next(f for f in screen.query_one("#findings").findings if f.code == "crash")
        assert crash.fix.startswith("use --model builtin:tiny") and "names the fix" not in crash.fix
