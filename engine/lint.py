"""Dataset lint: every problem that would waste a training run, with a count, places and the fix.

The file is read the way the engine reads it (`engine.data.iter_records` and `engine.formats`), one
record at a time: memory grows by a few hashes per record, never with the file's size. Standard
library only; the token checks take a tokenizer, which `load_tokenizer` imports lazily.
`lint_file` is what `cockpit lint`, `cockpit run` and the engine call.
"""

from __future__ import annotations

import json
import re
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from engine.data import ABSENT, SPLITS, check_options, file_kind, iter_records, split_value, where
from engine.formats import (
    DataError, RecordError, Skip, detect_format, normalize_record, unescape_template,
)
from engine.tokens import percentile, stats

MAX_PLACES = 5
TOKEN_BATCH = 256
DEFAULT_MAX_LENGTH = 1024  # the engine's train.max_length default
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
_JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
               "array": list, "object": dict, "null": type(None)}
_EVAL_OFF = "--set train.eval_strategy=no"

# code: (severity, title, fix). Codes are stable: tests, the TUI and scripts match on them.
CHECKS: dict[str, tuple[str, str, str]] = {
    # structure
    "unreadable": ("error", "the file cannot be read", "see the message"),
    "invalid_json": ("error", "invalid JSON lines or rows", "fix or remove these lines"),
    "wrong_type": ("error", "records that are not JSON objects",
                   "make each line (or list element) one JSON object"),
    "unknown_format": ("error", "records in no known format",
                       "map the columns: --set data.prompt_template='...{column}...' "
                       "--set data.completion_template='{column}'"),
    "missing_field": ("error", "records missing a field of their format",
                      "add the field, or keep one format per file"),
    "mixed_formats": ("error", "records in another format than the file's",
                      "keep one format per file: convert those records or move them out"),
    "bad_record": ("error", "malformed records", "fix the records as the detail says"),
    "empty_record": ("warning", "empty records (dropped)", "remove them"),
    "empty_message": ("warning", "empty messages", "fill in or remove the empty turns"),
    "role_order": ("warning", "roles out of order",
                   "start with system/user, alternate user and assistant; many chat templates "
                   "reject anything else"),
    "not_ending_with_assistant": ("error", "conversations not ending with an assistant message",
                                  "end each conversation with the assistant turn to train on "
                                  "(e.g. the tool call), or --set data.loss_on=assistant"),
    "no_assistant": ("error", "conversations with no assistant message", "add the assistant's reply"),
    "empty_completion": ("warning", "empty completions (dropped: they train nothing)",
                         "fill in the answer or remove the records"),
    # split
    "split_values": ("error", "split values other than exactly 'train' or 'eval'",
                     "use exactly 'train' or 'eval' (case-sensitive), or remove the field to split "
                     "by data.eval_split"),
    "no_eval": ("warning", "no eval records",
                f"mark some records 'eval', remove the field to use data.eval_split, or {_EVAL_OFF}"),
    "tiny_eval": ("warning", "a tiny eval split", "mark more records 'eval' (eval_loss on a handful "
                  "of records is noise)"),
    "split_overlap": ("warning", "prompts found in both train and eval",
                      "move each prompt to one split, or eval_loss flatters the model"),
    # tool calling
    "tool_args_invalid_json": ("error", "tool-call arguments that are not valid JSON",
                               "write the arguments as a JSON object"),
    "tool_args_double_encoded": ("error", "tool-call arguments JSON-encoded twice",
                                 "decode them once: arguments is one JSON string of an object"),
    "tool_args_object": ("warning", "tool-call arguments given as objects, not JSON strings",
                         "the OpenAI format wants a JSON string; the cockpit encodes them, other "
                         "tools may not"),
    "tool_args_template": ("error", "the chat template JSON-encodes the string arguments again",
                           "the model would learn escaped arguments: use a template that prints "
                           "string arguments as they are (--set model.chat_template=FILE)"),
    "tool_undeclared": ("warning", "calls to tools not declared in the record's tools",
                        "add the tool's spec to `tools`, or fix the function name"),
    "tool_args_schema": ("warning", "arguments that do not match the tool's JSON schema",
                         "fix the arguments or the schema (required fields, types)"),
    "tool_reply_unmatched": ("warning", "tool messages that answer no tool call",
                             "give each tool message the tool_call_id of the call it answers"),
    "tool_schema_invalid": ("warning", "tools that are not valid JSON schemas",
                            "each tool: a name and parameters {type: object, properties, required}"),
    # content
    "duplicate": ("warning", "exact duplicate records", "remove the copies: they overweight a few "
                  "examples and leak into eval"),
    "conflicting_answers": ("warning", "the same prompt with different answers",
                            "keep one answer per prompt, unless the variety is intended"),
    "placeholder": ("warning", "unrendered template placeholders",
                    "fill in the placeholders before training (the model learns them verbatim)"),
    "label_outlier": ("warning", "rare label values", "drop or relabel those records"),
    "long_record": ("info", "very long records (over 10x the median)", "check they are intended"),
    "short_record": ("info", "very short records (under a tenth of the median)",
                     "check they are intended"),
    # tokens
    "tokenizer_unavailable": ("warning", "token checks skipped", "pass --model with a local "
                              "directory or builtin:tiny"),
    "no_chat_template": ("error", "the tokenizer has no chat template",
                         "use an instruct model, or --set model.chat_template=FILE"),
    "template_error": ("error", "records the chat template cannot render", "fix the records (roles, "
                       "tools) or the template"),
    "truncated": ("warning", "records longer than max_length (truncated)", "raise max_length"),
    "completion_lost": ("error", "records whose whole completion max_length cuts away",
                        "raise max_length: TRL drops such records and then fails"),
}


