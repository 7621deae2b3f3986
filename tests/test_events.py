"""The event contract: one JSON object a line, NaN survives, readers tolerate half lines and new types."""

from __future__ import annotations

import json
import math

from engine.events import EventTail, EventWriter, make_event, number, read_events


def test_roundtrip_with_nan_and_inf(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as w:
        w.emit("metrics", step=3, loss=float("nan"), grad_norm=float("inf"), lr=1e-4)
    (event,) = list(read_events(path))
    assert event["v"] == 1 and event["type"] == "metrics" and event["step"] == 3
    assert math.isnan(number(event["loss"])) and number(event["grad_norm"]) == math.inf
    json.loads(path.read_text())  # strict JSON: no bare NaN


def test_tail_waits_for_the_end_of_a_half_written_line(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read_new() == []  # no file yet
    line = json.dumps(make_event("status", phase="training"))
    path.write_text(line[:10])
    assert tail.read_new() == []
    with open(path, "a") as f:
        f.write(line[10:] + "\n" + json.dumps(make_event("some_future_type", x=1)) + "\n")
    events = tail.read_new()
    assert [e["type"] for e in events] == ["status", "some_future_type"]


def test_reader_skips_broken_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"v": 1, "type": "status", "step": null}\nnot json\n[1, 2]\n{"v": 1, "type": "metr')
    assert [e["type"] for e in read_events(path)] == ["status"]


def test_a_tail_kept_open_reads_the_last_events_after_the_run_dir_is_removed(tmp_path):
    """The TUI's run and cockpit/run_end.py race at a refused run's end: run_end removes the dir as the
    engine exits, maybe before the TUI read the error. A tail kept open still reads it."""
    import shutil

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = run_dir / "events.jsonl"
    kept, plain = EventTail(path, keep_open=True), EventTail(path)
    with EventWriter(path) as w:
        w.emit("run_started", config={})
        assert [e["type"] for e in kept.read_new()] == [e["type"] for e in plain.read_new()] == ["run_started"]
        w.emit("error", kind="config", message="cannot download model 'nobody/no-such-model'")
        w.emit("run_finished", status="failed")
    shutil.rmtree(run_dir)
    assert plain.read_new() == []  # reopened by name: gone
    assert [e["type"] for e in kept.read_new()] == ["error", "run_finished"]
