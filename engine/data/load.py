"""The one dataset loader: JSON, JSONL and CSV in, TRL's standard dataset rows out.

Standard library only, so the cockpit can validate input before the engine starts. Records are
read one at a time (`iter_records`), so `cockpit lint` streams any file with bounded memory; the
loader for training (`load_splits`) collects them into lists. Format detection and normalisation
live in `engine.data.formats`. Every user error is a `DataError` whose message is one line naming the
file and line (JSONL/CSV, 1-based) or record index (a JSON list, ``file[i]``) and the fix.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.data import hub
from engine.data.formats import (
    CHAT_FORMATS, FORMATS, LOSS_ON, PLAIN_SEPARATORS, TEMPLATE_FIX, DataError, RecordError, Skip, detect_format,
    normalize_record, unescape_template,
)

__all__ = ["DataError", "Splits", "load_splits", "iter_records", "detect_format", "where",
           "file_kind", "FORMATS", "CHAT_FORMATS"]

SPLITS = ("train", "eval")
_CHUNK = 1 << 20


@dataclass
class Splits:
    """A dataset loaded, normalised and split for training."""

    train: list[dict]
    eval: list[dict]
    format: str  # the detected (or given) format name
    path: str
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> records skipped
    warnings: list[str] = field(default_factory=list)
    train_places: list[str] = field(default_factory=list)  # "file:LINE" of each train row
    eval_places: list[str] = field(default_factory=list)


def where(path: str | os.PathLike, n: int, kind: str) -> str:
    """A record's place for messages: ``file:LINE`` (JSONL/CSV) or ``file[INDEX]`` (a JSON list, a dataset's rows)."""
    return f"{path}[{n}]" if kind in ("json", "dataset") else f"{path}:{n}"


MAX_RECORD_BYTES = 16 * 2**20  # one record over 16 MiB is a mistake (a whole corpus in one line), not a record
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_TEXT = re.compile(r"\\u[dD][89a-fA-F]")


def _check_encoding(path: str | os.PathLike, head: bytes) -> None:
    """UTF-16/32 files (Windows tools write them) are named as such, with the way to convert them."""
    found = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    if found is None and len(head) >= 4 and head.count(b"\x00") >= len(head) // 3:
        found = "UTF-16"  # no BOM, but every other byte is zero: ASCII text in UTF-16
    if found:
        raise DataError(f"{path}: the file is {found}, not UTF-8; convert it: iconv -f {found} -t UTF-8 {path} > data.jsonl",
                        code="unreadable", key="data.path")


def _lone_surrogate(obj: Any) -> bool:
    """A string with half a UTF-16 pair (\\ud800 alone): no tokenizer can encode it."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(obj, dict):
        return any(_lone_surrogate(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_lone_surrogate(v) for v in obj)
    return False


class _DuplicateKey(ValueError):
    """Two values under one key in one object: JSON keeps the last without a word, so the data is not what it says."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _DuplicateKey(key)
    return obj


def _loads(raw: bytes | str) -> Any:
    return json.loads(raw, object_pairs_hook=_no_duplicates)


def _duplicate(where_: str, exc: _DuplicateKey) -> DataError:
    return DataError(f"{where_}: the key {str(exc)!r} appears twice in one object (JSON would keep only the last); "
                     "remove or rename one", code="bad_record")


def _parsed(path: Any, where_: str, raw: bytes | str, loads: Any = _loads) -> Any:
    """One record parsed, or the DataError that says what is wrong with it (size, nesting, text)."""
    if len(raw) > MAX_RECORD_BYTES:
        return DataError(f"{where_}: a record of {len(raw) / 2**20:.0f} MiB, over the {MAX_RECORD_BYTES // 2**20} MiB a record may hold; "
                         "split it into records or remove it", code="bad_record")
    try:
        obj = loads(raw)
    except RecursionError:
        return DataError(f"{where_}: JSON nested too deeply to be a record; flatten it", code="bad_record")
    except _DuplicateKey as exc:
        return _duplicate(where_, exc)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        msg = getattr(exc, "msg", None) or str(exc)
        col = f" at column {exc.colno}" if hasattr(exc, "colno") else ""
        return DataError(f"{where_}: invalid JSON ({msg}{col}); fix or remove the line", code="invalid_json")
    pattern = _SURROGATE_ESCAPE if isinstance(raw, bytes) else _SURROGATE_ESCAPE_TEXT
    if pattern.search(raw) and _lone_surrogate(obj):
        return DataError(f"{where_}: text with a lone surrogate escape (half of a UTF-16 pair, e.g. \\ud800); "
                         "fix or remove the escape", code="bad_record")
    return obj


def file_kind(path: str | os.PathLike) -> str:
    """'jsonl', 'json' (a list, or one record) or 'csv', from the extension and first bytes; 'dataset' for
    hf:NAME[:CONFIG][@SPLIT] and a dir written by save_to_disk (engine/data/hub.py)."""
    if hub.is_hub(path) or hub.is_saved(path):
        return "dataset"
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: file not found; check the path (relative paths start in "
                        f"{os.getcwd()})", code="file_not_found", key="data.path")
    if p.is_dir():
        raise DataError(f"{path}: is a directory; pass a .jsonl, .json or .csv file, a dir saved by datasets' save_to_disk, "
                        f"or hf:{path} to read its data files through datasets.load_dataset")
    if not p.is_file():  # a FIFO or a device: reading it could block forever
        raise DataError(f"{path}: not a regular file (a pipe or a device); save the data to a file first",
                        code="unreadable", key="data.path")
    with open(p, "rb") as f:
        raw = f.read(4096)
    _check_encoding(path, raw)
    ext = p.suffix.lower()
    if ext in (".csv", ".tsv"):
        return "csv"
    with open(p, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        if head[:1] == b"{" and ext != ".jsonl" and ext != ".ndjson":
            f.seek(0)
            first = f.readline()
            try:  # a .json file whose first line is a whole object is JSON Lines
                json.loads(first)
                return "jsonl"
            except ValueError:
                return "json"
    if ext in (".jsonl", ".ndjson"):
        return "jsonl"
    if head[:1] == b"[" or ext == ".json":
        return "json"
    if ext in (".parquet", ".arrow", ".gz", ".zip"):
        raise DataError(f"{path}: {ext} files are not read; convert to .jsonl, .json or .csv")
    if head[:1] == b"{":
        return "jsonl"
    raise DataError(f"{path}: not JSON, JSON Lines or CSV; use a .jsonl, .json or .csv file")


def iter_records(path: str | os.PathLike, *, errors: str = "raise") -> Iterator[tuple[int, Any]]:
    """Yield ``(line_no, record)``: 1-based line for JSONL and CSV, 0-based index for a JSON list.

    Records are yielded as parsed (a JSONL line may hold something other than an object; the
    caller checks). With ``errors="yield"`` a bad line yields ``(line_no, DataError)`` and reading
    goes on, so lint can count every bad line; a file that cannot be read at all still raises.
    """
    kind = file_kind(path)
    reader = {"jsonl": _iter_jsonl, "json": _iter_json, "csv": _iter_csv, "dataset": hub.iter_rows}[kind]
    for n, rec in reader(path):
        if isinstance(rec, DataError) and errors == "raise":
            raise rec
        yield n, rec


def _iter_jsonl(path) -> Iterator[tuple[int, Any]]:
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            yield n, _parsed(path, f"{path}:{n}", line)  # bytes: json detects UTF-8 and a BOM itself


def _iter_json(path) -> Iterator[tuple[int, Any]]:
    """Stream a JSON list element by element (raw_decode over a growing buffer), or one object."""
    decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates)
    with open(path, encoding="utf-8-sig", errors="strict") as f:
        buf, pos, eof, lines_done = "", 0, False, 0

        def more() -> bool:
            nonlocal buf, pos, eof, lines_done
            chunk = f.read(_CHUNK)
            if not chunk:
                eof = True
                return False
            lines_done += buf.count("\n", 0, pos)
            buf, pos = buf[pos:] + chunk, 0
            return True

        def skip_ws() -> str:
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buf) or not more():
                    return buf[pos] if pos < len(buf) else ""

        def bad(msg: str) -> DataError:
            line = lines_done + buf.count("\n", 0, pos) + 1
            return DataError(f"{path}:{line}: invalid JSON ({msg}); fix the file")

        def value():
            nonlocal pos
            while True:
                try:
                    obj, end = decoder.raw_decode(buf, pos)
                    if end < len(buf) or eof or not isinstance(obj, (int, float)):
                        if end - pos > MAX_RECORD_BYTES or _SURROGATE_ESCAPE_TEXT.search(buf, pos, end):
                            error = _parsed(path, f"{path}:{lines_done + buf.count(chr(10), 0, pos) + 1}", buf[pos:end])
                            if isinstance(error, DataError):
                                raise error
                        pos = end
                        return obj
                except RecursionError:
                    raise bad("nested too deeply to be a record; flatten it") from None
                except DataError:
                    raise
                except _DuplicateKey as exc:
                    raise _duplicate(f"{path}:{lines_done + buf.count(chr(10), 0, pos) + 1}", exc) from None
                except ValueError as exc:
                    if eof:
                        raise bad(getattr(exc, "msg", str(exc))) from None
                if len(buf) - pos > MAX_RECORD_BYTES:
                    raise bad(f"a record over the {MAX_RECORD_BYTES // 2**20} MiB a record may hold; split it or remove it")
                more()  # the value (or a number) may go on in the next chunk

        try:
            first = skip_ws()
            if first == "":
                raise DataError(f"{path}: the file is empty; add records")
            if first != "[":
                obj = value()
                if skip_ws():
                    raise bad("extra data after the first value; for one record a line, "
                              "name the file .jsonl")
                if not isinstance(obj, dict):
                    raise DataError(f"{path}: the top level must be a list of records or one "
                                    f"record (an object), found {_type(obj)}")
                yield 0, obj
                return
            pos += 1
            index = 0
            if skip_ws() == "]":
                return
            while True:
                obj = value()
                if not isinstance(obj, dict):
                    raise DataError(f"{path}[{index}]: a record must be an object, found "
                                    f"{_type(obj)}; the file must be a list of records")
                yield index, obj
                index += 1
                sep = skip_ws()
                if sep == "]":
                    return
                if sep != ",":
                    raise bad("expected ',' or ']' after a record")
                pos += 1
                skip_ws()
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 ({exc.reason}); save the file as UTF-8") from None


def _iter_csv(path) -> Iterator[tuple[int, Any]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long multi-line answers are normal
    delimiter = "\t" if str(path).lower().endswith(".tsv") else ","
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if not header:
                raise DataError(f"{path}: the file is empty; add a header row and records")
            # pandas' to_csv writes its index as a leading unnamed column: not data.
            skip_first = header[0] in ("", "Unnamed: 0")
            names = header[1:] if skip_first else header
            start = reader.line_num + 1
            for row in reader:
                n, start = start, reader.line_num + 1
                if not row:
                    continue
                cells = row[1:] if skip_first else row
                if len(cells) != len(names):
                    yield n, DataError(f"{path}:{n}: {len(row)} cells where the header has "
                                       f"{len(header)}; quote cells that hold commas or newlines", code="invalid_json")
                    continue
                yield n, dict(zip(names, cells))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 ({exc.reason}); save the file as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not valid CSV ({exc}); check the quoting") from None


def _type(obj: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(obj), "a number")


def check_options(format: str, loss_on: str, prompt_template, completion_template) -> None:
    """Reject a bad format name, loss_on or half a template mapping (one line each)."""
    if format != "auto" and format not in FORMATS:
        raise DataError(f"data.format: unknown format '{format}'; use auto or one of "
                        f"{', '.join(FORMATS)}")
    if loss_on not in LOSS_ON:
        raise DataError(f"data.loss_on: unknown value '{loss_on}'; use one of {', '.join(LOSS_ON)}")
    if bool(prompt_template) != bool(completion_template):
        missing = "completion_template" if prompt_template else "prompt_template"
        raise DataError(f"data.{missing} is missing: a mapping needs both templates ({TEMPLATE_FIX})")
    if format == "mapped" and not prompt_template:
        raise DataError(f"data.format=mapped needs templates: {TEMPLATE_FIX}")


class _Reader:
    """Reads one file into normalised rows with their split markers, counting drops."""

    def __init__(self, fmt: str, split_field: str | None, **norm: Any):
        self.fmt, self.split_field, self.norm = fmt, split_field, norm
        self.dropped: Counter = Counter()

    def read(self, path) -> tuple[list[dict], list[Any], list[str]]:
        kind = file_kind(path)
        rows, marks, places = [], [], []
        for n, rec in iter_records(path):
            place = where(path, n, kind)
            if not isinstance(rec, dict):
                raise DataError(f"{place}: a record must be a JSON object, found {_type(rec)}", code="wrong_type")
            try:
                if self.fmt == "auto" and rec:
                    self.fmt = detect_format(rec, **self._templates())
                if self.fmt == "auto":
                    raise Skip("empty record")
                row = normalize_record(rec, self.fmt, **self.norm)
            except Skip as skip:
                self.dropped[skip.reason] += 1
                continue
            except RecordError as exc:
                raise DataError(f"{place}: {exc}", code=exc.code) from None
            rows.append(row)
            marks.append(rec.get(self.split_field, ABSENT) if self.split_field else ABSENT)
            places.append(place)
        return rows, marks, places

    def _templates(self) -> dict:
        return {"prompt_template": self.norm.get("prompt_template"),
                "completion_template": self.norm.get("completion_template")}


ABSENT = object()


def split_value(mark: Any) -> Any:
    # A metadata object may carry the split under "split"; anything else is not a split marker.
    if isinstance(mark, dict):
        return mark.get("split", ABSENT)
    return mark


def _split_by_field(path, rows, marks, places, split_field) -> tuple[list, list] | None:
    values = [split_value(m) for m in marks]
    if all(v is ABSENT for v in values):
        return None
    bad: Counter = Counter()
    first: dict[str, str] = {}
    for v, place in zip(values, places):
        if v not in SPLITS:
            label = "missing" if v is ABSENT else repr(v)
            bad[label] += 1
            first.setdefault(label, place)
    if bad:
        found = ", ".join(f"{k} x{c} (first at {first[k]})" for k, c in bad.most_common())
        raise DataError(f"{path}: {split_field} must be exactly 'train' or 'eval' (case-sensitive) "
                        f"in every record; found {found}; fix those values, or remove the field "
                        "to split by data.eval_split", code="split_values", key="data.split_field")
    train = [i for i, v in enumerate(values) if v == "train"]
    evals = [i for i, v in enumerate(values) if v == "eval"]
    return train, evals


def _split_by_ratio(rows: list, ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Row indices of (train, eval): a seeded sample of `ratio` of the rows (a count if >= 1)."""
    if ratio <= 0 or len(rows) < 2:
        return list(range(len(rows))), []
    n_eval = int(ratio) if ratio >= 1 else max(1, round(len(rows) * ratio))
    n_eval = min(n_eval, len(rows) - 1)
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    chosen = set(order[:n_eval])
    return [i for i in range(len(rows)) if i not in chosen], [i for i in range(len(rows)) if i in chosen]


def load_splits(path, *, eval_path=None, format="auto", eval_split=0.1, split_field="metadata",
                prompt_template=None, completion_template=None, system_prompt=None,
                loss_on="completion", chat=True, seed=42, eval_required=True, separator=PLAIN_SEPARATORS[0]) -> Splits:
    """Read, detect, normalise and split a dataset for training.

    The split comes from `split_field` (values exactly ``train``/``eval``) where the records carry
    it; otherwise from `eval_path` if given; otherwise a seeded `eval_split` ratio (a count if
    >= 1; 0 means no eval). Raises DataError (one line) on any input a run cannot train on.
    """
    prompt_template = unescape_template(prompt_template) if prompt_template else None
    completion_template = unescape_template(completion_template) if completion_template else None
    check_options(format, loss_on, prompt_template, completion_template)
    if prompt_template and format == "auto":
        format = "mapped"
    reader = _Reader(format, split_field, loss_on=loss_on, chat=chat, system_prompt=system_prompt, separator=separator,
                     prompt_template=prompt_template, completion_template=completion_template)
    rows, marks, places = reader.read(path)
    warnings: list[str] = []
    if not rows:
        reasons = ", ".join(f"{r} x{c}" for r, c in reader.dropped.items()) or "no records"
        raise DataError(f"{path}: no records to train on ({reasons}); add records", code="no_records", key="data.path")
    by_field = _split_by_field(path, rows, marks, places, split_field) if split_field else None
    if by_field is not None:
        train, evals = by_field
        how = f"the '{split_field}' field"
    elif eval_path:
        train, evals = list(range(len(rows))), []
        how = str(eval_path)
    else:
        train, evals = _split_by_ratio(rows, float(eval_split or 0), seed)
        how = f"data.eval_split={eval_split}"
    train_rows, train_places = [rows[i] for i in train], [places[i] for i in train]
    evals, eval_places = [rows[i] for i in evals], [places[i] for i in evals]
    if eval_path:
        eval_rows, _, more_places = reader.read(eval_path)  # same format as the training file
        evals, eval_places = evals + eval_rows, eval_places + more_places
        if by_field is not None:
            warnings.append(f"eval records come from both the '{split_field}' field and {eval_path}")
    if not train_rows:
        raise DataError(f"{path}: the train split is empty (split by {how}); add records marked "
                        "'train'", code="train_empty")
    if eval_required and not evals:
        raise DataError(f"{path}: the eval split is empty (split by {how}); add eval records, set "
                        "--set data.eval_split=0.1, or turn eval off with "
                        "--set train.eval_strategy=no", code="eval_empty", key="data.eval_split",
                        overrides={"data.eval_split": 0.1})
    for reason, count in reader.dropped.items():
        warnings.append(f"{count} record(s) dropped: {reason}")
    return Splits(train=train_rows, eval=evals, format=reader.fmt, path=str(path),
                  dropped=dict(reader.dropped), warnings=warnings,
                  train_places=train_places, eval_places=eval_places)
