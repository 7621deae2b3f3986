"""kill -9 during a save, N times: how many runs resume from their last complete checkpoint and end
with the losses of a run that was never killed.

Each trial starts a fresh builtin:tiny run that saves every step, kills the engine (SIGKILL) at a
moment a checkpoint dir exists without its completion marker (the Trainer writing it, or the
marker not yet written), records whether the checkpoint left behind was whole, resumes, and
compares every step's loss with an uninterrupted run of the same config.

    python bench/kill_during_save.py [--trials 10]
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cockpit.supervisor import write_config  # noqa: E402
from engine import checkpoints  # noqa: E402
from engine import config as config_mod  # noqa: E402
from engine import run_dir as names  # noqa: E402
from engine.events import read_events  # noqa: E402

SETS = ["train.logging_steps=1", "train.eval_strategy=no", "train.max_steps=12", "train.save_steps=1", "train.save_total_limit=2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "2"}


def engine(run_dir: Path, resume: bool = False) -> subprocess.Popen:
    args = [sys.executable, "-m", "engine", str(run_dir)] + (["--resume"] if resume else [])
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, cwd=ROOT)


def losses(run_dir: Path) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for e in read_events(run_dir / names.EVENTS):
        if e["type"] == "metrics":
            out.setdefault(e["step"], []).append(e["loss"])
    return out


def trial(root: Path, n: int, reference: dict[int, list[float]]) -> tuple[bool, bool]:
    """(resumed to the end with the reference's losses, the kill left a half-written checkpoint)."""
    run_dir = root / f"trial{n}"
    write_config(run_dir, config_mod.resolve(preset="quick-test", sets=SETS))
    proc = engine(run_dir)
    deadline = time.time() + 300
    while time.time() < deadline:
        dirs = [p for _, p in names.checkpoint_dirs(run_dir)]
        if len(dirs) >= 1 + n % 3 and any(not (p / names.COMPLETE).exists() for p in dirs):
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    half = any(checkpoints.problem(p) is not None for _, p in names.checkpoint_dirs(run_dir))
    done = engine(run_dir, resume=True).wait() == 0
    got = losses(run_dir)
    same = all(math.isclose(v, reference[s][0], rel_tol=1e-3) for s, vs in got.items() for v in vs)
    return done and same and set(got) == set(reference), half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ref_dir = root / "reference"
        write_config(ref_dir, config_mod.resolve(preset="quick-test", sets=SETS))
        assert engine(ref_dir).wait() == 0
        reference = losses(ref_dir)
        results = [trial(root, n, reference) for n in range(args.trials)]
    ok = sum(1 for r, _ in results if r)
    half = sum(1 for _, h in results if h)
    print(f"kill -9 during a save: {ok}/{args.trials} resumed from the last complete checkpoint with the "
          f"uninterrupted run's losses; {half}/{args.trials} kills left a half-written checkpoint (skipped and set aside)")


if __name__ == "__main__":
    main()
