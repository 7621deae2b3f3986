"""`python -m engine.evaluate RUN_DIR --checkpoint best --dataset test.jsonl`: a saved model of a run
evaluated on a test file, measured as the run's own eval measures it.

The run's config decides everything else (model, template, max_length, rewards), so a test split is
read, templated and scored exactly as the training data was. SFT gives eval_loss and token accuracy
(TRL's SFTTrainer.evaluate); GRPO generates for every prompt and gives answer and format accuracy and
each reward (GRPOTrainer.evaluate with the run's rewards). Every record of the file is evaluated,
whatever its train/eval metadata; `--limit N` takes the first N.

The result goes to RUN_DIR/eval/<name>.json and, as a `test_eval` event, to events.jsonl (so the
TUI and doctor show it). Exit codes: 0 evaluated, 2 bad input (no such checkpoint, unusable data),
1 failed. The functions that check input are standard library only: the cockpit calls them to
refuse bad input before it starts this process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from engine import checkpoints
from engine import run_dir as names
from engine.errors import EngineError

# Eval keys that measure the evaluation's pace, not the model.
PACE_KEYS = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "eval_model_preparation_time", "eval_num_tokens", "epoch")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def model_dir(run_dir: Path, which: str) -> tuple[Path, int | None]:
    """(the saved model's dir, its step) for best, final or checkpoint-N; EngineError("config") otherwise."""
    run_dir = Path(run_dir)
    if not (run_dir / names.CONFIG).is_file():
        raise EngineError("config", f"{run_dir} is not a run dir (no {names.CONFIG}); give the dir `cockpit run` printed")
    saved = [p.name for _, p in names.checkpoint_dirs(run_dir)]
    others = [n for n in (names.BEST, names.FINAL) if (run_dir / n).is_dir()]
    if not saved and not others:
        raise EngineError("config", f"{run_dir} holds no saved model yet (no best/, final/ or checkpoint); "
                          "evaluate once the run has saved a checkpoint", code="no_checkpoint", key="--checkpoint")
    choices = f"saved models: {', '.join(others) or 'none'}" + (f"; checkpoints: {', '.join(saved)}" if saved else "")
    if which in (names.BEST, names.FINAL):
        path = run_dir / which
        if not path.is_dir():
            why = "kept when the run evaluates, with train.save_best" if which == names.BEST else "written when a run completes"
            raise EngineError("config", f"{run_dir} has no {which}/ ({why}); {choices}", code="no_checkpoint", key="--checkpoint")
        step = None
        if which == names.BEST:
            try:
                step = json.loads((path / names.BEST_INFO).read_text(encoding="utf-8")).get("step")
            except (OSError, ValueError, AttributeError):
                step = None
        else:
            step = _final_step(run_dir)
        return path, step
    step = names.checkpoint_step(which)
    if step is None:
        raise EngineError("config", f"--checkpoint {which}: expected best, final or checkpoint-N; {choices}", key="--checkpoint")
    path = run_dir / names.CHECKPOINTS / f"checkpoint-{step}"
    if not path.is_dir():
        raise EngineError("config", f"{run_dir} has no checkpoint-{step}; {choices}", code="no_checkpoint", key="--checkpoint")
    why = checkpoints.problem(path, partial=True)  # its weights must be whole; optimizer state is not needed
    if why:
        raise EngineError("config", f"{path} is incomplete ({why}); {choices}", code="no_checkpoint", key="--checkpoint")
    return path, step


def _final_step(run_dir: Path) -> int | None:
    """The step final/ was saved at: the last completed run_finished says it."""
    from engine.events import read_events

    step = None
    try:
        for event in read_events(run_dir / names.EVENTS):
            if event.get("type") == "run_finished" and event.get("status") == "completed":
                step = event.get("step")
    except OSError:
        return None
    return step


def test_config(cfg: dict[str, Any], dataset: Path) -> dict[str, Any]:
    """The run's config pointed at the test file: one split holding every record, no trackers."""
    out = {section: dict(values) if isinstance(values, dict) else values for section, values in cfg.items()}
    out["data"].update(path=str(dataset), eval_path=None, eval_split=0, split_field="")
    out["train"].update(eval_strategy="no", report_to="none")  # no eval split to require; nothing sent to a tracker
    return out


def test_rows(cfg: dict[str, Any], dataset: Path, chat: bool | None = None) -> Any:
    """The test file read as the run reads its data (Splits, every record in `train`); raises DataError."""
    dataset = Path(dataset)
    if not dataset.is_file():
        raise EngineError("data", f"{dataset}: no such file; give the test split as JSON, JSONL or CSV (--dataset)", key="--dataset")
    tcfg = test_config(cfg, dataset)
    if cfg["run"]["type"] == "grpo":
        from engine.data import prompts

        return prompts.load(tcfg, chat)
    from engine.train.sft import load_data

    return load_data(tcfg, chat)


def result_name(dataset: Path, which: str) -> str:
    """test-best for test.jsonl on best/: the name of its JSON file and log."""
    return f"{Path(dataset).stem}-{which}"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise EngineError("config", f"--name {name!r}: use letters, digits, '.', '_' and '-' (it names a file in {names.EVAL}/)", key="--name")
    return name


# ---- the evaluation (heavy imports from here on, inside the functions) ---------------------------


def load_trained(cfg: dict[str, Any], path: Path, precision: str) -> Any:
    """The model saved in `path`: the run's base model with its adapter, or the whole fine-tuned model."""
    from engine.model import load as models

    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(models.load_model(cfg, precision), str(path))
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=models.torch_dtype(precision))


