"""The engine's own cost: the same tiny SFT through the engine (events, memory sampling, control,
best-model tracking) and as a bare TRL script, interleaved in one process; the ratio of training
throughput (the Trainer's train_samples_per_second) is the figure.

On a shared machine one run's speed swings by ±10%, so the figure is the median over many pairs,
each pair run back to back (its ratio cancels the machine's drift), with the spread of the pairs.

    python bench/overhead.py [--steps 40] [--repeats 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import config as config_mod  # noqa: E402


def config(steps: int) -> dict:
    # Logging every step is the worst case for the engine: an event and a memory sample per step.
    return config_mod.resolve(
        preset="quick-test",
        sets=[f"train.max_steps={steps}", "train.logging_steps=1", "train.eval_strategy=no", "train.save_strategy=no",
              "train.save_steps=null", "train.save_best=false"],
    )


def engine_run(cfg: dict, workdir: Path) -> float:
    from engine.__main__ import main as engine_main
    from engine.events import read_events

    from cockpit.supervisor import write_config

    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    write_config(run_dir, cfg)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert engine_main([str(run_dir)]) == 0, (run_dir / "events.jsonl").read_text()[-2000:]
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    finished = [e for e in read_events(run_dir / "events.jsonl") if e["type"] == "run_finished"][-1]
    return float(finished["metrics"]["train_samples_per_second"])


def bare_run(cfg: dict, workdir: Path) -> float:
    """What a user would write by hand: SFTTrainer on the same rows, model and arguments, no callbacks."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from engine.data import load as data
    from engine.model import load as models
    from engine.train import trl_args

    d = cfg["data"]
    splits = data.load_splits(d["path"], eval_split=0.0, eval_required=False, seed=cfg["train"]["seed"])
    tokenizer = models.load_tokenizer(cfg)
    model = models.load_model(cfg, "fp32")
    kwargs = trl_args.shared_kwargs(cfg, Path(tempfile.mkdtemp(dir=workdir)), "fp32", has_eval=False)
    kwargs.update(max_length=cfg["train"]["max_length"], completion_only_loss=True)
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**kwargs),
        train_dataset=Dataset.from_list(splits.train),
        processing_class=tokenizer,
        peft_config=models.peft_config(cfg),
    )
    result = trainer.train()
    return float(result.metrics["train_samples_per_second"])


def callback_cost_ms(workdir: Path, calls: int = 500) -> float:
    """The engine's own work per logged step (events, memory sample, control poll), timed directly."""
    import time
    from types import SimpleNamespace

    from transformers import TrainingArguments

    from engine.train.callbacks import ControlCallback, EventsCallback, StopFlag
    from engine.events import EventWriter

    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    # The arguments a Trainer hands every callback (one process: world_size 1).
    args = TrainingArguments(output_dir=str(run_dir / "out"), report_to="none", use_cpu=True)
    events = EventWriter(run_dir / "events.jsonl")
    logging_cb = EventsCallback(events, run_dir, 160, 24, save_best=False)
    control_cb = ControlCallback(StopFlag(run_dir))
    state = SimpleNamespace(is_world_process_zero=True, global_step=1, epoch=0.1, max_steps=calls)
    control = SimpleNamespace(should_save=False, should_training_stop=False)
    logs = {"loss": 1.0, "grad_norm": 2.0, "learning_rate": 1e-3, "entropy": 5.0, "mean_token_accuracy": 0.5, "num_tokens": 1e3, "epoch": 0.1}
    start = time.perf_counter()
    for _ in range(calls):
        logging_cb.on_log(args, state, control, logs=dict(logs))
        control_cb.on_step_end(args, state, control)
    events.close()
    return (time.perf_counter() - start) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=10, help="interleaved pairs (engine, bare), in alternating order")
    args = parser.parse_args()
    cfg = config(args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bare_run(config(2), workdir)  # warm-up: imports and first-call costs out of the measurement
        engine_s, bare_s = [], []
        for i in range(args.repeats):
            order = [("engine", engine_run), ("bare", bare_run)] if i % 2 == 0 else [("bare", bare_run), ("engine", engine_run)]
            for name, fn in order:
                (engine_s if name == "engine" else bare_s).append(fn(cfg, workdir))
    e, b = statistics.median(engine_s), statistics.median(bare_s)
    # Each pair ran back to back, so its ratio cancels most of the machine's drift.
    pairs = sorted(bs / es - 1 for bs, es in zip(bare_s, engine_s))
    pair_overhead = statistics.median(pairs)
    quartiles = statistics.quantiles(pairs, n=4) if len(pairs) >= 4 else [pairs[0], pair_overhead, pairs[-1]]
    print(f"{'variant':<8} {'samples/s (median)':>20}  runs")
    print(f"{'bare':<8} {b:>20.2f}  {', '.join(f'{x:.2f}' for x in bare_s)}")
    print(f"{'engine':<8} {e:>20.2f}  {', '.join(f'{x:.2f}' for x in engine_s)}")
    print(
        f"engine overhead: {100 * pair_overhead:+.1f}% (median of {args.repeats} interleaved pairs; middle half "
        f"{100 * quartiles[0]:+.1f}% to {100 * quartiles[-1]:+.1f}%, all {100 * pairs[0]:+.1f}% to {100 * pairs[-1]:+.1f}%; "
        f"{args.steps} steps, logging every step; load average {os.getloadavg()[0]:.2f})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        per_step_ms = callback_cost_ms(Path(tmp))
    step_ms = 1000 * cfg["train"]["per_device_train_batch_size"] / e
    print(f"callbacks alone: {per_step_ms:.3f} ms per logged step = {100 * per_step_ms / step_ms:.3f}% of a {step_ms:.0f} ms step")


if __name__ == "__main__":
    main()
