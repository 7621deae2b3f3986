"""How an SFT or GRPO training ends: the final model saved, and the run_finished payload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import run_dir as names


def last_checkpoint(run_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = run_dir / names.CHECKPOINTS
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def finish(trainer: Any, callback: Any, flag: Any, run_dir: Path, tokenizer: Any, events: Any) -> dict[str, Any]:
    """Save final/ unless stopped; returns the run_finished payload (status, step, outputs, metrics)."""
    step = trainer.state.global_step
    outputs: dict[str, Any] = {"checkpoints": str(run_dir / names.CHECKPOINTS)}
    if callback.best_step is not None:
        outputs["best"] = str(run_dir / names.BEST)
    result = {"step": step, "total_steps": trainer.state.max_steps, "metrics": callback.summary,
              "memory": callback.memory_report, "outputs": outputs}
    if flag.stop:
        return {"status": "stopped", **result}
    events.emit("status", step=step, phase="saving", message="saving the final model")
    final = run_dir / names.FINAL
    trainer.save_model(str(final))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(final))
    outputs["final"] = str(final)
    return {"status": "completed", **result}