@dataclass
class Finding:
    """One check that fired: how often, where first, and the fix (in words and as overrides)."""

    code: str
    severity: str
    title: str
    fix: str
    count: int = 0
    places: list[str] = field(default_factory=list)
    detail: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """One line for a terminal or the `dataset` event's warnings."""
        where_ = f" (first at {', '.join(self.places[:3])})" if self.places else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.code}: {self.count} {self.title}{detail}{where_}; fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "title": self.title,
                "count": self.count, "places": self.places, "detail": self.detail,
                "fix": self.fix, "overrides": self.overrides}


@dataclass
class LintReport:
    """What lint found in one file. `fatal` is set when the file cannot be read at all."""

    path: str
    format: str | None = None
    records: int = 0
    findings: list[Finding] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    fatal: str | None = None

    def _of(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    @property
    def errors(self) -> list[Finding]:
        return self._of("error")

    @property
    def warnings(self) -> list[Finding]:
        return self._of("warning")

    @property
    def infos(self) -> list[Finding]:
        return self._of("info")

    @property
    def exit_code(self) -> int:
        """0: no errors; 1: errors; 2: the file cannot be read at all."""
        return 2 if self.fatal else 1 if self.errors else 0

    def get(self, code: str) -> Finding | None:
        return next((f for f in self.findings if f.code == code), None)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "records": self.records,
                "fatal": self.fatal, "errors": len(self.errors), "warnings": len(self.warnings),
                "findings": [f.to_dict() for f in self.findings], "stats": self.stats}


def add_finding(report: LintReport, code: str, *, detail: str = "", count: int = 1) -> Finding:
    """Add a finding found outside the pass (e.g. the tokenizer could not load)."""
    severity, title, fix = CHECKS[code]
    finding = Finding(code, severity, title, fix, count=count, detail=detail)
    report.findings.append(finding)
    return finding


def load_tokenizer(model: str):
    """The tokenizer of `--model`: builtin:tiny, a local directory or a cached hub id."""
    if model.strip().lower() == "builtin:tiny":
        from engine.tiny import load_tokenizer as tiny_tokenizer

        return tiny_tokenizer()
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError):
        return AutoTokenizer.from_pretrained(model, local_files_only=True)


def options_from_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """`lint_file` keyword arguments from a resolved run config."""
    data = cfg.get("data", {})
    keys = ("eval_path", "format", "split_field", "prompt_template", "completion_template",
            "system_prompt", "loss_on", "chat")
    opts = {k: data[k] for k in keys if k in data}
    opts.pop("eval_path", None)  # linted as a file of its own
    opts["max_length"] = cfg.get("train", {}).get("max_length", DEFAULT_MAX_LENGTH)
    return opts


