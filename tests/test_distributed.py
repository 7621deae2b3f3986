"""Several processes: `cockpit run --gpus 2` under torchrun, for real, on the CPU (gloo).

The same code path as on GPUs (torchrun, rank 0 writing events, the stop agreed on by every rank,
resume from the shared checkpoint); only the process group's backend differs (NCCL there).
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import of_type
from engine.events import read_events
from safetensors import safe_open

from cockpit.supervisor import engine_command

SETS = ["train.max_steps=8", "train.save_steps=100", "train.eval_strategy=no", "train.logging_steps=1"]
BATCH = 4  # quick-test's per-device batch


def cockpit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    # One thread per process: two ranks share this machine's cores.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], capture_output=True, text=True, env=env, timeout=timeout)


def run_args(run_dir: Path, *extra: str) -> list[str]:
    args = ["run", "--preset", "quick-test", "--gpus", "2", "-o", str(run_dir), *extra]
    for s in SETS:
        args += ["--set", s]
    return args


def wait_for_step(events_path: Path, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events_path.exists() and any(e["step"] == step for e in of_type(list(read_events(events_path)), "metrics")):
            return
        time.sleep(0.2)
    raise AssertionError(f"no metrics at step {step} within {timeout}s")


@pytest.mark.slow
def test_two_processes_train_stop_and_resume_exactly(tmp_path):
    # The reference: two ranks, never interrupted.
    ref_dir = tmp_path / "ref"
    result = cockpit(*run_args(ref_dir))
    assert result.returncode == 0, result.stderr + (ref_dir / "engine.log").read_text()[-3000:]
    assert "no CUDA GPU here: 2 processes on this machine, on the CPU, talking over gloo" in result.stdout
    assert "completed at step 8" in result.stdout
    assert "memory: no GPU; 2 processes, peak RSS" in result.stdout
    reference = list(read_events(ref_dir / "events.jsonl"))
    (started,) = of_type(reference, "run_started")  # rank 0 alone writes: one of each, not two
    assert started["world_size"] == 2
    plan = next(e["plan"] for e in of_type(reference, "status") if e.get("plan"))
    assert plan["effective_batch_size"] == 2 * BATCH  # both ranks train on their own batch
    metrics = of_type(reference, "metrics")
    assert [e["step"] for e in metrics] == list(range(1, 9))
    # 8 records per step, each record once: the epoch advances twice as fast as on one process.
    assert math.isclose(metrics[0]["epoch"], 2 * BATCH / plan["train_records"], rel_tol=1e-3)
    memory = [e for e in of_type(reference, "memory") if e.get("ranks")]
    assert memory and all(len(e["ranks"]) == 2 and e["ranks"][1]["rss_mb"] > 0 for e in memory)
    ref_loss = {e["step"]: e["loss"] for e in metrics}

    # Ctrl-C mid-run: every rank stops at the same step with one checkpoint.
    run_dir = tmp_path / "r"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cockpit.cli", *run_args(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    wait_for_step(run_dir / "events.jsonl", 2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert f"cockpit run --resume {run_dir}" in stderr
    events = list(read_events(run_dir / "events.jsonl"))
    (checkpoint,) = of_type(events, "checkpoint")
    stopped_at = checkpoint["step"]
    assert stopped_at < 8
    saved = run_dir / "checkpoints" / f"checkpoint-{stopped_at}"
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in saved.iterdir()}  # each rank's RNG
    assert "ChildFailedError" not in (run_dir / "engine.log").read_text()  # a stop is not a failure to torchrun

    result = cockpit("run", "--resume", str(run_dir))
    assert result.returncode == 0, result.stderr
    events = list(read_events(run_dir / "events.jsonl"))
    assert [e["status"] for e in of_type(events, "run_finished")] == ["stopped", "completed"]
    resumed = [e for e in of_type(events, "metrics") if e["time"] > checkpoint["time"]]
    assert resumed[0]["step"] == stopped_at + 1
    for e in resumed:  # same optimizer, scheduler, data order and RNG on both ranks
        assert math.isclose(e["loss"], ref_loss[e["step"]], rel_tol=1e-3), (e["step"], e["loss"], ref_loss[e["step"]])
    assert (run_dir / "final" / "adapter_model.safetensors").is_file()


def test_fsdp_shards_and_still_saves_whole_adapters(tmp_path):
    run_dir = tmp_path / "fsdp"
    result = cockpit("run", "--preset", "quick-test", "--gpus", "2", "--distributed", "fsdp", "-o", str(run_dir),
                     "--set", "train.max_steps=3", "--set", "train.eval_steps=3", "--set", "train.save_steps=100")
    assert result.returncode == 0, result.stderr + (run_dir / "engine.log").read_text()[-3000:]
    assert "completed at step 3" in result.stdout
    for folder in ("final", "best"):
        with safe_open(str(run_dir / folder / "adapter_model.safetensors"), "pt") as f:
            # The full LoRA matrices (rank 16 by the layer width), not one rank's shard.
            shapes = {tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        assert (16, 128) in shapes and (16, 384) in shapes, shapes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_machines_join_through_launcher_args(tmp_path):
    """The README's recipe for several machines, both "machines" on this one: the first starts the
    run with torchrun's node options, the second starts the engine on the same run dir."""
    run_dir = tmp_path / "nodes"
    nodes = ["--nnodes=2", "--master-addr=127.0.0.1", f"--master-port={free_port()}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [sys.executable, "-m", "cockpit.cli", "run", "--preset", "quick-test", "-o", str(run_dir), "--set", "train.max_steps=3",
         "--set", "train.eval_steps=3", "--launcher-args", " ".join([*nodes, "--node-rank=0"])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    deadline = time.monotonic() + 60
    while not (run_dir / "config.yaml").is_file():
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.2)
    second = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", *nodes, "--node-rank=1", "--nproc-per-node=1", "-m", "engine", str(run_dir)],
        capture_output=True, text=True, env=env, timeout=240,
    )
    stdout, stderr = first.communicate(timeout=240)
    assert first.returncode == 0 and second.returncode == 0, stderr + second.stderr[-3000:]
    assert "joined to the others by torchrun" in stdout and "completed at step 3" in stdout
    events = list(read_events(run_dir / "events.jsonl"))
    (started,) = of_type(events, "run_started")  # global rank 0 alone writes
    assert started["world_size"] == 2
    assert next(e["plan"] for e in of_type(events, "status") if e.get("plan"))["effective_batch_size"] == 2 * BATCH


def test_deepspeed_without_deepspeed_is_one_line_and_no_run_dir(tmp_path):
    run_dir = tmp_path / "ds"
    result = cockpit("run", "--preset", "quick-test", "--gpus", "2", "--distributed", "deepspeed-zero3", "-o", str(run_dir))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install deepspeed" in lines[0], result.stderr
    assert not run_dir.exists()


def test_launch_command_one_machine_and_several(tmp_path):
    one = {"run": {"gpus": 1, "launcher_args": []}}
    assert engine_command(tmp_path, cfg=one)[1:] == ["-m", "engine", str(tmp_path)]
    four = {"run": {"gpus": 4, "launcher_args": []}}
    assert engine_command(tmp_path, True, four)[1:] == [
        "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4", "-m", "engine", str(tmp_path), "--resume",
    ]
    nodes = {"run": {"gpus": 8, "launcher_args": ["--nnodes=2", "--node-rank=1", "--master-addr=10.0.0.1", "--master-port=29500"]}}
    cmd = engine_command(tmp_path, cfg=nodes)
    assert "--standalone" not in cmd and cmd[3:8] == nodes["run"]["launcher_args"] + ["--nproc-per-node=8"]
