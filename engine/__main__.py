"""`python -m engine RUN_DIR [--resume]`: train what RUN_DIR/config.yaml says, writing events.

Exit codes: 0 completed, 1 failed, 2 bad config or data (nothing trained), 130 stopped on request.
Tracebacks go to stderr (the cockpit sends it to RUN_DIR/engine.log); events carry one-line errors.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

from engine import config as config_mod
from engine import run_dir as names
from engine.errors import EngineError
from engine.events import EventWriter, NullWriter

EXIT = {"completed": 0, "failed": 1, "bad_input": 2, "stopped": 130}


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "trl", "peft", "datasets", "accelerate"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = ""
    return out


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _resume_point(run_dir: Path) -> int | None:
    """The step of the checkpoint a resume continues from (the events after it repeat steps)."""
    from engine.train.outputs import last_checkpoint

    path = last_checkpoint(run_dir)
    return names.checkpoint_step(path) if path else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in RUN_DIR/checkpoints")
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir.resolve()

    from engine.train import distributed

    # One live engine per run dir: a second one would interleave its events and checkpoints with
    # the first. It is refused before it writes anything (rank 0 holds the lock for the job).
    lock = names.EngineLock(run_dir)
    if distributed.is_main():
        try:
            lock.acquire()
        except names.RunDirBusy as exc:
            print(str(exc), file=sys.stderr)
            return EXIT["bad_input"]

    # Under torchrun only rank 0 writes events (the others would repeat every line).
    events = EventWriter(run_dir / names.EVENTS) if distributed.is_main() else NullWriter()
    started = time.time()

    def finish(status: str, step: int | None = None, **payload) -> None:
        events.emit("run_finished", step=step, status=status, runtime_s=round(time.time() - started, 1), **payload)
        events.close()

    try:
        cfg = config_mod.load_run_config(run_dir, with_secrets=True)
    except config_mod.ConfigError as exc:
        events.emit("error", **exc.payload())
        finish("failed")
        print(str(exc), file=sys.stderr)
        return EXIT["bad_input"]

    from engine.train.callbacks import StopFlag

    flag = StopFlag(run_dir)
    flag.install_signal_handlers()
    events.emit(
        "run_started",
        config=config_mod.redact(cfg),
        versions=_versions(),
        devices=[],
        run_dir=str(run_dir),
        resumed=args.resume,
        resumed_from=_resume_point(run_dir) if args.resume else None,
        pid=os.getpid(),
        world_size=distributed.world_size(),
    )
    # The memory estimate as the run starts it, for the end-of-run comparison with the measured peak.
    try:
        from engine.memory import estimate

        events.emit("estimate", **estimate.estimate(cfg).payload())
    except Exception:  # advisory: a bug in the estimate must not stop a run; its traceback goes to engine.log
        traceback.print_exc()
    step = None
    try:
        from engine.memory import gpu

        distributed.check(cfg)
        precision = gpu.pick_precision(cfg["model"]["dtype"])
        devices = gpu.devices()
        if precision == "fp16" and not devices:
            raise EngineError("config", "fp16 needs a CUDA GPU; on this machine use --set model.dtype=auto (float32)")
        if devices:
            events.emit("status", phase="loading model", message=f"{len(devices)} GPU(s), {precision}", devices=devices)
        if cfg["run"]["type"] == "sft":
            from engine.train import sft

            result = sft.run(cfg, run_dir, events, flag, args.resume, precision)
        elif cfg["run"]["type"] == "grpo":
            from engine.train import grpo

            result = grpo.run(cfg, run_dir, events, flag, args.resume, precision)
        else:
            raise EngineError("config", f"run.type '{cfg['run']['type']}' is not supported by this engine yet; use sft")
    except EngineError as exc:
        events.emit("error", **exc.payload())
        finish("failed")
        print(exc.message, file=sys.stderr)
        return EXIT["bad_input"] if exc.bad_input else EXIT["failed"]
    except BaseException as exc:  # the run died: say why in one line, keep the traceback in the log
        traceback.print_exc()
        tail = "".join(traceback.format_exception(exc)[-12:])
        from engine.memory import oom

        kind = "oom" if oom.is_oom(exc) else "crash"
        if isinstance(exc, KeyboardInterrupt):
            kind = "crash"
        # The step and batch in flight and, out of memory, the memory then (the failed step's tensors freed after).
        where = oom.failure(exc, kind == "oom")
        writer = events
        if not distributed.is_main():
            # One rank can fail alone (its GPU full): it reports its own error, or nobody would;
            # how the run finished stays rank 0's to say.
            writer, where["rank"] = EventWriter(run_dir / names.EVENTS), distributed.rank()
        writer.emit("error", step=where.pop("step", step), kind=kind, code=kind, message=_one_line(exc), traceback=tail, **where)
        if writer is not events:
            writer.close()
        finish("failed")
        return EXIT["failed"]
    step = result.pop("step", None)
    status = result.pop("status")
    finish(status, step=step, **result)
    if status == "stopped" and distributed.world_size() > 1:
        return EXIT["completed"]  # torchrun reports any other code as a failed worker; run_finished says stopped
    return EXIT[status]


if __name__ == "__main__":
    sys.exit(main())
