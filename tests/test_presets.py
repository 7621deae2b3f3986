"""Every preset runs on the CPU with --model builtin:tiny: the cockpit's checks pass, then the engine
trains two steps and saves final/. Presets without data of their own get a few records of the format
their header names, from the real datasets in ../shared/data."""

from __future__ import annotations

import csv
import itertools
import json
import signal

import pytest

from conftest import SHARED_DATA, of_type
from engine import config as config_mod

# The preset -> the data its header asks for (a real dataset's first records).
DATA = {
    "gemma3-lora-csv": SHARED_DATA / "datasets" / "instruct" / "ghidav_safety-lora_alpaca.csv",
    "mistral-nli-qlora": SHARED_DATA / "datasets" / "nli" / "snli_train_2k_premise_hypothesis.jsonl",
    "grpo-gsm8k": SHARED_DATA / "datasets" / "gsm8k" / "train.jsonl",
}
RECORDS = 24


def _sample(preset: str, folder) -> str | None:
    """A small file of the preset's format, or None when the preset names its own data."""
    if preset == "qwen-sft":  # the PyTorch pipeline's input/output JSONL
        path = folder / "io.jsonl"
        path.write_text("".join(json.dumps({"input": f"What is {i} plus {i}?", "output": f"{2 * i}."}) + "\n" for i in range(RECORDS)))
        return str(path)
    source = DATA.get(preset)
    if source is None:
        return None
    path = folder / source.name
    if source.suffix == ".csv":
        with open(source, newline="", encoding="utf-8") as f, open(path, "w", newline="", encoding="utf-8") as g:
            csv.writer(g).writerows(itertools.islice(csv.reader(f), RECORDS + 1))
    else:
        with open(source, encoding="utf-8") as f:
            path.write_text("".join(itertools.islice(f, RECORDS)), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("preset", config_mod.preset_names())
def test_every_preset_trains_on_builtin_tiny(preset, tmp_path):
    from cockpit import launch
    from cockpit.supervisor import write_config
    from engine.__main__ import main as engine_main
    from engine.events import read_events
    from engine.train.preflight import write_lint

    values = {"model": "builtin:tiny", "max_steps": 2, "dataset": _sample(preset, tmp_path)}
    prepared = launch.prepare(launch.Request(preset=preset, values=values))  # what cockpit run checks first
    assert prepared.cfg["model"]["name_or_path"] == "builtin:tiny"
    run_dir = tmp_path / "run"
    write_config(run_dir, prepared.cfg)
    write_lint(run_dir, prepared.reports)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = engine_main([str(run_dir)])
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    events = list(read_events(run_dir / "events.jsonl"))
    assert code == 0, of_type(events, "error")
    finished = of_type(events, "run_finished")[-1]
    assert finished["status"] == "completed" and finished["step"] == 2
    assert (run_dir / "final").is_dir()
