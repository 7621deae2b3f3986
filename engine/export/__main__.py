"""`python -m engine.export RUN_DIR [--checkpoint best|final|epoch_N|checkpoint-N] [--merge] [-o DIR] [--gguf]`

Started by `cockpit export` (the cockpit never imports torch). Without --merge it copies the model dir
without its training state; with --merge it loads the base model the run trained, applies the adapter,
merges it (peft's merge_and_unload) and saves a plain transformers model with its tokenizer and chat
template. The merged model's logits are checked against the adapter model's on a few prompts, and again
after it is loaded back with AutoModelForCausalLM alone; the lines say how close they are. Everything is
written beside the output dir and renamed into place when whole; an existing dir is never overwritten.

Exit codes: 0 exported, 1 failed (a check did not pass, or a crash: traceback on stderr), 2 bad input.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.export.check import CheckFailed, compare, logits, prompt_ids
from engine.export.plan import ExportError, Plan, make_plan, model_files

def say(text: str) -> None:
    print(text, flush=True)


def _size(path: Path) -> str:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return f"{total / 2**30:.1f} GiB" if total >= 2**30 else f"{total / 2**20:.1f} MiB"


def _tokenizer(plan: Plan, cfg: dict[str, Any]) -> Any:
    """The tokenizer saved with the model (chat template included), else the run's."""
    if any(p.name.startswith("tokenizer") for p in plan.source.iterdir()):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(plan.source))
    from engine.model import load as models

    return models.load_tokenizer(cfg)


def merge(plan: Plan, cfg: dict[str, Any], out: Path) -> None:
    """The adapter merged into the base model and saved to `out`, checked twice against the adapter model."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from engine.memory import gpu
    from engine.model import load as models

    # The base unquantised (a QLoRA adapter merges into 16-bit weights), in float32 on a CPU.
    precision = gpu.pick_precision(cfg["model"]["dtype"]) if torch.cuda.is_available() else "fp32"
    base_cfg = copy.deepcopy(cfg)
    base_cfg["model"]["finetune"] = "lora"
    say(f"loading the base model {plan.base} ({precision})")
    base = models.load_model(base_cfg, precision)
    tokenizer = _tokenizer(plan, cfg)
    model = PeftModel.from_pretrained(base, str(plan.source))
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    ids = prompt_ids(tokenizer)
    reference = logits(model, ids)
    say("merging the adapter (peft merge_and_unload)")
    merged = model.merge_and_unload()
    say(compare(reference, logits(merged, ids), precision, "merged vs adapter"))
    merged.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    del merged, model, base
    reloaded = AutoModelForCausalLM.from_pretrained(str(out), dtype=models.torch_dtype(precision))
    if torch.cuda.is_available():
        reloaded = reloaded.to("cuda")
    say(compare(reference, logits(reloaded.eval(), ids), precision, "loaded back with AutoModelForCausalLM, no peft"))


def base_config(plan: Plan, cfg: dict[str, Any]) -> dict[str, Any]:
    """The exported model's config.json as a dict, known before anything is merged or copied."""
    import json

    if not plan.adapter:
        return json.loads((plan.source / "config.json").read_text(encoding="utf-8"))
    from engine.model import builtin_shape, tiny

    name = plan.base
    if tiny.is_tiny(name):
        return {"model_type": "llama"}
    if builtin_shape.is_shape(name):
        return builtin_shape.config_dict(name)
    from transformers import AutoConfig

    from engine.model import load as models

    return AutoConfig.from_pretrained(name, revision=cfg["model"]["revision"], **models.model_source(name)).to_dict()


def check_gguf(plan: Plan, cfg: dict[str, Any]) -> None:
    """A model and tokenizer the GGUF writer knows, refused before minutes of merging."""
    import json

    from engine.export import gguf

    tokenizer = _tokenizer(plan, cfg)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    gguf.check_supported(base_config(plan, cfg), json.loads(backend.to_str()) if backend is not None else None)


def copy_model(plan: Plan, out: Path) -> None:
    """The model dir's own files, without the optimizer, scheduler, RNG and trainer state."""
    out.mkdir(parents=True)
    for file in model_files(plan.source):
        shutil.copy2(file, out / file.name)


def export(plan: Plan, cfg: dict[str, Any]) -> None:
    tmp = plan.output.with_name(plan.output.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)  # a previous export that died half-way
    plan.output.parent.mkdir(parents=True, exist_ok=True)
    if plan.gguf:
        check_gguf(plan, cfg)
    try:
        if plan.merge:
            merge(plan, cfg, tmp)
        else:
            copy_model(plan, tmp)
        if plan.gguf:
            from engine.export import gguf

            say(gguf.write_and_check(tmp, cfg))
        tmp.rename(plan.output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"exported: {plan.output} ({plan.what}, {_size(plan.output)}, from {plan.source.relative_to(plan.run_dir)} of {plan.run_dir})")
    if plan.merge:
        say(f"load it with: AutoModelForCausalLM.from_pretrained('{plan.output}'), AutoTokenizer.from_pretrained('{plan.output}')")
    elif plan.adapter:
        say(f"an adapter: it needs peft and the base model {plan.base}; --merge makes a model that needs neither")


def _quiet() -> None:
    """Only our lines on the terminal: transformers' progress bars and advisories would bury them."""
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    from transformers.utils import logging

    logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--checkpoint", default="final", help="best, final, epoch_N or checkpoint-N")
    parser.add_argument("--merge", action="store_true", help="merge the LoRA adapter into its base model")
    parser.add_argument("-o", "--output", type=Path, default=None, help="the new dir (default RUN_DIR/exports/NAME)")
    parser.add_argument("--gguf", action="store_true", help="also write model.gguf (the gguf package)")
    args = parser.parse_args(argv)
    _quiet()
    try:
        plan = make_plan(args.run_dir, args.checkpoint, args.merge, args.output, args.gguf)
        from engine import config as config_mod

        export(plan, config_mod.load_run_config(plan.run_dir, with_secrets=True))
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CheckFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except EngineError as exc:  # the base model cannot be loaded (not downloaded, offline): the user's to fix
        print(f"error: {exc.message}", file=sys.stderr)
        return 2 if exc.bad_input else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