def _evaluate_sft(cfg: dict[str, Any], tokenizer: Any, rows: list[dict[str, Any]], model: Any, scratch: Path, precision: str) -> tuple[dict, int]:
    from engine.train import sft

    args = sft.sft_config(cfg, scratch, precision, has_eval=True)
    # TRL requires a train_dataset; one record stands in, never trained on.
    trainer = sft.trainer_class(False)(model=model, args=args, train_dataset=sft.to_dataset(rows[:1]),
                                       eval_dataset=sft.to_dataset(rows), processing_class=tokenizer)
    metrics = trainer.evaluate()
    return metrics, len(trainer.eval_dataset)  # TRL leaves out records that truncation masked entirely


def _evaluate_grpo(cfg: dict[str, Any], tokenizer: Any, rows: list[dict[str, Any]], model: Any, scratch: Path, precision: str) -> tuple[dict, int]:
    from engine.train import grpo
    from engine.train import rewards as rewards_mod
    from engine.train.sft import to_dataset

    g = cfg["grpo"]
    cfg = {**cfg, "grpo": {**g, "beta": 0.0}}  # no KL to measure: no reference model to hold in memory
    reward_set = rewards_mod.build(g)
    args = grpo.grpo_config(cfg, scratch, precision, has_eval=True, weights=reward_set.weights, end_ids=grpo.end_ids(tokenizer))
    log = grpo.GenerationLog(reward_set.names, reward_set.weights, rewards_mod.Tags.from_config(g), g["generations_to_log"])
    trainer = grpo._trainer_class()(model=model, reward_funcs=reward_set.funcs, args=args, train_dataset=to_dataset(rows[:1]),
                                     eval_dataset=to_dataset(rows), processing_class=tokenizer)  # the train set: see _evaluate_sft
    trainer.generation_log = log
    return trainer.evaluate(), len(rows)


def evaluate(run_dir: Path, which: str, dataset: Path, name: str, limit: int = 0) -> dict[str, Any]:
    """Evaluate; returns the result written to RUN_DIR/eval/<name>.json and the test_eval event."""
    from engine import config as config_mod
    from engine.memory import gpu
    from engine.model import load as models
    from engine.train.sft import check_chat_template

    run_dir = Path(run_dir).resolve()
    path, step = model_dir(run_dir, which)
    cfg = config_mod.load_run_config(run_dir, with_secrets=True)
    tcfg = test_config(cfg, Path(dataset).resolve())
    splits = test_rows(cfg, Path(dataset).resolve())
    tokenizer = models.load_tokenizer(cfg)
    splits = check_chat_template(tcfg, tokenizer, splits, lambda c, chat: test_rows(cfg, Path(dataset).resolve(), chat))
    records = len(splits.train)
    dropped = dict(splits.dropped)
    grpo = cfg["run"]["type"] == "grpo"
    if grpo:  # prompts over grpo.max_prompt_length are left out, as in training
        from engine.train.grpo import preflight

        report = preflight(tcfg, tokenizer, splits)
        dropped.update(report["train"]["dropped_reasons"])
    rows = splits.train[:limit] if limit else splits.train
    precision = gpu.pick_precision(cfg["model"]["dtype"])
    model = load_trained(cfg, path, precision)
    with tempfile.TemporaryDirectory(prefix="cockpit-eval-") as scratch:
        run = _evaluate_grpo if grpo else _evaluate_sft
        metrics, evaluated = run(tcfg, tokenizer, rows, model, Path(scratch), precision)
    result = {
        "name": name,
        "checkpoint": which if which in (names.BEST, names.FINAL) else path.name,
        "model_step": step,
        "model_dir": str(path),
        "dataset": str(dataset),
        "run_type": cfg["run"]["type"],
        "records": records,
        "evaluated": evaluated,
        "dropped": dropped,
        "metrics": {k: v for k, v in metrics.items() if k not in PACE_KEYS},
    }
    return write(run_dir, result)


def write(run_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """RUN_DIR/eval/<name>.json (whole or not at all), then the test_eval event appended to events.jsonl."""
    from engine.events import make_event

    folder = run_dir / names.EVAL
    folder.mkdir(exist_ok=True)
    target = folder / f"{result['name']}.json"
    result = {**result, "path": str(target)}
    event = make_event("test_eval", None, **result)
    body = {k: v for k, v in event.items() if k not in ("v", "type", "step")}  # step null: the fold's progress stays put
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    # One write of one line in append mode: it lands whole even while the run's engine appends too.
    with open(run_dir / names.EVENTS, "ab") as f:
        f.write((json.dumps(event, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8"))
    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--checkpoint", default=names.BEST, help="best, final or checkpoint-N")
    parser.add_argument("--dataset", type=Path, required=True, help="the test file (JSON, JSONL or CSV)")
    parser.add_argument("--name", default=None, help="names eval/<name>.json (default: <dataset stem>-<checkpoint>)")
    parser.add_argument("--limit", type=int, default=0, help="evaluate the first N records only (0: all)")
    args = parser.parse_args(argv)
    try:
        name = check_name(args.name or result_name(args.dataset, args.checkpoint))
        result = evaluate(args.run_dir, args.checkpoint, args.dataset, name, max(0, args.limit))
    except EngineError as exc:
        print(exc.message, file=sys.stderr)
        return 2 if exc.bad_input else 1
    except BaseException:  # the traceback is for the log; the cockpit prints its last line
        traceback.print_exc()
        return 1
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