def lint_file(path, *, format: str = "auto", split_field: str | None = "metadata",
              prompt_template: str | None = None, completion_template: str | None = None,
              system_prompt: str | None = None, loss_on: str = "completion", chat: bool = True,
              tokenizer: Any = None, max_length: int | None = None) -> LintReport:
    """Lint one dataset file; never raises for bad data (a file that cannot be read sets `fatal`).

    With a `tokenizer` the token checks run too (render every record, lengths, what
    `max_length` truncates). Options are those of `engine.data.load_splits`.
    """
    report = LintReport(path=str(path))
    prompt_template = unescape_template(prompt_template) if prompt_template else None
    completion_template = unescape_template(completion_template) if completion_template else None
    try:
        check_options(format, loss_on, prompt_template, completion_template)
        kind = file_kind(path)
    except DataError as exc:
        report.fatal = str(exc)
        return report
    linter = Linter(report, kind, format=format, split_field=split_field,
                    norm=dict(loss_on=loss_on, chat=chat, system_prompt=system_prompt,
                              prompt_template=prompt_template,
                              completion_template=completion_template),
                    tokenizer=tokenizer, max_length=max_length or DEFAULT_MAX_LENGTH)
    try:
        linter.run(path)
    except DataError as exc:  # the file itself broke (bad JSON list, not UTF-8)
        report.fatal = str(exc)
    return report


# ---------------------------------------------------------------- the checks


def _family(fmt: str) -> str:
    return "messages" if fmt == "messages-parts" else fmt


def _histogram(values, bins: int = 10) -> list[list[int]]:
    """[lo, hi, count] over powers of two: lengths are skewed, a log scale shows both ends."""
    if not values:
        return []
    top = max(values)
    edges = [0]
    while edges[-1] <= top:
        edges.append(max(16, edges[-1] * 2))
    counts = [0] * (len(edges) - 1)
    for v in values:
        counts[min(len(counts) - 1, max(0, v.bit_length() - 4))] += 1
    return [[edges[i], edges[i + 1], c] for i, c in enumerate(counts)][:max(bins, len(counts))]


def ctext_probe(completion: Any) -> str:
    return "tool_calls" if isinstance(completion, list) and any(
        "tool_calls" in m for m in completion) else ""


def _without_ids(msgs: Any) -> Any:
    """Messages without tool-call ids, so copies that differ only in generated ids are duplicates."""
    if not isinstance(msgs, list):
        return msgs
    return [(m["role"], m["content"], m.get("name"),
             [(c["function"]["name"], c["function"]["arguments"]) for c in m.get("tool_calls", ())])
            for m in msgs]


class _Tools:
    """A record's tools parsed once per distinct JSON string: names, schemas, problems."""

    def __init__(self, tools_json: str | None):
        self.names: set[str] = set()
        self.params: dict[str, Any] = {}
        self.problems: list[str] = []
        for i, tool in enumerate(json.loads(tools_json) if tools_json else []):
            fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
            name = fn.get("name")
            if not isinstance(name, str) or not name:
                self.problems.append(f"tools[{i}] has no name")
                continue
            self.names.add(name)
            params = fn.get("parameters")
            self.params[name] = params
            if params is not None:
                self.problems += [f"{name}: {p}" for p in _schema_problems(params)]


