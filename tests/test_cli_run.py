"""`cockpit run` as a user runs it: exit codes, one-line errors, no half-made run dirs, stop and resume."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cockpit.cli import main
from cockpit.diagnose import diagnose_events
from cockpit.state import fold
from conftest import of_type
from engine.events import read_events


class Result:
    def __init__(self, exit_code: int, output: str, stderr: str):
        self.exit_code, self.output, self.stderr = exit_code, output, stderr


@pytest.fixture
def invoke(capsys):
    """The `cockpit` entry point in this process, as a shell would call it."""

    def _invoke(args: list[str]) -> Result:
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return _invoke


def cockpit(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def one_line_error(result) -> str:
    text = (result.stderr or result.output).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_main_command_trains_to_the_end_and_the_loss_falls(tmp_path):
    """`cockpit run --preset small-dataset`: builtin:tiny on the shipped sample, to the end."""
    result = cockpit("run", "--preset", "small-dataset", "-o", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert "completed at step 40" in result.stdout
    # the memory estimate comes before the run starts (no GPU here: the CPU run against the RAM)
    estimate_line = next(line for line in result.stdout.splitlines() if line.startswith("memory estimate: "))
    assert "on the CPU (no GPU visible)" in estimate_line and ": fits" in estimate_line
    assert result.stdout.index("memory estimate: ") < result.stdout.index("run dir: ")
    for word in ("step 40/40", "epoch", "loss", "grad_norm", "lr", "tok/s", "eval_loss"):
        assert word in result.stdout, word
    # the end-of-run memory report: on a machine without a GPU, the engine's peak RSS
    assert re.search(r"^memory: no GPU; peak RSS \d+\.\d GiB$", result.stdout, re.MULTILINE), result.stdout[-800:]
    run_dir = tmp_path / "r"
    for name in ("config.yaml", "events.jsonl", "engine.log", "findings.json", "final", "best", "checkpoints"):
        assert (run_dir / name).exists(), name
    events = list(read_events(run_dir / "events.jsonl"))
    losses = [e["loss"] for e in of_type(events, "metrics")]
    assert losses[-1] <= 0.6 * losses[0], losses
    # A healthy run raises nothing loud: this is small-dataset's own seed (train.seed 42), the fifth seed of
    # tests/test_healthy_runs.py, which runs the other four in-process.
    loud = [f"{f['severity']} {f['code']}" for f in json.loads((run_dir / "findings.json").read_text())["findings"]
            if f["severity"] in ("red", "amber")]
    assert loud == []
    types = [e["type"] for e in events]
    assert types[0] == "run_started" and types[1] == "estimate" and types[-1] == "run_finished"
    assert events[1]["line"] == estimate_line and events[1]["total_bytes"] > 0
    for kind in ("status", "dataset", "samples", "metrics", "eval", "memory", "checkpoint"):
        assert kind in types, kind
    assert all(e["v"] == 1 and isinstance(e["time"], float) for e in events)


def test_existing_run_dir_is_never_overwritten(tmp_path, invoke):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("mine")
    result = invoke(["run", "--preset", "quick-test", "-o", str(run_dir)])
    assert result.exit_code == 2
    assert "--resume" in one_line_error(result)
    assert (run_dir / "keep.txt").read_text() == "mine" and len(list(run_dir.iterdir())) == 1


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "make, args, expect",
    [
        (None, ["--dataset", "/nonexistent/data.jsonl"], "/nonexistent/data.jsonl"),
        (lambda p: _jsonl(p, ['{"prompt": "a", "completion": "b"}', '{"prompt": "a", "comp']), [], ":2"),
        (lambda p: _jsonl(p, [{"prompt": "a"}, {"prompt": "b"}]), [], "completion"),
        (lambda p: _jsonl(p, [{"prompt": "a", "completion": "b", "metadata": m} for m in ["train", "Eval", "test"]]), [], "case-sensitive"),
        (lambda p: _jsonl(p, [{"prompt": "a", "completion": "b", "metadata": "train"}] * 3), [], "eval"),
        (None, ["--preset", "no-such-preset"], "unknown preset"),
        (None, ["--set", "train.learnig_rate=1e-5"], "train.learning_rate"),
        (None, ["--set", "train.max_length=long"], "train.max_length"),
        (None, ["--lr", "abc"], "--lr"),
    ],
    ids=["missing-file", "invalid-json-line", "missing-field", "metadata-values", "empty-eval", "unknown-preset", "unknown-key", "wrong-type", "wrong-flag-type"],
)
def test_bad_input_one_line_exit_2_before_any_model(make, args, expect, tmp_path, invoke):
    data_args = []
    if make is not None:
        path = make(tmp_path / "data.jsonl")
        data_args = ["--dataset", str(path)]
    out = tmp_path / "run"
    base = [] if "--preset" in args else ["--preset", "quick-test"]
    result = invoke(["run", *base, *data_args, *args, "-o", str(out)])
    assert result.exit_code == 2, result.output
    line = one_line_error(result)
    assert expect in line
    assert not out.exists()  # nothing half-made


def test_hub_id_without_network_fails_in_one_line(tmp_path):
    result = cockpit("run", "--preset", "quick-test", "--model", "Qwen/Qwen2.5-0.5B-Instruct", "-o", str(tmp_path / "r"), timeout=120)
    assert result.returncode == 2
    line = [l for l in result.stderr.splitlines() if l.strip()][-1]
    assert "Qwen/Qwen2.5-0.5B-Instruct" in line and "builtin:tiny" in line and "local" in line
    assert not (tmp_path / "r").exists()


def test_local_model_dir_trains(tmp_path, run_engine):
    """A saved model directory works as --model (here: a full fine-tune's final/)."""
    code, _, first = run_engine(sets=["train.max_steps=1", "model.finetune=full", "train.eval_strategy=no"])
    assert code == 0
    code, events, _ = run_engine(sets=["train.max_steps=1", f"model.name_or_path={first / 'final'}", "train.eval_strategy=no"])
    assert code == 0, of_type(events, "error")
    assert of_type(events, "run_started")[0]["config"]["model"]["name_or_path"] == str(first / "final")


def _wait_for_step(events_path: Path, step: int, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if events_path.exists() and any(e["type"] == "metrics" and e["step"] >= step for e in read_events(events_path)):
            return
        time.sleep(0.2)
    raise AssertionError(f"no metrics at step {step} within {timeout}s")


def test_ctrl_c_stops_with_checkpoint_and_resume_continues_exactly(tmp_path, run_engine):
    sets = ["train.max_steps=6", "train.save_steps=100", "train.eval_strategy=no", "train.logging_steps=1"]
    # The reference: the same run, never interrupted.
    code, reference, _ = run_engine(sets=sets)
    assert code == 0
    ref_loss = {e["step"]: e["loss"] for e in of_type(reference, "metrics")}

    run_dir = tmp_path / "r"
    args = [sys.executable, "-m", "cockpit.cli", "run", "--preset", "quick-test", "-o", str(run_dir)]
    for s in sets:
        args += ["--set", s]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_step(run_dir / "events.jsonl", 2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert f"cockpit run --resume {run_dir}" in stderr  # on stderr: a closed stdout cannot lose it
    (checkpoint,) = of_type(list(read_events(run_dir / "events.jsonl")), "checkpoint")
    stopped_at = checkpoint["step"]
    assert stopped_at < 6 and (run_dir / "checkpoints" / f"checkpoint-{stopped_at}").is_dir()
    assert not (run_dir / "final").exists()

    result = cockpit("run", "--resume", str(run_dir))
    assert result.returncode == 0, result.stderr
    events = list(read_events(run_dir / "events.jsonl"))
    assert [e["status"] for e in of_type(events, "run_finished")] == ["stopped", "completed"]
    resumed = [e for e in of_type(events, "metrics") if e["time"] > checkpoint["time"]]
    assert resumed[0]["step"] == stopped_at + 1  # same step, no restart
    for e in resumed:  # same optimizer, scheduler and data order: the same losses as the uninterrupted run
        assert math.isclose(e["loss"], ref_loss[e["step"]], rel_tol=1e-3), (e["step"], e["loss"], ref_loss[e["step"]])
    assert (run_dir / "final").is_dir()
    # The resumed command prints only what is new: no step of the first engine, one start-up header.
    printed = [int(m.group(1)) for m in re.finditer(r"^step (\d+)/", result.stdout, re.M)]
    assert printed and min(printed) > stopped_at, result.stdout
    assert result.stdout.count("preparing data") == 1 and "divergence" not in result.stdout
    # The run folds, and is diagnosed, as the uninterrupted one is (the false red divergence is gone).
    assert_same_fold(events, reference)
    saved = {f["code"] for f in json.loads((run_dir / "findings.json").read_text())["findings"]}
    assert saved == {f.code for f in diagnose_events(reference)}


def assert_same_fold(events: list[dict], reference: list[dict]) -> None:
    """A run of several engine processes folds to the state of one that ran straight through."""
    got, want = fold(events), fold(reference)
    assert (got.n_logs, len(got.loss), got.step) == (want.n_logs, len(want.loss), want.step)
    for a, b in zip(got.loss.points(1000)[1] + [got.first_loss], want.loss.points(1000)[1] + [want.first_loss]):
        assert math.isclose(a, b, rel_tol=1e-3)
    assert got.status(False) == want.status(False) == "completed"
    assert {f.code: f.severity for f in diagnose_events(events)} == {f.code: f.severity for f in diagnose_events(reference)}


def test_resume_after_kill_9_repeats_steps_and_folds_like_an_uninterrupted_run(tmp_path, run_engine):
    """kill -9 after a checkpoint: the resumed engine trains the steps after it again; the fold keeps each step once."""
    from cockpit.supervisor import RunHandle, write_config
    from engine import config as config_mod

    sets = ["train.max_steps=8", "train.save_steps=3", "train.eval_strategy=no", "train.logging_steps=1"]
    code, reference, _ = run_engine(sets=sets)
    assert code == 0
    run_dir = tmp_path / "killed"
    write_config(run_dir, config_mod.resolve(preset="quick-test", sets=sets))
    proc = subprocess.Popen([sys.executable, "-m", "engine", str(run_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_step(run_dir / "events.jsonl", 4)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first = list(read_events(run_dir / "events.jsonl"))
    handle = RunHandle.attach(run_dir)
    handle.catch_up()
    assert not handle.is_running() and handle.state.status(False) == "ended"  # no engine holds the run dir
    code, events, _ = run_engine(resume_dir=run_dir)
    assert code == 0
    started = of_type(events, "run_started")
    assert [s.get("resumed_from") for s in started] == [None, 3]
    steps = [e["step"] for e in of_type(events, "metrics")]
    assert steps.count(4) == 2  # the second engine trained step 4 again
    assert max(e["step"] for e in of_type(first, "metrics")) >= 4
    assert_same_fold(events, reference)


def test_resume_refuses_new_options(tmp_path, invoke):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("run: {}\n")
    result = invoke(["run", "--resume", str(run_dir), "--lr", "1e-3"])
    assert result.exit_code == 2
    assert "--resume" in one_line_error(result)


def test_a_second_engine_on_a_live_run_dir_is_refused(tmp_path):
    """One engine per run dir: a resume (or a second engine) while one trains is refused in one line, writing nothing."""
    from cockpit.supervisor import RunHandle, write_config
    from engine import config as config_mod

    run_dir = tmp_path / "live"
    write_config(run_dir, config_mod.resolve(preset="quick-test", sets=["train.max_steps=500", "train.logging_steps=1", "train.eval_strategy=no"]))
    proc = subprocess.Popen([sys.executable, "-m", "engine", str(run_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_step(run_dir / "events.jsonl", 1)
        watcher = RunHandle.attach(run_dir)
        watcher.catch_up()
        assert watcher.is_running() and watcher.state.status(watcher.is_running()) == "running"
        result = cockpit("run", "--resume", str(run_dir))
        assert result.returncode == 2
        line = one_line_error(result)
        assert "in use" in line and f"pid {proc.pid}" in line and "cockpit watch" in line
        second = subprocess.run([sys.executable, "-m", "engine", str(run_dir), "--resume"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and "in use" in second.stderr
        assert len(of_type(list(read_events(run_dir / "events.jsonl")), "run_started")) == 1
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert not RunHandle.attach(run_dir).is_running()  # the kernel dropped the lock with the process


def test_the_engine_exit_code_survives_its_fast_exit(tmp_path):
    """The engine ends with os._exit after its last exit handler: its codes must still be argparse's and its own."""
    bogus = subprocess.run([sys.executable, "-m", "engine", "--bogus"], capture_output=True, text=True, timeout=60)
    assert bogus.returncode == 2 and "python -m engine: error:" in bogus.stderr
    missing = subprocess.run([sys.executable, "-m", "engine", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such config file" in missing.stderr and "Traceback" not in missing.stderr
