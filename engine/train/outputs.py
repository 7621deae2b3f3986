"""How an SFT or GRPO training ends: the final model saved, and the run_finished payload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import checkpoints
from engine import run_dir as names


def finish(trainer: Any, callback: Any, flag: Any, run_dir: Path, tokenizer: Any, events: Any, guard: Any = None) -> dict[str, Any]:
    """Save final/ unless stopped or the NaN guard tripped; returns the run_finished payload."""
    step = trainer.state.global_step
    outputs: dict[str, Any] = {"checkpoints": str(run_dir / names.CHECKPOINTS)}
    if callback.best_step is not None:
        outputs["best"] = str(run_dir / names.BEST)
    epochs = names.epoch_dirs(run_dir)
    if epochs:
        outputs["epochs"] = [str(path) for _, path in epochs]
    result = {"step": step, "total_steps": trainer.state.max_steps, "metrics": callback.summary,
              "memory": callback.memory_report, "outputs": outputs}
    if guard is not None and guard.tripped is not None:
        return {"status": "failed", **result}  # its error event is written; no final/ from NaN weights
    if flag.stop:
        return {"status": "stopped", **result}
    events.emit("status", step=step, phase="saving", message="saving the final model")
    final, tmp = run_dir / names.FINAL, run_dir / (names.FINAL + ".tmp")
    trainer.save_model(str(tmp))  # beside final/, then renamed: never a half-written final/
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(tmp))
        checkpoints.replace_dir(tmp, final)
    outputs["final"] = str(final)
    return {"status": "completed", **result}
