"""Checkpoints that are complete or ignored (standard library only).

transformers writes straight into checkpoint-N, trainer_state.json last, and a kill or a full disk
can leave any prefix of it; `get_last_checkpoint` takes the highest number whatever it holds. Here,
as torch DCP writes its metadata last and torchtitan and open-instruct accept only checkpoints with
a completion marker: after the Trainer's save, every file is fsynced and `cockpit_complete.json`
(the files and their sizes) is written last, atomically. A checkpoint counts when its marker's
files are all there at their sizes, or, for one written before markers (or cut between the save
and the marker), when every file a resume restores is present and whole (JSON parses, safetensors
match their header, torch's zip archives have their directory). The others are never picked: they
are named in one line and moved to RUN_DIR/skipped/, never deleted. With `partial` (the user's
`--partial-resume`), a checkpoint whose weights and trainer state are whole counts even when the
optimizer, scheduler or RNG state is missing: those then start fresh, and the resume says so.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zipfile
from pathlib import Path

from engine import run_dir as names

TRAINER_STATE = "trainer_state.json"
WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
RESTORED = ("optimizer.pt", "scheduler.pt")  # what a resume restores besides the weights and the RNG
SHARDED_MARKS = ("global_step", "pytorch_model_fsdp", "optimizer_0")  # DeepSpeed / FSDP layouts: their own files


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def seal(path: str | os.PathLike[str]) -> None:
    """Mark a checkpoint the Trainer has finished writing as complete: files synced, marker last."""
    path = Path(path)
    files = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != names.COMPLETE):
        _fsync(file)
        files[str(file.relative_to(path))] = file.stat().st_size
    tmp = path / (names.COMPLETE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"files": files}, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path / names.COMPLETE)
    _fsync(path)


def _whole(file: Path) -> str | None:
    """Why a file a resume reads is not whole, or None."""
    try:
        if file.suffix == ".json":
            json.loads(file.read_text(encoding="utf-8"))
        elif file.suffix == ".safetensors":
            with open(file, "rb") as f:
                head = f.read(8)
                if len(head) < 8:
                    return "truncated"
                size = struct.unpack("<Q", head)[0]
                header = json.loads(f.read(size))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            if file.stat().st_size != 8 + size + end:
                return "truncated"
        elif file.suffix in (".pt", ".pth", ".bin"):
            with zipfile.ZipFile(file) as z:  # torch.save writes a zip; its directory is at the end
                z.infolist()
    except (OSError, ValueError, KeyError, TypeError, struct.error, zipfile.BadZipFile):
        return "truncated or unreadable"
    return None


def _state_file(name: str) -> bool:
    """A file that carries the training state (not the model): a partial resume goes on without it."""
    return name in RESTORED or name.startswith("rng_state")


def missing_state(path: str | os.PathLike[str]) -> list[str]:
    """The optimizer, scheduler and RNG files a resume from `path` would restore but cannot find."""
    present = {p.name for p in Path(path).iterdir()}
    if any(n.startswith(SHARDED_MARKS) for n in present):
        return []
    missing = [name for name in RESTORED if name not in present]
    return missing + ([] if any(n.startswith("rng_state") for n in present) else ["rng_state.pth"])


def problem(path: str | os.PathLike[str], partial: bool = False) -> str | None:
    """Why a checkpoint cannot be resumed from, in a few words, or None when it is complete.

    `partial`: missing optimizer, scheduler or RNG files are no problem (truncated ones still are).
    """
    path = Path(path)
    marker = path / names.COMPLETE
    if marker.is_file():
        try:
            listed = json.loads(marker.read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return f"{names.COMPLETE} unreadable"
        for name, size in listed.items():
            file = path / name
            if not file.is_file():
                if partial and _state_file(name):
                    continue
                return f"{name} missing"
            if file.stat().st_size != size:
                return f"{name} truncated ({file.stat().st_size} of {size} bytes)"
        return None
    if not (path / TRAINER_STATE).is_file():
        return f"{TRAINER_STATE} missing (the save was cut short)"
    present = {p.name for p in path.iterdir()}
    sharded = any(n.startswith(SHARDED_MARKS) for n in present)
    if not sharded:
        if not any(w in present for w in WEIGHTS):
            return "no model weights"
        for name in () if partial else RESTORED:
            if name not in present:
                return f"{name} missing"
        if not partial and not any(n.startswith("rng_state") for n in present):
            return "rng_state.pth missing"
    for name in sorted(present):
        file = path / name
        if file.is_file():
            why = _whole(file)
            if why:
                return f"{name} {why}"
    return None


def pick(run_dir: str | os.PathLike[str], partial: bool = False) -> tuple[Path | None, list[tuple[Path, str]]]:
    """(the newest complete checkpoint, the newer incomplete ones with why), without changing anything."""
    skipped: list[tuple[Path, str]] = []
    for _, path in reversed(names.checkpoint_dirs(run_dir)):
        why = problem(path, partial)
        if why is None:
            return path, skipped
        skipped.append((path, why))
    return None, skipped


def set_aside(run_dir: str | os.PathLike[str], path: Path) -> Path:
    """Move an incomplete checkpoint to RUN_DIR/skipped/ (never deleted: it may hold what someone needs)."""
    target_dir = Path(run_dir) / names.SKIPPED
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    n = 1
    while target.exists():
        n += 1
        target = target_dir / f"{path.name}.{n}"
    shutil.move(str(path), str(target))
    return target


def rotate(run_dir: str | os.PathLike[str], keep: int | None) -> list[Path]:
    """Delete the oldest complete checkpoints beyond `keep`; the newest complete one always stays.

    Called after a new checkpoint is sealed, so a checkpoint is only removed once its successor is
    whole (the Trainer's own rotation runs before anything is marked, so it is turned off).
    """
    if not keep or keep < 1:
        return []
    complete = [path for _, path in names.checkpoint_dirs(run_dir) if problem(path) is None]
    removed = []
    for path in complete[: max(0, len(complete) - keep)]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def replace_dir(tmp: Path, target: Path) -> None:
    """Put a fully written dir (best/, final/) in place of the old one in two renames, never half."""
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
