"""Out of memory for real: the engine under an address-space limit that fits the model and the short
batches but not the one batch holding a very long record. The error event and `cockpit run` name the
step, the batch's shape and the memory; --longest-first makes the same run fail in its first step.
Then the refusals: unknown optimizers, 8-bit optimizers without CUDA, longest_first with packing or GRPO."""

from __future__ import annotations

import json
import os
import random
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import of_type
from engine.events import read_events

LINUX = Path("/proc/self/status").is_file()
# Short records and one long one of about 10,700 tokens: its batch's 4 x L x L float attention mask alone is
# 1.8 GB, its logits and activations another GB or so, where a batch of short ones needs a few MB.
RECORDS, LONG_AT, LONG_NUMBERS = 40, 5, 1100
SETS = ["model.name_or_path=builtin:tiny", "data.eval_split=0", "train.eval_strategy=no", "train.save_strategy=no",
        "train.save_best=false", "train.logging_steps=1", "train.max_length=16384", "train.per_device_train_batch_size=4",
        "train.max_steps=10"]
# Fewer threads and malloc arenas: the address space a run reserves varies less from run to run.
ENV = {**os.environ, "OMP_NUM_THREADS": "2", "MALLOC_ARENA_MAX": "2", "TOKENIZERS_PARALLELISM": "false"}
# Room above a normal run's peak: far more than its run-to-run noise (a few MB), far less than the long batch needs.
MARGIN = 2**29
VMPEAK = """
import sys
from engine.__main__ import main
code = main([sys.argv[1]])
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmPeak:")))
sys.exit(code)
"""


