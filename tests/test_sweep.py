"""`cockpit sweep` as a user runs it, for real on builtin:tiny: a 3-trial grid whose diverging trial
is pruned by its finding, a kill -9 of the sweep and the same command again, Ctrl-C and --resume,
Optuna's pruner on the eval reports of a random search, and bad input refused before any trial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine import run_dir as names
from engine.events import read_events

ENV = {**os.environ, "OMP_NUM_THREADS": "2"}
GRID = ["sweep", "--preset", "quick-test", "--set", "train.learning_rate=1e-3,3e-3,1000"]


def cockpit(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=timeout)


def start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cockpit.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd, env=ENV)


def wait_for(condition, timeout: float = 240, what: str = "") -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def events(run_dir: Path) -> list[dict]:
    path = run_dir / names.EVENTS
    return list(read_events(path)) if path.exists() else []


def of_type(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in events(run_dir) if e.get("type") == kind]


def the_sweep(root: Path) -> Path:
    (sweep_dir,) = [p for p in (root / "sweeps").iterdir() if p.is_dir()]
    return sweep_dir


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """The 3-trial grid (learning rates 1e-3, 3e-3 and 1000 with the NaN guard on), killed with -9 while
    its third trial trains, then the same command again. Returns what the tests look at."""
    cwd = tmp_path_factory.mktemp("grid")
    proc = start(*GRID, cwd=cwd)
    wait_for(lambda: (cwd / "sweeps").is_dir() and any((cwd / "sweeps").iterdir()), what="the sweep dir")
    sweep_dir = the_sweep(cwd)
    third = sweep_dir / "trial-002"
    wait_for(lambda: bool(of_type(third, "metrics")) or proc.poll() is not None, what="the third trial's first step")
    proc.kill()  # kill -9: no handler runs; the third trial's engine, in its own session, trains on
    first_out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, first_out
    done_before = {d.name: (d / names.EVENTS).read_bytes() for d in (sweep_dir / "trial-000", sweep_dir / "trial-001")}
    again = cockpit(*GRID, cwd=cwd)
    compared = cockpit("compare", str(sweep_dir), "--format", "json", cwd=cwd)
    return {"cwd": cwd, "dir": sweep_dir, "first": first_out, "again": again, "before": done_before,
            "json": json.loads(compared.stdout), "compare_code": compared.returncode}


def test_the_same_command_after_kill_9_finishes_the_sweep_without_rerunning_trials(grid):
    again, sweep_dir = grid["again"], grid["dir"]
    assert again.returncode == 0, again.stdout + again.stderr
    assert "continuing" in again.stdout and sweep_dir.name in again.stdout
    assert [p.name for p in (grid["cwd"] / "sweeps").iterdir()] == [sweep_dir.name]  # no second sweep
    for name, before in grid["before"].items():  # finished trials: not one byte more, one engine each
        assert (sweep_dir / name / names.EVENTS).read_bytes() == before, name
        assert len(of_type(sweep_dir / name, "run_started")) == 1
    third = sweep_dir / "trial-002"
    assert of_type(third, "run_finished")[-1]["status"] == "completed"
    assert not [line for line in again.stdout.splitlines() if line.startswith(("trial-000", "trial-001"))]  # nothing done to them
    assert names.holder(third) is None  # no engine left behind


def test_the_diverging_trial_is_pruned_by_its_finding(grid):
    runs = {r["values"]["train.learning_rate"]: r for r in grid["json"]["runs"]}
    diverged = runs[1000.0]
    assert diverged["status"] == "pruned" and diverged["why"].startswith("loss-nan at step")
    assert "loss-nan" in diverged["red"] and diverged["best"] is None
    assert "pruned: loss-nan" in grid["first"]
    run_dir = grid["dir"] / diverged["name"]
    assert not (run_dir / names.FINAL).exists()


def test_table_and_compare_json_list_every_trial_with_its_values_and_the_best_has_the_lowest_eval_loss(grid):
    data = grid["json"]
    assert grid["compare_code"] == 0
    assert data["objective"] == "eval_loss" and data["keys"] == ["train.learning_rate"]
    assert sorted(r["values"]["train.learning_rate"] for r in data["runs"]) == [0.001, 0.003, 1000.0]
    completed = [r for r in data["runs"] if r["status"] == "completed"]
    assert len(completed) == 2
    lowest = min(completed, key=lambda r: r["best"])
    # The lowest eval_loss any trial logged, read from the events themselves.
    logged = {r["name"]: min(e["eval_loss"] for e in of_type(grid["dir"] / r["name"], "eval")) for r in completed}
    assert data["best"] == lowest["name"] == min(logged, key=logged.get)
    assert [r["is_best"] for r in data["runs"]].count(True) == 1
    assert lowest["best_model"].endswith(f"{lowest['name']}/best") and Path(lowest["best_model"]).is_dir()
    for r in completed:
        assert r["best_step"] == 6 and r["last_loss"] > 0 and r["tokens_per_second"] > 0 and r["peak_memory_mb"] > 0
    from engine.config.options import num

    table = grid["again"].stdout
    for r in data["runs"]:  # the sweep's own table: one row per trial, with its value
        (line,) = [line for line in table.splitlines() if line.startswith(("  ", "* ")) and line.lstrip("* ").split()[:2] == [r["name"], r["status"]]]
        assert num(r["values"]["train.learning_rate"]) in line.split() and r["status"] in line
    assert f"best: {data['best']}" in table


def test_each_trial_is_an_ordinary_run_dir(grid):
    from cockpit.cli import main

    trial = grid["dir"] / "trial-001"
    assert (trial / names.CONFIG).is_file() and (trial / "findings.json").is_file()
    with pytest.raises(SystemExit) as exit_info:  # doctor reads a trial as any run
        main(["doctor", str(trial)])
    assert exit_info.value.code in (0, 1)


def test_best_config_is_a_config_file_cockpit_run_takes(grid, tmp_path):
    cwd, sweep_dir = grid["cwd"], grid["dir"]
    result = cockpit("compare", str(sweep_dir), "--best-config", cwd=cwd)
    assert result.returncode == 0, result.stderr
    best = grid["json"]["best"]
    assert result.stderr.startswith(f"best: {best}")
    path = tmp_path / "best.yaml"
    path.write_text(result.stdout)
    run = cockpit("run", "--config", str(path), "--max-steps", "2", "-o", str(tmp_path / "again"), cwd=cwd)
    assert run.returncode == 0, run.stderr
    from engine.config import load_run_config

    (row,) = [r for r in grid["json"]["runs"] if r["name"] == best]
    assert load_run_config(tmp_path / "again")["train"]["learning_rate"] == row["values"]["train.learning_rate"]


def test_ctrl_c_stops_the_trial_with_a_checkpoint_and_resume_continues_it(tmp_path):
    args = ["sweep", "--preset", "quick-test", "--lr", "1e-3,3e-3", "--max-steps", "12", "--save-steps", "3"]
    proc = start(*args, cwd=tmp_path)
    wait_for(lambda: (tmp_path / "sweeps").is_dir() and any((tmp_path / "sweeps").iterdir()), what="the sweep dir")
    sweep_dir = the_sweep(tmp_path)
    first = sweep_dir / "trial-000"
    wait_for(lambda: any(e["step"] >= 4 for e in of_type(first, "metrics")), what="step 4")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert f"cockpit sweep --resume {sweep_dir.relative_to(tmp_path)}" in err
    stopped = of_type(first, "run_finished")[-1]
    assert stopped["status"] == "stopped" and checkpoint_steps(first)
    saved_at = max(checkpoint_steps(first))
    assert not (sweep_dir / "trial-001").exists()  # no new trial after the stop
    shown = cockpit("compare", str(sweep_dir), "--format", "json", cwd=tmp_path)
    (row,) = json.loads(shown.stdout)["runs"]
    assert row["status"] == "interrupted" and "--resume" in row["why"]

    resumed = cockpit("sweep", "--resume", str(sweep_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    starts = of_type(first, "run_started")
    assert len(starts) == 2 and starts[1].get("resumed_from") == saved_at  # from the stop's checkpoint, not from scratch
    assert of_type(first, "run_finished")[-1]["status"] == "completed"
    assert len(of_type(sweep_dir / "trial-001", "run_started")) == 1  # the rest ran
    rows = json.loads(cockpit("compare", str(sweep_dir), "--format", "json", cwd=tmp_path).stdout)["runs"]
    assert [r["status"] for r in rows] == ["completed", "completed"]


def checkpoint_steps(run_dir: Path) -> list[int]:
    return [step for step, _ in names.checkpoint_dirs(run_dir)]


def test_optunas_pruner_stops_trials_on_their_eval_reports(tmp_path):
    (tmp_path / "search.yaml").write_text(
        "# learning rates too small to move the loss in 3 steps: the threshold pruner stops each trial at its first eval\n"
        "preset: quick-test\n"
        "params:\n  train.learning_rate: log-uniform 1e-8..1e-7\n"
        "trials: 2\nsampler: random\npruner: {name: threshold, upper: 7.3}\n")
    result = cockpit("sweep", "search.yaml", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr  # no trial completed
    sweep_dir = the_sweep(tmp_path)
    rows = json.loads(cockpit("compare", str(sweep_dir), "--format", "json", cwd=tmp_path).stdout)["runs"]
    assert len(rows) == 2
    values = set()
    for row in rows:
        assert row["status"] == "pruned" and row["why"].startswith("threshold pruner at step 3"), row
        run_dir = sweep_dir / row["name"]
        assert of_type(run_dir, "run_finished")[-1]["status"] == "stopped"  # a graceful stop: a checkpoint, no final/
        assert max(e["step"] for e in of_type(run_dir, "metrics")) < 6
        lr = row["values"]["train.learning_rate"]
        assert 1e-8 <= lr <= 1e-7
        values.add(lr)
    assert len(values) == 2  # two draws, two values


BAD = [
    (["--set", "train.learning_rate=1e-3,abc"], ["train.learning_rate", "abc", "must be a number"]),
    (["--lr", "1e-3,abc"], ["--lr 1e-3,abc", "must be a number"]),
    (["--set", "train.learnin_rate=1,2"], ["unknown key 'train.learnin_rate'", "did you mean 'train.learning_rate'"]),
    (["--set", "train.learning_rate=1,2,3,4,5,6,7,8", "--set", "train.seed=1,2,3,4,5,6,7"], ["56 trials", "--max-trials 56"]),
    (["--set", "train.learning_rate=log-uniform 1e-6..1e-4", "--sampler", "grid"], ["train.learning_rate is a range", "--sampler random"]),
    (["--set", "train.learning_rate=1e-3,3e-3", "--objective", "eval_acuracy"], ["objective 'eval_acuracy'", "no trial logs it"]),
    (["--set", "train.learning_rate=1e-3,3e-3", "--set", "train.eval_strategy=no"], ["never evaluate", "train.eval_strategy=steps"]),
    (["--set", "lora.r=uniform 4..16"], ["lora.r takes whole numbers", "int 4..16"]),
    (["--set", "train.learning_rate=1e-3,3e-3", "--pruner", "medain"], ["unknown pruner 'medain'", "did you mean 'median'"]),
    (["--set", "train.learning_rate=1e-3,3e-3", "--dataset", "missing.jsonl"], ["missing.jsonl"]),
    ([], ["nothing to sweep"]),
]


@pytest.mark.parametrize("args, expect", BAD, ids=[" ".join(a)[:50] or "no params" for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_before_any_trial(args, expect, tmp_path, monkeypatch, capsys):
    from cockpit.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--preset", "quick-test", *args])
    captured = capsys.readouterr()
    lines = [line for line in (captured.err + captured.out).splitlines() if line.strip()]
    assert exit_info.value.code == 2 and len(lines) == 1, lines
    for text in expect:
        assert text in lines[0], lines[0]
    assert not (tmp_path / "sweeps").exists()  # nothing made, no trial started


def test_a_bad_sweep_file_is_one_line_naming_the_file_and_key(tmp_path, monkeypatch, capsys):
    from cockpit.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("preset: quick-test\nparams:\n  train.learning_rate: [1e-3, 3e-3]\nsamplr: tpe\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "s.yaml"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in err and "s.yaml: unknown key 'samplr'; did you mean 'sampler'?" in err


def test_resume_refuses_a_sweep_another_worker_runs_and_new_options(tmp_path, monkeypatch, capsys):
    """A second `cockpit sweep --resume` on a sweep a live worker holds is refused with --join as the way in."""
    from cockpit.cli import main
    from cockpit.sweep import claims
    from cockpit.sweep.checks import resolve
    from cockpit.sweep.spec import from_command
    from cockpit.sweep.sweep_dir import create

    monkeypatch.chdir(tmp_path)
    spec = from_command(None, {"preset": "quick-test", "sets": ["train.learning_rate=1e-3,3e-3"]})
    resolve(spec, 0)
    sweep_dir = create(spec, "quick-test", tmp_path / "sweeps", None)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; from cockpit.sweep import claims; "
                               f"claims.register_worker(Path({str(sweep_dir)!r})); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert claims.live_workers(sweep_dir)
        with pytest.raises(SystemExit) as exit_info:
            main(["sweep", "--resume", str(sweep_dir)])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and "is running" in err and f"--join {sweep_dir}" in err
        with pytest.raises(SystemExit) as exit_info:  # the same command names the live sweep too
            main(["sweep", "--preset", "quick-test", "--set", "train.learning_rate=1e-3,3e-3"])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and "is running this same sweep" in err
    finally:
        holder.kill()
        holder.wait()
    assert claims.live_workers(sweep_dir) == []  # the kernel dropped the dead worker's flock
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--resume", str(sweep_dir), "--preset", "quick-test"])
    assert exit_info.value.code == 2 and "drop --preset" in capsys.readouterr().err


def test_sweep_and_compare_start_without_optuna_torch_or_textual():
    probe = ("import sys\nfrom cockpit.cli import main\n"
             "for argv in (['sweep', '--help'], ['compare', '--help']):\n"
             "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
             "print('LOADED=' + ','.join(m for m in ('optuna', 'torch', 'transformers', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "LOADED="


def test_a_trial_killed_before_its_first_checkpoint_starts_again_and_its_attempt_is_kept(tmp_path):
    """kill -9 of the sweep and of its engine before anything was saved: the same command starts the
    trial again, and the first attempt's run dir goes to interrupted/, not away."""
    args = ["sweep", "--preset", "quick-test", "--lr", "1e-3,3e-3", "--max-trials", "1"]
    proc = start(*args, cwd=tmp_path)
    wait_for(lambda: (tmp_path / "sweeps").is_dir() and any((tmp_path / "sweeps").iterdir()), what="the sweep dir")
    trial = the_sweep(tmp_path) / "trial-000"
    wait_for(lambda: names.holder(trial), what="the engine's lock")
    engine = names.holder(trial)
    proc.kill()
    os.kill(engine, signal.SIGKILL)
    proc.communicate(timeout=30)
    wait_for(lambda: names.holder(trial) is None, what="the kernel to drop the engine's lock")
    assert not names.checkpoint_dirs(trial)
    again = cockpit(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    kept = trial.parent / "interrupted" / "trial-000-1"
    assert (kept / names.CONFIG).is_file() and "kept in" in again.stdout
    assert len(of_type(trial, "run_started")) == 1 and of_type(trial, "run_finished")[-1]["status"] == "completed"


def test_grpo_sweeps_optimise_answer_accuracy_when_the_data_has_answers(tmp_path, monkeypatch, capsys):
    from cockpit.cli import main
    from cockpit.sweep.checks import resolve
    from cockpit.sweep.spec import from_command

    spec = from_command(None, {"preset": "grpo-quick", "sets": ["grpo.beta=0,0.04"]})
    resolve(spec, 0)
    assert (spec.objective, spec.direction, spec.sampler, spec.trials) == ("eval_answer_accuracy", "maximize", "grid", 2)
    spec = from_command(None, {"preset": "grpo-quick", "sets": ["grpo.beta=0,0.04"], "objective": "eval_rewards/correctness/mean"})
    resolve(spec, 0)
    assert spec.direction == "maximize"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:  # a metric GRPO runs do not log
        main(["sweep", "--preset", "grpo-quick", "--set", "grpo.beta=0,0.04", "--objective", "eval_accuracy"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in err and "GRPO runs log eval_answer_accuracy" in err
