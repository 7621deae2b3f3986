"""How an SFT or GRPO training ends: the final model saved, and the run_finished payload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import checkpoints
from engine import run_dir as names


def train(trainer: Any, checkpoint: str | None, events: Any) -> None:
    """trainer.train, resumed from `checkpoint` where given; a checkpoint saved at the run's last step
    (stopped there, or killed before final/ was written) has nothing left to train: transformers
    would still run one step more, so its weights are loaded and the run goes on to end."""
    import json

    state_file = Path(checkpoint) / "trainer_state.json" if checkpoint else None
    if state_file is not None and state_file.is_file():
        saved = json.loads(state_file.read_text(encoding="utf-8"))
        if saved.get("max_steps") and saved.get("global_step", 0) >= saved["max_steps"]:
            from transformers.trainer_callback import TrainerState

            trainer._load_from_checkpoint(checkpoint)
            trainer.state = TrainerState.load_from_json(str(state_file))
            events.emit("status", step=trainer.state.global_step, phase="resuming",
                        message=f"{Path(checkpoint).name} is the run's last step: nothing left to train")
            return
    trainer.train(resume_from_checkpoint=checkpoint)


def finish(trainer: Any, callback: Any, flag: Any, run_dir: Path, tokenizer: Any, events: Any, guard: Any = None) -> dict[str, Any]:
    """Save final/ unless stopped or the NaN guard tripped; returns the run_finished payload."""
    step = trainer.state.global_step
    outputs: dict[str, Any] = {"checkpoints": str(run_dir / names.CHECKPOINTS)}
    if callback.best_step is not None or (run_dir / names.BEST).is_dir():
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