def write_data(path: Path, long_at: int | None) -> Path:
    rng = random.Random(0)
    rows = []
    for i in range(RECORDS):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        if i == long_at:
            numbers = " ".join(str(rng.randint(0, 10**6)) for _ in range(LONG_NUMBERS))
            rows.append({"prompt": f"Repeat: {numbers}", "completion": numbers})
        else:
            rows.append({"prompt": f"What is {a} plus {b}?", "completion": str(a + b)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def memory_limit(tmp_path_factory) -> int:
    """Bytes of address space: the peak of the same run without the long record, plus MARGIN."""
    from engine import config as config_mod

    from cockpit.supervisor import write_config

    tmp = tmp_path_factory.mktemp("oom-baseline")
    cfg = config_mod.resolve(flags={"data.path": str(write_data(tmp / "short.jsonl", None))}, sets=SETS)
    write_config(tmp / "run", cfg)
    result = subprocess.run([sys.executable, "-c", VMPEAK, str(tmp / "run")], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    peak_kb = int(result.stdout.split()[-1])
    return peak_kb * 1024 + MARGIN


def cockpit_run(limit: int, data: Path, run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """`cockpit run` in a shell whose `ulimit -v` is `limit` (the engine it starts inherits it)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    sets = [a for s in SETS for a in ("--set", s)]
    return subprocess.run([sys.executable, "-m", "cockpit.cli", "run", "--dataset", str(data), *sets, *args, "-o", str(run_dir)],
                          capture_output=True, text=True, env=ENV, preexec_fn=cap, timeout=300)


def oom_of(run_dir: Path) -> tuple[dict, dict, list[dict]]:
    events = list(read_events(run_dir / "events.jsonl"))
    errors = of_type(events, "error")
    assert len(errors) == 1 and errors[0]["kind"] == "oom", errors
    return errors[0], of_type(events, "dataset")[0], events


def gib(mb: float) -> str:
    return f"{mb / 1024:.1f}"


@pytest.mark.skipif(not LINUX, reason="reads /proc and limits the address space like Linux does")
def test_out_of_memory_names_step_batch_and_memory(memory_limit, tmp_path):
    data = write_data(tmp_path / "data.jsonl", LONG_AT)
    result = cockpit_run(memory_limit, data, tmp_path / "run")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    error, dataset, events = oom_of(tmp_path / "run")
    # The short batches trained; the one with the long record did not fit.
    step = error["step"]
    assert step > 0, "seed 42 deals the long record into the first batch: move LONG_AT"
    assert [e["step"] for e in of_type(events, "metrics")] == list(range(1, step + 1))
    longest = dataset["splits"]["train"]["tokens"]["total"]["max"]
    assert error["batch"]["size"] == 4 and error["batch"]["seq_len"] == longest > 10000  # padded to the long record
    assert error["batch"]["phase"] == "train" and longest < error["batch"]["tokens"] < 4 * longest
    memory = error["memory"]
    assert memory["device"] == "cpu" and memory["limit"] == {"name": "RLIMIT_AS", "mb": round(memory_limit / 2**20, 1)}
    assert memory["total_mb"] == memory["limit"]["mb"] and 0 < memory["used_mb"] <= memory["total_mb"]
    assert memory["process"]["rss_mb"] > 0 and memory["host"]["total_mb"] > 0 and memory["tried_mb"] > 100
    assert "can't allocate memory" in error["message"] and "\n" not in error["message"]
    assert of_type(events, "run_finished")[-1]["status"] == "failed"

    out = result.stdout + result.stderr
    assert f"failed (oom): {error['message']}" in out  # the allocator's own words, whole
    sentence = (f"out of memory after step {step} on a batch of 4 x {longest} tokens: "
                f"{gib(memory['used_mb'])} of {gib(memory['total_mb'])} GiB in use")
    assert sentence in out, out[-3000:]
    assert "--batch-size 2 --grad-accum 2" in out and f"--longest-first, so the longest batch comes in the first step (this one came after step {step})" in out
    finding = next(f for f in json.loads((tmp_path / "run" / "findings.json").read_text())["findings"] if f["code"] == "oom")
    assert finding["evidence_text"].startswith(sentence) and finding["overrides"]["train.longest_first"] is True


@pytest.mark.skipif(not LINUX, reason="reads /proc and limits the address space like Linux does")
def test_longest_first_runs_out_in_the_first_step(memory_limit, tmp_path):
    data = write_data(tmp_path / "data.jsonl", LONG_AT)
    result = cockpit_run(memory_limit, data, tmp_path / "run", "--longest-first")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    error, dataset, events = oom_of(tmp_path / "run")
    longest = dataset["splits"]["train"]["tokens"]["total"]["max"]
    assert error["step"] == 0 and not of_type(events, "metrics")
    assert error["batch"]["size"] == 4 and error["batch"]["seq_len"] == longest
    out = result.stdout + result.stderr
    assert f"out of memory in the first step on a batch of 4 x {longest} tokens" in out
    assert not re.search(r"fix:.*--longest-first", out)  # it is on already


def test_longest_first_order_composes_with_ddp_and_resume():
    """The first step's micro-batches on every process hold the longest examples; a resumed run sees the same order."""
    import torch
    from accelerate.data_loader import prepare_data_loader, skip_first_batches
    from engine.memory.oom import LongestFirstSampler
    from torch.utils.data import DataLoader

    rng = random.Random(1)
    lengths = [rng.randint(10, 500) for _ in range(64)]
    batch, accum, world = 2, 2, 2
    head = batch * accum * world
    longest = sorted(range(64), key=lambda i: -lengths[i])[:head]

    def loader(rank: int, epoch_of=None):
        sampler = LongestFirstSampler(lengths, head, seed=42, epoch_of=epoch_of)
        plain = DataLoader(list(range(64)), batch_size=batch, sampler=sampler)
        return prepare_data_loader(plain, num_processes=world, process_index=rank, put_on_device=False)

    def batches(dl, epoch: int) -> list[list[int]]:
        dl.set_epoch(epoch)
        return [b.tolist() if isinstance(b, torch.Tensor) else list(b) for b in dl]

    first_step = [i for rank in range(world) for b in batches(loader(rank), 0)[:accum] for i in b]
    assert sorted(first_step) == sorted(longest)  # accelerate deals consecutive batches to the processes
    everything = [i for rank in range(world) for b in batches(loader(rank), 0) for i in b]
    assert sorted(everything) == list(range(64))  # every example once per epoch

    # Epoch 1 is a plain shuffle, the same every time; resuming 3 batches into it skips exactly those.
    full = batches(loader(0), 1)
    assert full == batches(loader(0), 1) and full != batches(loader(0), 0)
    assert not {i for b in full[:accum] for i in b} <= set(longest)
    resumed = skip_first_batches(loader(0, epoch_of=lambda: 1.4), 3)  # the trainer's epoch: 1.4 in the checkpoint
    assert batches(resumed, 1) == full[3:]


def test_out_of_memory_is_recognised_in_every_form():
    import torch
    from engine.memory.oom import is_oom

    assert is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_oom(RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes"))
    assert is_oom(MemoryError())
    try:
        try:
            raise MemoryError()
        except MemoryError as inner:
            raise RuntimeError("the data loader worker failed") from inner
    except RuntimeError as outer:
        assert is_oom(outer)
    assert not is_oom(RuntimeError("expected all tensors to be on the same device"))


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--optim", "adamw_troch"], ["train.optim 'adamw_troch'", "did you mean 'adamw_torch'?"]),
        (["--optim", "paged_adamw_8bit"], ["train.optim paged_adamw_8bit", "needs a CUDA GPU", "--optim adamw_torch"]),
    ],
    ids=["unknown-name", "8bit-without-cuda"],
)
def test_optimizer_refused_in_one_line(args, expect, tmp_path):
    import torch

    if "8bit" in args[1] and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "cockpit.cli", "run", "--preset", "quick-test", *args, "-o", str(out)],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for text in expect:
        assert text in lines[0], lines[0]
    assert not out.exists()  # nothing trained: no run dir left behind


def test_8bit_optimizer_without_bitsandbytes_says_how_to_install(tmp_path):
    import importlib.util

    import torch
    from engine.errors import EngineError
    from engine.train.trl_args import check_optim

    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("needs a CUDA machine without bitsandbytes")
    with pytest.raises(EngineError) as raised:
        check_optim("adamw_8bit")
    assert raised.value.kind == "config" and "pip install bitsandbytes" in raised.value.message


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--longest-first", "--set", "train.packing=true"], "train.longest_first does nothing with train.packing=true"),
        (["--longest-first", "--set", "run.type=grpo"], "train.longest_first is for SFT"),
    ],
    ids=["packing", "grpo"],
)
def test_longest_first_refused_where_it_means_nothing(args, expect, tmp_path, capsys):
    from cockpit.cli import main

    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exited:
        main(["run", "--preset", "quick-test", *args, "-o", str(out)])
    captured = capsys.readouterr()
    assert exited.value.code == 2
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and expect in lines[0], captured.err
    assert not out.exists()
