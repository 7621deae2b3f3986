"""What an export takes and where it goes, checked before anything heavy is imported (standard library
only: `cockpit export` checks the same plan before it starts the engine's export). Every problem is a
one-line ExportError naming the fix."""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from engine import run_dir as names
from engine.errors import ConfigError

EXPORTS = "exports"  # RUN_DIR/exports/<what>: where an export goes unless -o says
ADAPTER_CONFIG = "adapter_config.json"
GGUF_EXTRA = 'pip install -e ".[export]"'
# What a checkpoint holds for resuming, not for using the model.
TRAINING_STATE = ("optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json", "training_args.bin", "rng_state",
                  names.COMPLETE, names.BEST_INFO)


class ExportError(ConfigError):
    """An export that cannot be made as asked (exit code 2)."""


@dataclass
class Plan:
    """One export: the model dir it reads, what it writes and where."""

    run_dir: Path
    source: Path  # final/, best/, epoch_N/ or checkpoints/checkpoint-N
    output: Path
    adapter: bool  # the source is a LoRA adapter (else a whole model)
    merge: bool
    gguf: bool
    base: str  # the base model the run trained (model.name_or_path)

    @property
    def what(self) -> str:
        return "merged model" if self.merge else ("LoRA adapter" if self.adapter else "model")


def source_dir(run_dir: Path, checkpoint: str) -> Path:
    """The model dir `--checkpoint` names: best, final, epoch_N or checkpoint-N."""
    checkpoint = checkpoint.strip().rstrip("/")
    if checkpoint in (names.FINAL, names.BEST) or checkpoint.startswith(names.EPOCH_PREFIX):
        path = run_dir / checkpoint
    elif names.checkpoint_step(checkpoint) is not None and "/" not in checkpoint:
        path = run_dir / names.CHECKPOINTS / checkpoint
    else:
        raise ExportError(f"--checkpoint {checkpoint!r}: give best, final, epoch_N or checkpoint-N", key="checkpoint")
    if not path.is_dir():
        have = [p.name for p in (run_dir / names.FINAL, run_dir / names.BEST) if p.is_dir()]
        have += [p.name for _, p in names.epoch_dirs(run_dir)] + [p.name for _, p in names.checkpoint_dirs(run_dir)]
        raise ExportError(f"{path}: no such model in {run_dir} (it has {', '.join(have) or 'no saved model yet'}); "
                          "pick one with --checkpoint", key="checkpoint")
    if names.checkpoint_step(checkpoint) is not None:
        from engine.checkpoints import problem

        why = problem(path, partial=True)  # the weights must be whole; the optimizer is not exported
        if why:
            raise ExportError(f"{path}: incomplete checkpoint ({why}); pick another with --checkpoint", key="checkpoint")
    return path


def make_plan(run_dir: str | os.PathLike[str], checkpoint: str = names.FINAL, merge: bool = False,
              output: str | os.PathLike[str] | None = None, gguf: bool = False) -> Plan:
    """Check an export request; raises ExportError (one line) for anything that cannot be exported."""
    run_dir = Path(run_dir)
    if not (run_dir / names.CONFIG).is_file():
        raise ExportError(f"{run_dir} is not a run dir (no {names.CONFIG}); give the dir `cockpit run` printed", key="run_dir")
    from engine import config as config_mod

    cfg = config_mod.load_run_config(run_dir)
    source = source_dir(run_dir, checkpoint)
    adapter = (source / ADAPTER_CONFIG).is_file()
    if merge and not adapter:
        raise ExportError(f"{source} holds a whole model ({cfg['model']['finetune']} fine-tuning), not an adapter: there is "
                          "nothing to merge; export it without --merge", key="merge")
    if gguf and adapter and not merge:
        raise ExportError("--gguf writes a whole model: add --merge to merge the adapter into its base first", key="gguf")
    if gguf and importlib.util.find_spec("gguf") is None:
        raise ExportError(f"--gguf needs the gguf package: {GGUF_EXTRA} (or pip install gguf)", key="gguf")
    kind = "merged" if merge else ("adapter" if adapter else "model")
    out = Path(output) if output is not None else run_dir / EXPORTS / f"{source.name}-{kind}"
    if out.exists():
        raise ExportError(f"{out} already exists and is never overwritten; choose another -o DIR", key="output")
    probe = out.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise ExportError(f"{probe}: cannot write there; choose another -o DIR", key="output")
    base = cfg["model"]["name_or_path"]
    if adapter:  # the base peft recorded, where the run's config has none (a run dir copied by hand)
        try:
            base = base or json.loads((source / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
        except (OSError, ValueError, KeyError):
            pass
    return Plan(run_dir=run_dir, source=source, output=out, adapter=adapter, merge=merge, gguf=gguf, base=base)


def model_files(source: Path) -> list[Path]:
    """The files of a model dir that make the model (the training state left out)."""
    return sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith(TRAINING_STATE))
