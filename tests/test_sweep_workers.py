"""Trials side by side: a second worker joins a running sweep (`cockpit sweep --join`, as a second
machine on a shared filesystem would), the two split the trials through their claims and train at
the same time; and the slots a machine's GPUs make, each with its CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import run_dir as names
from engine.events import read_events

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # two engines at once on two cores


def cockpit(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cockpit.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd, env=ENV)


def times(run_dir: Path, kind: str) -> list[float]:
    return [e["time"] for e in read_events(run_dir / names.EVENTS) if e.get("type") == kind]


@pytest.mark.slow
def test_a_joining_worker_takes_the_next_trial_and_both_train_at_once(tmp_path):
    # Trials long enough that the second worker's trial starts while the first one's still trains.
    first = cockpit("sweep", "--preset", "quick-test", "--lr", "1e-3,3e-3", "--max-steps", "30", "--eval-steps", "10",
                    "--save-steps", "30", cwd=tmp_path)
    deadline = time.time() + 120
    while not list(tmp_path.glob("sweeps/*/trial-000/events.jsonl")):
        assert time.time() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.05)
    (sweep_dir,) = (tmp_path / "sweeps").iterdir()
    second = cockpit("sweep", "--join", str(sweep_dir), cwd=tmp_path)
    out1, err1 = first.communicate(timeout=300)
    out2, err2 = second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, (out1, err1, out2, err2)
    # Each worker trained one trial, each trial once.
    lines1, lines2 = out1.splitlines(), out2.splitlines()  # a worker's own lines start with the trial's name
    assert any(line.startswith("trial-000  started") for line in lines1) and not any(line.startswith("trial-001") for line in lines1)
    assert any(line.startswith("trial-001  started") for line in lines2) and not any(line.startswith("trial-000") for line in lines2)
    a, b = sweep_dir / "trial-000", sweep_dir / "trial-001"
    assert len(times(a, "run_started")) == len(times(b, "run_started")) == 1
    assert times(b, "metrics")[0] < times(a, "run_finished")[-1]  # side by side, not one after the other
    rows = json.loads(subprocess.run([sys.executable, "-m", "cockpit.cli", "compare", str(sweep_dir), "--format", "json"],
                                     capture_output=True, text=True, cwd=tmp_path, env=ENV).stdout)["runs"]
    assert [(r["name"], r["status"]) for r in rows] == [("trial-000", "completed"), ("trial-001", "completed")]
    assert not list(sweep_dir.glob("trial-002"))


def test_gpus_make_one_slot_per_trial_each_with_its_devices():
    from cockpit.sweep.devices import slots

    four = slots(["0", "1", "2", "3"], 1, nvml_order=True)
    assert [s.env for s in four] == [{"CUDA_VISIBLE_DEVICES": str(i), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"} for i in range(4)]
    pairs = slots(["GPU-aa", "GPU-bb", "GPU-cc"], 2)  # narrowed by the user (UUIDs): subsets as written, a GPU left over
    assert [s.env for s in pairs] == [{"CUDA_VISIBLE_DEVICES": "GPU-aa,GPU-bb"}]
    (cpu,) = slots([], 1)
    assert cpu.env is None and cpu.label == "CPU"


def test_gpus_chooses_the_sweeps_gpus_as_cockpit_run_reads_them():
    import pytest
    from cockpit.sweep.devices import choose

    entries = ["0", "1", "2", "3"]
    assert choose(entries, "0,2") == ["0", "2"] and choose(entries, "1,") == ["1"]  # indices (a trailing comma: one)
    assert choose(entries, "2") == ["0", "1"] and choose(entries, "all") == entries and choose(entries, None) == entries
    for bad, says in (("5,", "GPU 5 is not visible"), ("9", "--gpus 4"), ("x", "give a count")):
        with pytest.raises(ValueError, match=says):
            choose(entries, bad)
