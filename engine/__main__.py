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
from typing import Any
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


def _resume_from(run_dir: Path, events: Any, partial: bool = False) -> Path:
    """The newest complete checkpoint; incomplete newer ones are named and moved aside (rank 0).

    `partial`: the user asked to go on without a missing optimizer, scheduler or RNG state.
    """
    from engine import checkpoints

    path, skipped = checkpoints.pick(run_dir, partial)
    if path is None and not partial and any(checkpoints.problem(p, partial=True) is None for p, _ in skipped):
        raise EngineError("config", f"{run_dir / names.CHECKPOINTS}: no checkpoint holds everything a resume restores "
                          f"({skipped[0][0].name}: {skipped[0][1]}); to go on with its weights and a fresh optimizer, "
                          f"scheduler and RNG: cockpit run --resume {run_dir} --partial-resume", code="no_checkpoint")
    for bad, why in skipped:
        if distributed_main():
            moved = checkpoints.set_aside(run_dir, bad)
            events.emit("status", phase="resuming", message=f"skipped {bad.name}: incomplete ({why}); "
                        + (f"resuming from {path.name}" if path else "no complete checkpoint before it") + f"; moved to {moved}")
    if path is None:
        found = f" ({len(skipped)} incomplete, moved to {run_dir / names.SKIPPED})" if skipped else ""
        raise EngineError("config", f"{run_dir / names.CHECKPOINTS} holds no complete checkpoint to resume from{found}; "
                          "start a new run instead", code="no_checkpoint")
    missing = checkpoints.missing_state(path) if partial else []
    if missing:
        events.emit("status", phase="resuming", message=f"resuming from {path.name} without {', '.join(missing)}: "
                    "they start fresh (--partial-resume)")
    elif not skipped:
        events.emit("status", phase="resuming", message=f"resuming from {path.name}")
    return path


# How a save that hit a full disk reads when torch's C++ writer reports it (no errno).
_WRITE_FAILED = ("iostream error", "file write failed", "No space left", "PytorchStreamWriter failed")


def _disk_full(exc: BaseException, run_dir: Path) -> bool:
    """The run died because its disk is full (or a file hit the size limit)."""
    import errno
    import shutil

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return True
        if any(s in str(seen) for s in _WRITE_FAILED):
            try:
                return shutil.disk_usage(run_dir).free < 64 * 2**20
            except OSError:
                return True
        seen = seen.__cause__ or seen.__context__
    return False


def distributed_main() -> bool:
    from engine.train import distributed

    return distributed.is_main()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in RUN_DIR/checkpoints")
    parser.add_argument("--partial", action="store_true", help="with --resume: a checkpoint without optimizer, "
                        "scheduler or RNG state counts; they start fresh")
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
    try:
        return _train(args, run_dir)
    finally:
        lock.release()  # the process ends here anyway; in-process callers (tests) run again


def _train(args: argparse.Namespace, run_dir: Path) -> int:
    from engine.train import distributed

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

    from engine.memory import gpu

    # Before anything can start CUDA (importing transformers may): training, the estimate and the memory
    # readings see only the run's GPUs.
    gpu.narrow_to_chosen(cfg["run"])
    from engine.train.callbacks import StopFlag

    flag = StopFlag(run_dir)
    flag.install_signal_handlers()
    from engine import checkpoints

    resume_path = checkpoints.pick(run_dir, args.partial)[0] if args.resume else None
    events.emit(
        "run_started",
        config=config_mod.redact(cfg),
        versions=_versions(),
        devices=[],
        run_dir=str(run_dir),
        resumed=args.resume,
        resumed_from=names.checkpoint_step(resume_path) if resume_path else None,
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
        distributed.check(cfg)
        checkpoint = str(_resume_from(run_dir, events, args.partial)) if args.resume else None
        precision = gpu.pick_precision(cfg["model"]["dtype"])
        devices = gpu.devices()
        problem = gpu.precision_problem(cfg["model"]["dtype"], devices)
        if problem:
            raise EngineError("config", problem, code="precision", key="model.dtype", overrides={"model.dtype": "auto"})
        if devices:
            events.emit("status", phase="loading model", message=f"{len(devices)} GPU(s), {precision}", devices=devices)
        if cfg["run"]["type"] == "sft":
            from engine.train import sft

            result = sft.run(cfg, run_dir, events, flag, checkpoint, precision)
        elif cfg["run"]["type"] == "grpo":
            from engine.train import grpo

            result = grpo.run(cfg, run_dir, events, flag, checkpoint, precision)
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

        kind = "oom" if oom.is_oom(exc) else "disk" if _disk_full(exc, run_dir) else "crash"
        if isinstance(exc, KeyboardInterrupt):
            kind = "crash"
        # The step and batch in flight and, out of memory, the memory then (the failed step's tensors freed after).
        where = oom.failure(exc, kind == "oom")
        message = _one_line(exc)
        if kind == "disk":
            import shutil

            free = shutil.disk_usage(run_dir).free
            message = (f"the disk holding {run_dir} is full ({free / 2**20:.0f} MiB free) ({message}); "
                       f"free space, then resume: cockpit run --resume {run_dir}")
        writer = events
        if not distributed.is_main():
            # One rank can fail alone (its GPU full): it reports its own error, or nobody would;
            # how the run finished stays rank 0's to say.
            writer, where["rank"] = EventWriter(run_dir / names.EVENTS), distributed.rank()
        writer.emit("error", step=where.pop("step", step), kind=kind, code=kind, message=message, traceback=tail, **where)
        if writer is not events:
            writer.close()
        finish("failed")
        return EXIT["failed"]
    step = result.pop("step", None)
    status = result.pop("status")
    finish(status, step=step, **result)
    distributed.close()
    if status == "stopped" and distributed.world_size() > 1:
        return EXIT["completed"]  # torchrun reports any other code as a failed worker; run_finished says stopped
    return EXIT[status]


def _exit_without_teardown(code: list[int]) -> None:
    """The last exit handler: every other one (trackers' flushes, logging) has run and the non-daemon threads
    are joined; what is left is tearing down torch's and transformers' modules, ~0.7 s that writes nothing."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said there anyway
            pass
    os._exit(code[0])


if __name__ == "__main__":
    import atexit

    exit_code = [EXIT["failed"]]  # an uncaught exception exits 1, as Python would
    atexit.register(_exit_without_teardown, exit_code)  # registered first, so it runs last
    try:
        exit_code[0] = main()
    except SystemExit as exc:  # argparse: 2 for a usage error, 0 for --help
        exit_code[0] = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
    except KeyboardInterrupt:  # Ctrl-C before the engine's own handlers are in place
        exit_code[0] = EXIT["stopped"]
        raise
    sys.exit(exit_code[0])
