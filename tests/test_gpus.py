"""Choosing GPUs (the NLI trainer's --gpu 1 and --all-gpus): --gpus 0,2 picks devices, --gpus all every
visible one, --gpus N a count; the estimate follows the choice. On this CPU: the parsing, the choice
among a machine's GPUs as NVML lists them, and the refusals a user meets."""

from __future__ import annotations

import re

import pytest

from engine import config as config_mod
from engine.memory import estimate as est
from engine.memory.gpu import NARROWED_ENV, check_ids, chosen, parse_gpus, visible_gpus

# Two GPUs as visible_gpus() reports them: a mixed workstation.
GPUS = [
    {"index": 0, "uuid": "GPU-aaaa", "name": "NVIDIA GeForce RTX 4090", "total_mb": 24564.0, "bf16": True},
    {"index": 1, "uuid": "GPU-bbbb", "name": "NVIDIA H100 80GB HBM3", "total_mb": 81559.0, "bf16": True},
    {"index": 2, "uuid": "GPU-cccc", "name": "Tesla V100-SXM2-32GB", "total_mb": 32768.0, "bf16": False},
]


@pytest.mark.parametrize("text, expect", [
    ("all", (None, None)), ("ALL", (None, None)), ("2", (2, None)), ("0,2", (2, [0, 2])), ("2,0", (2, [2, 0])),
    ("1,", (1, [1])), (" 0, 1 ", (2, [0, 1])),
])
def test_parse(text, expect):
    assert parse_gpus(text) == expect


@pytest.mark.parametrize("text, words", [
    ("0", "give a count (2), all, or GPU indices"), ("two", "give a count"), ("0,0", "a GPU is named twice"),
    ("0,x", "whole numbers separated by commas"), (",", "whole numbers"),
])
def test_parse_refuses(text, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        parse_gpus(text)


def test_the_choice_among_the_visible_gpus(monkeypatch):
    monkeypatch.delenv(NARROWED_ENV, raising=False)
    assert chosen(GPUS, {"gpus": 1, "gpu_ids": None}) == GPUS[:1]
    assert chosen(GPUS, {"gpus": 2, "gpu_ids": [2, 0]}) == [GPUS[2], GPUS[0]]
    assert chosen(GPUS, {"gpus": 1, "gpu_ids": [1]}) == [GPUS[1]]
    assert chosen([], {"gpus": 2, "gpu_ids": None}) == []
    # In the engine after narrowing, CUDA shows only the chosen GPUs: the ids are not applied twice.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbbb")
    monkeypatch.setenv(NARROWED_ENV, "GPU-bbbb")
    assert chosen([GPUS[1]], {"gpus": 1, "gpu_ids": [1]}) == [GPUS[1]]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")  # changed since: the choice applies again
    assert chosen(GPUS, {"gpus": 1, "gpu_ids": [1]}) == [GPUS[1]]


def test_ids_that_are_not_visible_are_named():
    assert check_ids([0, 2], GPUS) is None
    assert check_ids([0, 3], GPUS) == ("--gpus: GPU 3 is not visible (3 visible: 0 NVIDIA GeForce RTX 4090, 1 NVIDIA H100 80GB HBM3, "
                                       "2 Tesla V100-SXM2-32GB); pick from 0 to 2 (indices count the GPUs CUDA_VISIBLE_DEVICES leaves visible)")
    assert check_ids([1], []).startswith("--gpus 1, picks GPUs, and no CUDA GPU is visible here")


def test_the_estimate_follows_the_choice(tmp_path):
    """The same run on GPU 0 (24 GiB) and on GPU 1 (80 GiB): the estimate measures against the chosen one."""
    base = ["model.name_or_path=builtin:shape:qwen2.5-0.5b", "model.finetune=full", "train.max_length=2048",
            "train.per_device_train_batch_size=8"]
    first = est.estimate(config_mod.resolve(preset="quick-test", sets=base), gpus=GPUS)
    second = est.estimate(config_mod.resolve(preset="quick-test", flags={"run.gpus": 1, "run.gpu_ids": [1]}, sets=base), gpus=GPUS)
    assert first.gpus == [GPUS[0]] and "RTX 4090" in first.line()
    assert second.gpus == [GPUS[1]] and "H100" in second.line()
    assert second.capacity_bytes > first.capacity_bytes


def test_gpu_ids_and_a_different_count_are_refused():
    with pytest.raises(config_mod.ConfigError, match=r"run.gpu_ids names 2 GPU\(s\) and run.gpus is 1.*--gpus 0,2 sets both"):
        config_mod.resolve(preset="quick-test", sets=["run.gpu_ids=[0, 2]"])


def test_bf16_on_a_chosen_gpu_without_it_is_refused(monkeypatch):
    from engine.memory.gpu import precision_problem

    assert precision_problem("bf16", [GPUS[1]]) is None
    assert precision_problem("bf16", [GPUS[2]]) == ("model.dtype bf16 (--bf16): Tesla V100-SXM2-32GB has no bf16 (Ampere and "
                                                    "later have it); use --fp16, or drop --bf16")


@pytest.mark.skipif(bool(visible_gpus()), reason="this machine has GPUs")
def test_on_a_machine_without_gpus(tmp_path, capsys):
    """--gpus 0,2 is refused in one line; --gpus all trains one process on the CPU."""
    from cockpit.cli import main

    def cockpit(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        return code, out.out, out.err

    code, _, err = cockpit("run", "--preset", "quick-test", "--gpus", "0,2", "-o", str(tmp_path / "a"))
    assert code == 2 and err.strip() == ("error: --gpus 0,2 picks GPUs, and no CUDA GPU is visible here; "
                                         "--gpus 2 trains 2 process(es) on the CPU")
    assert not (tmp_path / "a").exists()
    code, _, err = cockpit("run", "--preset", "quick-test", "--gpus", "0,0", "-o", str(tmp_path / "b"))
    assert code == 2 and "a GPU is named twice" in err and len(err.strip().splitlines()) == 1
    code, out, err = cockpit("run", "--preset", "quick-test", "--gpus", "all", "--max-steps", "2", "--set", "train.eval_strategy=no",
                             "-o", str(tmp_path / "c"))
    assert code == 0, err
    saved = config_mod.load_run_config(tmp_path / "c")["run"]
    assert saved["gpus"] == 1 and saved["gpu_ids"] is None
    assert "on the CPU (no GPU visible)" in out
