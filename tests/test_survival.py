"""Faults made for real on builtin:tiny, and what survives them: NaN from a huge learning rate, a
kill -9 during a save, truncated and half-written checkpoints, SIGTERM and a closed pipe to
`cockpit run`, a second Ctrl-C."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import of_type
from engine import checkpoints
from engine import run_dir as names
from engine.events import read_events

ENV = {**os.environ, "OMP_NUM_THREADS": "2"}
STEPS = ["train.logging_steps=1", "train.eval_strategy=no"]


def finite_adapter(checkpoint: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(checkpoint / "adapter_model.safetensors"))
    return all(bool(torch.isfinite(t).all()) for t in tensors.values())


def wait_for(condition, timeout: float = 180, what: str = "") -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def metrics_at(run_dir: Path, step: int) -> bool:
    path = run_dir / names.EVENTS
    return path.exists() and any(e["type"] == "metrics" and e["step"] >= step for e in read_events(path))


def test_nan_guard_stops_at_once_and_no_nan_weights_are_saved(run_engine):
    sets = STEPS + ["train.learning_rate=1000", "train.save_steps=1", "train.save_total_limit=1", "train.max_steps=12"]
    code, events, run_dir = run_engine(sets=sets)
    assert code == 1
    (error,) = of_type(events, "error")
    assert error["kind"] == "nan" and error["code"].startswith("nan_") and error["overrides"]["train.learning_rate"] < 1000
    assert of_type(events, "run_finished")[-1]["status"] == "failed"
    assert not (run_dir / names.FINAL).exists()
    kept = [path for _, path in names.checkpoint_dirs(run_dir)]
    assert kept and all(finite_adapter(p) for p in kept), kept  # the healthy checkpoint is the one rotation kept
    assert error["step"] < 12 and max(e["step"] for e in of_type(events, "metrics")) == error["step"]
    # Without the guard, TRL's behaviour: it trains to the end on NaN weights and saves them.
    code, events, run_dir = run_engine(sets=sets + ["train.nan_guard=false"])
    assert code == 0 and not of_type(events, "error")
    assert not finite_adapter(names.checkpoint_dirs(run_dir)[-1][1])


def test_incomplete_checkpoints_are_skipped_named_and_set_aside(run_engine):
    sets = STEPS + ["train.max_steps=6", "train.save_steps=2", "train.save_total_limit=3"]
    code, _, run_dir = run_engine(sets=sets)
    assert code == 0 and [s for s, _ in names.checkpoint_dirs(run_dir)] == [2, 4, 6]
    newest = run_dir / names.CHECKPOINTS / "checkpoint-6"
    optimizer = newest / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])  # a save cut short
    (run_dir / names.CHECKPOINTS / "checkpoint-999").mkdir()  # a save that wrote nothing
    code, events, _ = run_engine(resume_dir=run_dir)
    assert code == 0
    said = [e["message"] for e in of_type(events, "status") if str(e.get("message", "")).startswith("skipped")]
    assert any("checkpoint-999: incomplete" in m and "resuming from checkpoint-4" in m for m in said), said
    assert any("checkpoint-6: incomplete (optimizer.pt truncated" in m for m in said), said
    assert of_type(events, "run_started")[-1]["resumed_from"] == 4
    assert sorted(p.name for p in (run_dir / names.SKIPPED).iterdir()) == ["checkpoint-6", "checkpoint-999"]
    assert of_type(events, "run_finished")[-1]["status"] == "completed"


def test_a_missing_optimizer_is_refused_unless_the_user_goes_on_without_it(run_engine, tmp_path):
    sets = STEPS + ["train.max_steps=6", "train.save_steps=3", "train.save_total_limit=2"]
    code, _, run_dir = run_engine(sets=sets)
    assert code == 0
    import shutil

    shutil.rmtree(run_dir / names.CHECKPOINTS / "checkpoint-6")  # as if stopped after step 3
    (run_dir / "final").rename(tmp_path / "final")
    checkpoint = run_dir / names.CHECKPOINTS / "checkpoint-3"
    for name in ("optimizer.pt", "rng_state.pth"):
        (checkpoint / name).unlink()  # deleted to save space: a resume would restore a fresh optimizer
    result = subprocess.run([sys.executable, "-m", "cockpit.cli", "run", "--resume", str(run_dir)],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 2, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert "checkpoint-3: optimizer.pt missing" in line and f"cockpit run --resume {run_dir} --partial-resume" in line
    assert checkpoint.is_dir()  # refused, not set aside: it is what the user would go on from

    code, events, _ = run_engine(resume_dir=run_dir, partial=True)
    assert code == 0
    said = [e["message"] for e in of_type(events, "status") if e.get("phase") == "resuming"]
    assert said[-1] == "resuming from checkpoint-3 without optimizer.pt, rng_state.pth: they start fresh (--partial-resume)"
    assert of_type(events, "run_started")[-1]["resumed_from"] == 3
    assert [e["step"] for e in of_type(events, "metrics")][-3:] == [4, 5, 6]


def test_resume_with_no_complete_checkpoint_is_refused_in_one_line(tmp_path):
    from cockpit.supervisor import write_config
    from engine import config as config_mod

    run_dir = tmp_path / "r"
    write_config(run_dir, config_mod.resolve(preset="quick-test"))
    (run_dir / names.CHECKPOINTS / "checkpoint-999").mkdir(parents=True)
    result = subprocess.run([sys.executable, "-m", "cockpit.cli", "run", "--resume", str(run_dir)],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no complete checkpoint" in lines[0] and "checkpoint-999" not in os.listdir(run_dir / names.CHECKPOINTS)


def test_kill_9_during_a_save_resumes_from_the_last_complete_checkpoint(tmp_path):
    """The engine is killed while a checkpoint dir has no completion marker yet (twice); each resume
    takes the last complete checkpoint and the run ends with the losses of one that was never killed."""
    from cockpit.supervisor import write_config
    from engine import config as config_mod

    sets = STEPS + ["train.max_steps=16", "train.save_steps=1", "train.save_total_limit=2"]
    run_dir = tmp_path / "killed"
    write_config(run_dir, config_mod.resolve(preset="quick-test", sets=sets))

    def saving() -> bool:
        return any(not (p / names.COMPLETE).exists() for _, p in names.checkpoint_dirs(run_dir))

    for attempt in range(2):
        args = [sys.executable, "-m", "engine", str(run_dir)] + (["--resume"] if attempt else [])
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        wait_for(lambda: metrics_at(run_dir, 2 + 4 * attempt) and saving(), what="a save in progress")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    final = subprocess.run([sys.executable, "-m", "engine", str(run_dir), "--resume"], capture_output=True, text=True, env=ENV, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    events = list(read_events(run_dir / names.EVENTS))
    assert of_type(events, "run_finished")[-1]["status"] == "completed"
    assert all(checkpoints.problem(p) is None for _, p in names.checkpoint_dirs(run_dir))
    losses: dict[int, list[float]] = {}
    for e in of_type(events, "metrics"):
        losses.setdefault(e["step"], []).append(e["loss"])
    for step, values in losses.items():  # a step trained twice (after a resume) gives the same loss
        assert all(math.isclose(v, values[0], rel_tol=1e-3) for v in values), (step, values)


def _cockpit_run(run_dir: Path, *more: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "cockpit.cli", "run", "--preset", "quick-test", "-o", str(run_dir),
            "--max-steps", "400", *sum((["--set", s] for s in STEPS), [])]
    return subprocess.Popen(args + list(more), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _engine_gone(run_dir: Path) -> bool:
    return names.holder(run_dir) is None


def test_sigterm_to_cockpit_run_stops_the_run_with_a_checkpoint(tmp_path):
    run_dir = tmp_path / "term"
    proc = _cockpit_run(run_dir)
    wait_for(lambda: metrics_at(run_dir, 2), what="step 2")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert f"resume with: cockpit run --resume {run_dir}" in stderr and "SIGTERM" in stderr
    assert of_type(list(read_events(run_dir / names.EVENTS)), "run_finished")[-1]["status"] == "stopped"
    assert _engine_gone(run_dir) and names.checkpoint_dirs(run_dir)


def test_a_closed_pipe_stops_the_run_instead_of_orphaning_it(tmp_path):
    """`cockpit run ... | head -3`: the run stops with a checkpoint; the engine is not left training."""
    run_dir = tmp_path / "pipe"
    proc = _cockpit_run(run_dir)
    for _ in range(3):
        proc.stdout.readline()
    proc.stdout.close()  # what `head` does once it has its lines
    proc.wait(timeout=180)
    stderr = proc.stderr.read()
    assert proc.returncode == 130, stderr
    assert "stdout closed" in stderr and f"cockpit run --resume {run_dir}" in stderr
    assert of_type(list(read_events(run_dir / names.EVENTS)), "run_finished")[-1]["status"] == "stopped"
    assert _engine_gone(run_dir)


def test_a_second_ctrl_c_kills_and_exits_130(tmp_path):
    run_dir = tmp_path / "twice"
    proc = _cockpit_run(run_dir)
    wait_for(lambda: metrics_at(run_dir, 1), what="step 1")
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    wait_for(lambda: _engine_gone(run_dir), timeout=30, what="the engine to die")


def _small_disk(tmp_path: Path, mib: int) -> Path:
    """A real tmpfs of `mib` MiB (root only); skipped where mounting is not allowed."""
    import pytest

    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    return mount


def test_a_disk_that_fills_during_the_run_is_said_and_resume_works_after(tmp_path):
    from cockpit.supervisor import write_config
    from engine import config as config_mod

    disk = _small_disk(tmp_path, 24)
    try:
        run_dir = disk / "run"
        write_config(run_dir, config_mod.resolve(preset="quick-test", sets=STEPS + ["train.max_steps=12", "train.save_steps=4"]))
        proc = subprocess.Popen([sys.executable, "-m", "engine", str(run_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        wait_for(lambda: (run_dir / names.CHECKPOINTS / "checkpoint-4" / names.COMPLETE).exists(), what="checkpoint-4")
        import shutil

        filler = disk / "filler"
        filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - 300 * 1024))  # checkpoint-8 cannot fit
        assert proc.wait(timeout=180) == 1
        events = list(read_events(run_dir / names.EVENTS))
        (error,) = of_type(events, "error")
        assert error["kind"] == "disk" and "is full" in error["message"] and "--resume" in error["message"]
        assert of_type(events, "run_finished")[-1]["status"] == "failed"  # written from the reserve
        from cockpit.diagnose import diagnose_events

        assert any(f.title == "The disk is full" for f in diagnose_events(events))
        filler.unlink()
        result = subprocess.run([sys.executable, "-m", "engine", str(run_dir), "--resume"], capture_output=True, text=True, env=ENV, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        events = list(read_events(run_dir / names.EVENTS))
        assert of_type(events, "run_finished")[-1]["status"] == "completed"
        assert of_type(events, "run_started")[-1]["resumed_from"] == 4 and (run_dir / names.SKIPPED / "checkpoint-8").is_dir()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_disk_too_small_for_the_checkpoints_is_refused_before_the_model_loads(tmp_path):
    disk = _small_disk(tmp_path, 2)
    try:
        result = subprocess.run([sys.executable, "-m", "cockpit.cli", "run", "--preset", "quick-test", "-o", str(disk / "run")],
                                capture_output=True, text=True, env=ENV, timeout=120)
        assert result.returncode == 2
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "MiB free" in lines[0] and "save_total_limit" in lines[0]
        assert not (disk / "run").exists()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _claim(path: str, barrier, results) -> None:
    from cockpit.supervisor import RunDirError, new_run_dir

    barrier.wait()
    try:
        new_run_dir({}, path)
        results.put("won")
    except RunDirError as exc:
        results.put(str(exc))


def test_two_starts_on_one_output_dir_at_once_one_wins(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for trial in range(20):  # both released by one barrier: the window a check-then-mkdir leaves open
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_claim, args=(str(tmp_path / f"same{trial}"), barrier, results)) for _ in range(2)]
        for p in procs:
            p.start()
        outcomes = sorted(results.get(timeout=30) for _ in procs)
        for p in procs:
            p.join()
        assert outcomes[1] == "won" and outcomes[0] != "won", outcomes
        assert "cockpit watch" in outcomes[0] or "already exists" in outcomes[0], outcomes


def test_two_cockpit_runs_on_one_output_dir_train_once(tmp_path):
    run_dir = tmp_path / "same"
    cmd = [sys.executable, "-m", "cockpit.cli", "run", "--preset", "quick-test", "-o", str(run_dir)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(2)]
    results = sorted((p.wait(timeout=300), p.stderr.read()) for p in procs)
    assert [code for code, _ in results] == [0, 2], results
    (line,) = [line for line in results[1][1].splitlines() if line.strip()]
    assert str(run_dir) in line
    events = list(read_events(run_dir / names.EVENTS))
    assert len(of_type(events, "run_started")) == 1 and len(of_type(events, "run_finished")) == 1


def test_a_run_stopped_at_its_last_step_resumes_to_its_end_without_an_extra_step(run_engine, tmp_path):
    """Stopped (or killed before final/) right at its last step: the resume has nothing to train.
    transformers would run one step more (step 9 of 8); the engine loads the checkpoint and ends."""
    import threading

    run_dir = tmp_path / "run1"  # the fixture's first run dir

    def stop_at_the_last_step() -> None:  # after step 7's log the next stop request lands on step 8
        wait_for(lambda: metrics_at(run_dir, 7), what="step 7")
        (run_dir / names.CONTROL).write_text("stop\n")

    thread = threading.Thread(target=stop_at_the_last_step, daemon=True)
    thread.start()
    code, events, _ = run_engine(sets=STEPS + ["train.max_steps=8", "train.save_steps=4"])
    thread.join(timeout=5)
    assert code == 130 and of_type(events, "run_finished")[-1]["status"] == "stopped"
    assert of_type(events, "checkpoint")[-1]["step"] == 8 and not (run_dir / names.FINAL).exists()
    code, events, _ = run_engine(resume_dir=run_dir)
    assert code == 0
    assert max(e["step"] for e in of_type(events, "metrics")) == 8  # no step 9
    finished = of_type(events, "run_finished")[-1]
    assert finished["status"] == "completed" and finished["step"] == 8
    assert (run_dir / names.FINAL / "adapter_model.safetensors").is_file()
