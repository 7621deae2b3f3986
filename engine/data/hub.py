"""Datasets that are not one file: `hf:NAME[:CONFIG][@SPLIT]` read through `datasets.load_dataset` (a hub
id, or a local data dir), and a directory written by `Dataset.save_to_disk`. Their rows go through the
same format detection, normalisation and lint as a file's (engine/data/load.py asks here).

`datasets` is imported only when such a dataset is read (under a second, no torch). Offline, a hub
dataset that is not in the cache is one line naming the cache and the way to local files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import DataError

PREFIX = "hf:"
DEFAULT_SPLIT = "train"
_SAVED_MARKS = ("dataset_dict.json", "state.json")  # what save_to_disk writes (a DatasetDict, a Dataset)


def is_hub(path: Any) -> bool:
    return isinstance(path, (str, os.PathLike)) and str(path).startswith(PREFIX)


def is_saved(path: Any) -> bool:
    """A directory written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    p = Path(str(path))
    return p.is_dir() and any((p / mark).is_file() for mark in _SAVED_MARKS)


def parse(spec: str) -> tuple[str, str | None, str]:
    """`hf:openai/gsm8k:main@test` -> ("openai/gsm8k", "main", "test"); the split defaults to train."""
    spec = str(spec)
    body = spec[len(PREFIX):].strip()
    body, _, split = body.partition("@")
    name, _, config = body.partition(":")
    if not name:
        raise DataError(f"{spec}: name a dataset, e.g. --dataset hf:openai/gsm8k:main (hf:NAME[:CONFIG][@SPLIT])",
                        code="file_not_found", key="data.path")
    return name, config or None, split or DEFAULT_SPLIT


def _cache_dir() -> str:
    from datasets import config

    return str(config.HF_DATASETS_CACHE)


def _offline_error(spec: str, name: str, config: str | None, exc: BaseException) -> DataError:
    args = f"'{name}'" + (f", '{config}'" if config else "")
    return DataError(
        f"{spec}: not in the datasets cache ({_cache_dir()}) and the hub cannot be reached ({type(exc).__name__}); on a "
        f"machine with a network run python -c \"import datasets; datasets.load_dataset({args}).save_to_disk('DIR')\" and "
        "pass --dataset DIR, or give a local .jsonl, .json or .csv file",
        code="file_not_found", key="data.path")


def _offline() -> bool:
    return os.environ.get("HF_DATASETS_OFFLINE", "0").upper() in ("1", "ON", "YES", "TRUE") or \
        os.environ.get("HF_HUB_OFFLINE", "0").upper() in ("1", "ON", "YES", "TRUE")


def _reachable() -> bool:
    """The hub answers (one quick connect): without it the cache alone is asked, in a second rather than after
    a minute of retries."""
    if _offline():
        return False
    from engine.model.load import hub_reachable

    return hub_reachable()


@contextlib.contextmanager
def _cache_only(on: bool) -> Iterator[None]:
    """datasets and huggingface_hub in offline mode for one call (they read the flag at call time)."""
    if not on:
        yield
        return
    from datasets import config
    from huggingface_hub import constants

    saved = config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def _pick_split(found: Any, spec: str, split: str) -> Any:
    """One split of a DatasetDict, named in the spec (train by default)."""
    from datasets import DatasetDict

    if not isinstance(found, DatasetDict):
        return found
    if split not in found:
        raise DataError(f"{spec}: no split '{split}' (it has {', '.join(found)}); name one with @SPLIT, e.g. "
                        f"{spec.split('@')[0]}@{next(iter(found))}", code="file_not_found", key="data.path")
    return found[split]


def load(spec: str) -> Any:
    """The `datasets.Dataset` a spec or a saved dir names; DataError (one line) when it cannot be had."""
    import datasets

    spec = str(spec)
    if not is_hub(spec):  # a save_to_disk dir (a DatasetDict gives its train split)
        try:
            return _pick_split(datasets.load_from_disk(str(spec)), str(spec), DEFAULT_SPLIT)
        except (OSError, ValueError) as exc:
            raise DataError(f"{spec}: not a dataset saved by datasets ({str(exc).splitlines()[0]}); save it again with "
                            "save_to_disk, or give a .jsonl, .json or .csv file", code="unreadable", key="data.path") from None
    name, config, split = parse(spec)
    try:
        with _cache_only(not Path(name).expanduser().exists() and not _reachable()):
            found = datasets.load_dataset(str(Path(name).expanduser()) if name.startswith(("~", ".", "/")) else name,
                                          config, split=split)
    except ValueError as exc:  # an unknown split or config: datasets names the ones there are
        text = str(exc).splitlines()[0].rstrip(".")
        raise DataError(f"{spec}: {text}; name them as hf:NAME[:CONFIG][@SPLIT]", code="file_not_found", key="data.path") from None
    except FileNotFoundError as exc:
        if _offline() or "offline" in str(exc).lower() or "cache" in str(exc).lower():
            raise _offline_error(spec, name, config, exc) from None
        raise DataError(f"{spec}: no such dataset on the hub or on disk ({str(exc).splitlines()[0]})",
                        code="file_not_found", key="data.path") from None
    except (ConnectionError, OSError) as exc:
        raise _offline_error(spec, name, config, exc) from None
    except Exception as exc:  # datasets and huggingface_hub raise their own classes for a missing or private repo
        if type(exc).__name__ in ("DatasetNotFoundError", "RepositoryNotFoundError", "GatedRepoError", "LocalEntryNotFoundError"):
            raise (_offline_error(spec, name, config, exc) if _offline() else
                   DataError(f"{spec}: {str(exc).splitlines()[0]}", code="file_not_found", key="data.path")) from None
        raise
    return found


def iter_rows(spec: str) -> Iterator[tuple[int, Any]]:
    """(index, record) for every row, as a JSON list's records are yielded (0-based)."""
    from datasets.utils import logging as ds_logging

    bars = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()  # datasets' own bars would break into the cockpit's terminal lines
    try:
        rows = load(spec)
    finally:
        if bars:
            ds_logging.enable_progress_bar()
    for index, row in enumerate(rows):
        yield index, {key: _without_padding(value) for key, value in row.items()}


def _without_padding(value: Any) -> Any:
    """A column's value without the keys Arrow invented: it stores the objects inside a column as one struct
    type, so every object gets every key any of them has (None where it had none): a tool call's arguments
    would train with every other tool's parameters as null. Inside a column, a None-valued key is taken as
    absent."""
    if isinstance(value, list):
        return [_without_padding(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_padding(v) for k, v in value.items() if v is not None}
    return value
