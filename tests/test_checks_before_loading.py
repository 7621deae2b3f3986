"""What the engine would refuse only after loading the model is refused before anything starts:
trackers (names and packages), TRL's own keys, and a precision the machine cannot train in. One line,
exit 2, no run dir. Trackers write inside the run dir."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT, of_type
from engine.memory.gpu import visible_gpus


def cockpit_here(capsys, *args: str) -> tuple[int, str]:
    """`cockpit ARGS` in this process: (exit code, stderr)."""
    from cockpit.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


@pytest.mark.parametrize("args, expect", [
    (["--report-to", "tensorbord"], "unknown tracker 'tensorbord'; did you mean 'tensorboard'?"),
    (["--report-to", "mlflow"], "train.report_to mlflow: its package is not installed; pip install mlflow"),
    (["--set", "trl.neftune_noise_alph=5"], "unknown TRL option 'trl.neftune_noise_alph' (not a field of trl.SFTConfig); "
                                            "did you mean 'trl.neftune_noise_alpha'?"),
])
def test_refused_in_one_line_before_the_run_starts(capsys, tmp_path, args, expect):
    code, err = cockpit_here(capsys, "run", "--preset", "quick-test", "-o", str(tmp_path / "run"), *args)
    assert code == 2
    assert expect in one_line(err)
    assert not (tmp_path / "run").exists()


def test_a_tracker_whose_package_is_missing_names_the_extra(tmp_path):
    """tensorboard as if it were not installed (hidden from the import system in a fresh interpreter)."""
    code = ("import sys; sys.modules['tensorboard'] = sys.modules['tensorboardX'] = None; "
            "from cockpit.cli import main; main(sys.argv[1:])")
    result = subprocess.run([sys.executable, "-c", code, "run", "--preset", "quick-test", "--report-to", "tensorboard",
                             "-o", str(tmp_path / "run")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert one_line(result.stderr) == ('error: train.report_to tensorboard: the tensorboard package is not installed; '
                                       'pip install -e ".[trackers]" (tensorboard, wandb, trackio), or --report-to none')
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(bool(visible_gpus()), reason="a machine with a GPU trains in bf16")
def test_bf16_on_a_cpu_is_refused_in_our_words(capsys, tmp_path, run_engine):
    code, err = cockpit_here(capsys, "run", "--preset", "quick-test", "--bf16", "-o", str(tmp_path / "run"))
    assert code == 2
    assert one_line(err) == ("error: model.dtype bf16 (--bf16) needs a CUDA GPU, and this machine has none: the CPU trains "
                             "in float32; drop --bf16 (or --set model.dtype=auto)")
    assert "use_cpu" not in err and not (tmp_path / "run").exists()
    # a config.yaml written by hand meets the same words in the engine
    code, events, _ = run_engine("quick-test", sets=["model.dtype=bf16"])
    assert code == 2
    error = of_type(events, "error")[-1]
    assert error["message"].startswith("model.dtype bf16 (--bf16) needs a CUDA GPU") and error["overrides"] == {"model.dtype": "auto"}


def test_trl_values_are_refused_before_the_model_loads(run_engine):
    """A value TRL's config refuses comes back before the model is loaded (it came after, minutes on a 7B)."""
    code, events, _ = run_engine("quick-test", sets=["trl.load_best_model_at_end=true", "train.save_strategy=no",
                                                      "train.save_steps=null"])
    assert code == 2
    assert of_type(events, "error")[-1]["message"].startswith("TRL rejects this config:")
    loading = [e["message"] for e in of_type(events, "status") if e.get("phase") == "loading model"]
    assert not any(m.startswith("loading builtin:tiny") for m in loading), loading


def test_tensorboard_logs_land_in_the_run_dir(run_engine):
    pytest.importorskip("tensorboard")
    code, _, run_dir = run_engine("quick-test", sets=["train.max_steps=2", "train.report_to=tensorboard", "train.eval_strategy=no"])
    assert code == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert files, sorted(p.name for p in run_dir.iterdir())
    logs = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    assert [s.step for s in logs.Scalars("train/loss")] == [1, 2]
    assert not (run_dir / "checkpoints" / "runs").exists()  # transformers' default place


def test_wandb_without_login_is_refused_and_offline_logs_into_the_run_dir(capsys, tmp_path, run_engine, monkeypatch):
    """W&B would stop a run without an account to ask for one: refused first; WANDB_MODE=offline needs none."""
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", os.devnull)  # no `wandb login` on record
    code, err = cockpit_here(capsys, "run", "--preset", "quick-test", "--report-to", "wandb", "-o", str(tmp_path / "run"))
    assert code == 2 and "no W&B login" in one_line(err) and "WANDB_MODE=offline" in err
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    code, _, run_dir = run_engine("quick-test", sets=["train.max_steps=2", "train.report_to=wandb", "train.eval_strategy=no"])
    assert code == 0
    assert list((run_dir / "wandb").glob("offline-run-*")), sorted(p.name for p in run_dir.iterdir())