def _schema_problems(schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return ["parameters is not an object"]
    out = []
    if schema.get("type", "object") != "object":
        out.append(f"parameters type {schema.get('type')!r} (should be 'object')")
    props = schema.get("properties", {})
    if not isinstance(props, dict):
        return out + ["properties is not an object"]
    for key, prop in props.items():
        kinds = prop.get("type") if isinstance(prop, dict) else None
        for kind in kinds if isinstance(kinds, list) else [kinds]:
            if kind is not None and kind not in _JSON_TYPES:
                out.append(f"property '{key}' has type {kind!r}")
    required = schema.get("required", [])
    if not isinstance(required, list):
        out.append("required is not a list")
    else:
        out += [f"required '{r}' is not a property" for r in required if r not in props]
    return out


def _args_problems(args: dict, schema: Any) -> list[str]:
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return []
    props = schema["properties"]
    out = [f"missing required '{r}'" for r in schema.get("required") or []
           if isinstance(r, str) and r not in args]
    for key, value in args.items():
        prop = props.get(key)
        if prop is None:
            if schema.get("additionalProperties") is False:
                out.append(f"unknown argument '{key}'")
            continue
        kinds = prop.get("type") if isinstance(prop, dict) else None
        kinds = kinds if isinstance(kinds, list) else [kinds]
        types = tuple(t for k in kinds if k in _JSON_TYPES for t in
                      (_JSON_TYPES[k] if isinstance(_JSON_TYPES[k], tuple) else (_JSON_TYPES[k],)))
        if types and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            out.append(f"'{key}' is {type(value).__name__}, schema says {'/'.join(map(str, kinds))}")
    return out


class Linter:
    """One pass over a file: per-record checks as records stream by, file-wide ones at the end."""

    def __init__(self, report: LintReport, kind: str, *, format: str, split_field: str | None,
                 norm: dict[str, Any], tokenizer: Any, max_length: int):
        self.report, self.kind, self.split_field, self.norm = report, kind, split_field, norm
        self.fmt = "mapped" if norm["prompt_template"] else format
        self.detect = format == "auto" and not norm["prompt_template"]
        self.found: dict[str, Finding] = {}
        self.details: dict[str, Counter] = {}
        self.other_formats: Counter = Counter()
        self.pairs: set[int] = set()
        self.first_answer: dict[int, int] = {}
        self.split_of_prompt: dict[int, int] = {}
        self.split_counts: Counter = Counter()
        self.labels: Counter | None = Counter()
        self.label_lines: dict[str, list[int]] = {}
        self.tools_cache: dict[str | None, _Tools] = {}
        self.lines = array("q")
        self.prompt_len, self.completion_len = array("l"), array("l")
        self.tokenizer, self.max_length = tokenizer, max_length
        self.batch: list[tuple[int, dict]] = []
        self.tok_prompt, self.tok_total, self.tok_lines = array("l"), array("l"), array("q")
        self.pool, self.pending = None, None

    # -- bookkeeping

    def add(self, code: str, n: int | None, detail: str | None = None, count: int = 1) -> None:
        finding = self.found.get(code)
        if finding is None:
            severity, title, fix = CHECKS[code]
            finding = self.found[code] = Finding(code, severity, title, fix)
        finding.count += count
        if n is not None and len(finding.places) < MAX_PLACES:
            finding.places.append(where(self.report.path, n, self.kind))
        if detail:
            self.details.setdefault(code, Counter())[detail] += 1

    # -- the pass

    def run(self, path) -> None:
        for n, rec in iter_records(path, errors="yield"):
            self.report.records += 1
            if isinstance(rec, DataError):
                self.add("invalid_json" if "invalid JSON" in str(rec) else "bad_record", n,
                         str(rec).split(": ", 1)[-1])
            elif not isinstance(rec, dict):
                self.add("wrong_type", n, f"a {type(rec).__name__}")
            elif not rec:
                self.add("empty_record", n)
            else:
                self.record(n, rec)
        if self.tokenizer is not None:
            self.flush_tokens()
            self.collect_tokens()
            if self.pool is not None:
                self.pool.shutdown()
        self.finish()

    def record(self, n: int, rec: dict) -> None:
        fmt = self.fmt
        if self.detect:
            try:
                found = detect_format(rec)
            except RecordError as exc:
                self.add("unknown_format" if fmt == "auto" else "missing_field", n, str(exc))
                return
            if fmt == "auto":
                fmt = self.fmt = self.report.format = found
            elif _family(found) != _family(fmt):
                self.other_formats[found] += 1
                self.add("mixed_formats", n)
                return
        self.report.format = fmt
        try:
            row = normalize_record(rec, fmt, **self.norm)
        except Skip as skip:
            self.add("empty_completion" if skip.reason == "empty completion" else "empty_record", n)
            return
        except RecordError as exc:
            self.add(exc.code if exc.code in CHECKS else "bad_record", n, str(exc).split(";")[0])
            return
        split = None
        if self.split_field and self.split_field in rec:
            split = split_value(rec[self.split_field])
            if split not in SPLITS:
                self.add("split_values", n, "missing" if split is ABSENT else repr(split))
                split = None
            else:
                self.split_counts[split] += 1
        if fmt == "messages":
            self.raw_tool_checks(n, rec["messages"])
        self.row(n, row, split)
        if self.tokenizer is not None:
            self.batch.append((n, row))
            if len(self.batch) >= TOKEN_BATCH:
                self.flush_tokens()

    def row(self, n: int, row: dict, split: str | None) -> None:
        tools = row.get("tools")
        if "text" in row:
            prompt, completion = row["text"], ""
            plen, clen = len(prompt), 0
        elif isinstance(row.get("prompt"), str):
            prompt, completion = row["prompt"], row["completion"]
            plen, clen = len(prompt), len(completion)
        else:
            msgs = row["messages"] if "messages" in row else row["prompt"] + row["completion"]
            last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
            prompt, completion = msgs[:last], msgs[last:last + 1]
            self.messages(n, msgs, tools)
            plen = sum(len(m["content"]) for m in prompt)
            clen = len(completion[0]["content"]) + sum(
                len(c["function"]["arguments"]) for c in completion[0].get("tool_calls", ()))
        if tools is not None or ctext_probe(completion):
            ptext, ctext = repr(_without_ids(prompt)) + (tools or ""), repr(_without_ids(completion))
        else:
            ptext, ctext = repr(prompt), repr(completion)
        pk, ck = hash(ptext), hash(ctext)
        pair = hash((pk, ck))
        if pair in self.pairs:
            self.add("duplicate", n)
        else:
            self.pairs.add(pair)
            first = self.first_answer.setdefault(pk, ck)
            if first != ck:
                self.add("conflicting_answers", n)
        if split is not None:
            bit = 1 if split == "train" else 2
            seen = self.split_of_prompt.get(pk, 0)
            if seen and not seen & bit:
                self.add("split_overlap", n)
            self.split_of_prompt[pk] = seen | bit
        if "{{" in ptext or "{{" in ctext:
            names = _PLACEHOLDER.findall(ptext) + _PLACEHOLDER.findall(ctext)
            if names:
                self.add("placeholder", n)
                for name in names:
                    self.details.setdefault("placeholder", Counter())["{{" + name + "}}"] += 1
        if self.labels is not None:
            label = completion if isinstance(completion, str) else (
                completion[0]["content"] if completion and not completion[0].get("tool_calls")
                else None)
            if label is None or len(label) > 24 or len(label.split()) != 1 or len(self.labels) > 50:
                self.labels = None
            else:
                label = label.strip()
                self.labels[label] += 1
                seen = self.label_lines.setdefault(label, [])
                if len(seen) < MAX_PLACES:
                    seen.append(n)
        self.lines.append(n)
        self.prompt_len.append(plen)
        self.completion_len.append(clen)

    def messages(self, n: int, msgs: list[dict], tools_json: str | None) -> None:
        """Role order, empty turns and every tool call of one normalised conversation."""
        tools = self.tools_cache.get(tools_json)
        if tools is None:
            if len(self.tools_cache) > 4096:
                self.tools_cache.clear()
            tools = self.tools_cache[tools_json] = _Tools(tools_json)
        if tools.problems:
            self.add("tool_schema_invalid", n, tools.problems[0])
        prev, seen_user, call_ids = None, False, set()
        for i, m in enumerate(msgs):
            role = m["role"]
            calls = m.get("tool_calls")
            if role == "system" and i > 0:
                self.add("role_order", n, "a system message after the first turn")
            elif role == "assistant" and not seen_user:
                self.add("role_order", n, "an assistant turn before any user turn")
            elif role == prev and role in ("user", "assistant"):
                self.add("role_order", n, f"two {role} turns in a row")
            seen_user = seen_user or role == "user"
            if not m["content"].strip() and not calls and i < len(msgs) - 1:
                self.add("empty_message", n, f"an empty {role} message")
            if role == "tool" and m.get("tool_call_id") not in call_ids:
                self.add("tool_reply_unmatched", n)
            for call in calls or ():
                call_ids.add(call["id"])
                self.tool_call(n, call["function"], tools)
            prev = role

    def tool_call(self, n: int, fn: dict, tools: _Tools) -> None:
        name, text = fn["name"], fn["arguments"]
        try:
            args = json.loads(text)
        except ValueError:
            self.add("tool_args_invalid_json", n, f"{name}: {text[:40]!r}")
            return
        if isinstance(args, str):
            try:
                json.loads(args)
                self.add("tool_args_double_encoded", n, name)
            except ValueError:
                self.add("tool_args_invalid_json", n, f"{name}: a JSON string, not an object")
            return
        if name not in tools.names:
            self.add("tool_undeclared", n, name)
        elif isinstance(args, dict):
            problems = _args_problems(args, tools.params.get(name))
            if problems:
                self.add("tool_args_schema", n, f"{name}: {problems[0]}")

    def raw_tool_checks(self, n: int, raw: list) -> None:
        """What normalisation hides in OpenAI-style records: object arguments, missing reply ids."""
        for m in raw:
            if not isinstance(m, dict):
                continue
            if m.get("role") == "tool" and m.get("tool_call_id") is None:
                self.add("tool_reply_unmatched", n, "a tool message without tool_call_id")
            for call in m.get("tool_calls") or ():
                fn = call.get("function", call) if isinstance(call, dict) else {}
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), (dict, list)):
                    self.add("tool_args_object", n)
                    return

    # -- tokens

    def flush_tokens(self) -> None:
        from engine.tokens import render

        batch, self.batch = self.batch, []
        prompts, fulls, lines = [], [], []
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        for n, row in batch:
            if not has_template and "text" not in row and not isinstance(row.get("prompt"), str):
                self.add("no_chat_template", n)
                continue
            try:
                prompt, full = render(row, self.tokenizer)
            except Exception as exc:  # any template failure means "cannot render this record"
                self.add("template_error", n, f"{type(exc).__name__}: {exc}".splitlines()[0][:120])
                continue
            prompts.append(prompt)
            fulls.append(full)
            lines.append(n)
            self.template_args_check(n, row, full)
        if not fulls:
            return
        # Encode in a worker thread (the Rust encoder releases the GIL) while the next batch
        # renders: the chat template's Python work hides behind the tokenizer, the floor.
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=1)
        self.collect_tokens()
        self.pending = (self.pool.submit(self.encode, fulls), prompts, fulls, lines)

    def encode(self, texts: list[str]) -> list:
        backend = getattr(self.tokenizer, "_tokenizer", None)
        if backend is not None:  # the Rust encoder: no Python lists of ids to build
            return backend.encode_batch(texts, add_special_tokens=False)
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def collect_tokens(self) -> None:
        """Count the tokens of the batch being encoded (prompt tokens: up to the prompt's end)."""
        if self.pending is None:
            return
        future, prompts, fulls, lines = self.pending
        self.pending = None
        for enc, prompt, full in zip(future.result(), prompts, fulls):
            total = len(enc)
            if full.startswith(prompt) and hasattr(enc, "char_to_token"):
                cut = enc.char_to_token(len(prompt)) if len(prompt) < len(full) else total
            else:
                cut = len(self.encode([prompt])[0])
            self.tok_total.append(total)
            self.tok_prompt.append(total if cut is None else cut)
        self.tok_lines.extend(lines)

    def template_args_check(self, n: int, row: dict, full: str) -> None:
        msgs = row.get("completion") or row.get("messages") or []
        for m in msgs if isinstance(msgs, list) else ():
            for call in m.get("tool_calls") or ():
                args = call["function"]["arguments"]
                if len(args) > 2 and json.dumps(args) in full:
                    self.add("tool_args_template", n)
                    return

    # -- file-wide checks

    def finish(self) -> None:
        rep = self.report
        if self.other_formats:
            self.found["mixed_formats"].detail = (
                f"the file is {self.fmt}; " + ", ".join(f"{c} look like {f}"
                                                        for f, c in self.other_formats.most_common()))
        self.split_findings()
        self.label_findings()
        self.length_findings()
        if self.tokenizer is not None:
            self.token_findings()
        for code, counts in self.details.items():
            if code in self.found and not self.found[code].detail:
                self.found[code].detail = ", ".join(
                    f"{d} x{c}" if len(counts) > 1 else d for d, c in counts.most_common(3))
        answers = self.found.get("conflicting_answers")
        if answers and self.labels is None:  # free text: different answers are mostly paraphrases
            answers.severity, answers.title = "info", "prompts repeated with different answers"
        order = list(CHECKS)
        sev = {"error": 0, "warning": 1, "info": 2}
        rep.findings = sorted(self.found.values(), key=lambda f: (sev[f.severity], order.index(f.code)))
        rep.stats["splits"] = dict(self.split_counts)
        if rep.format is None and self.fmt != "auto":
            rep.format = self.fmt

    def split_findings(self) -> None:
        if not self.split_counts and "split_values" not in self.found:
            return
        n_eval, n_train = self.split_counts["eval"], self.split_counts["train"]
        if n_eval == 0 and "split_values" not in self.found:
            self.add("no_eval", None, f"{n_train} train, 0 eval", count=n_train)
            self.found["no_eval"].overrides = {"data.eval_split": 0.1}
        elif 0 < n_eval < 10 and n_eval < 0.05 * (n_train + n_eval):
            self.add("tiny_eval", None, f"{n_eval} eval of {n_train + n_eval}", count=n_eval)

    def label_findings(self) -> None:
        labels, total = self.labels, len(self.lines)
        if not labels or total < 20 or not 2 <= len(labels) <= 20:
            return
        common = max(labels.values())
        rare = {k: c for k, c in labels.items() if c < 0.01 * total and c * 10 < common}
        if rare:
            self.add("label_outlier", None, ", ".join(f"{k!r} x{c}" for k, c in rare.items()),
                     count=sum(rare.values()))
            self.found["label_outlier"].fix += (
                f"; the other labels: {', '.join(repr(k) for k in labels if k not in rare)}")
            lines = sorted(n for k in rare for n in self.label_lines[k])[:MAX_PLACES]
            self.found["label_outlier"].places = [where(self.report.path, n, self.kind) for n in lines]

    def length_findings(self) -> None:
        totals = [p + c for p, c in zip(self.prompt_len, self.completion_len)]
        self.report.stats["lengths"] = {"unit": "characters", "prompt": stats(self.prompt_len),
                                        "completion": stats(self.completion_len),
                                        "total": stats(totals)}
        self.report.stats["histogram"] = _histogram(totals)
        if len(totals) < 20:
            return
        median = sorted(totals)[len(totals) // 2]
        for n, t in zip(self.lines, totals):
            if t > 10 * median and t > 1000:
                self.add("long_record", n)
            elif t * 10 < median:
                self.add("short_record", n)

    def token_findings(self) -> None:
        prompt, total = self.tok_prompt, self.tok_total
        if not total:
            return
        completion = [t - p for p, t in zip(prompt, total)]
        ml = self.max_length
        trunc = [n for n, t in zip(self.tok_lines, total) if t > ml]
        lost = [n for n, p in zip(self.tok_lines, prompt) if p >= ml]
        s_total = sorted(total)
        keep = {"p100": s_total[-1] if s_total else 0, "p99": percentile(s_total, 0.99)}
        self.report.stats["tokens"] = {
            "max_length": ml, "prompt": stats(prompt), "completion": stats(completion),
            "total": stats(total), "truncated": len(trunc), "completion_lost": len(lost),
            "keep_max_length": keep}
        self.report.stats["histogram"] = _histogram(total)
        self.report.stats["lengths"]["unit"] = "characters"
        for code, lines in (("truncated", trunc), ("completion_lost", lost)):
            if lines:
                for n in lines[:MAX_PLACES]:
                    self.add(code, n)
                self.found[code].count = len(lines)
                self.found[code].detail = (f"max_length {ml}; {keep['p100']} keeps every record, "
                                           f"{keep['p99']} keeps 99%")
                self.found[code].fix += f" (--set train.max_length={keep['p100']})"
                self.found[code].overrides = {"train.max_length": keep["p100"]}
