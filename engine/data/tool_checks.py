"""Lint's checks of conversations and tool calls: role order, empty turns, tool-call arguments
against the record's tool schemas, replies that answer no call (standard library only).

`ConversationChecks(add)` reports through `add(code, line, detail)`, the linter's bookkeeping.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
               "array": list, "object": dict, "null": type(None)}
TOOLS_CACHE = 4096  # distinct tools specs kept parsed (a dataset usually has a handful)


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




class ConversationChecks:
    """The per-record checks of normalised conversations and their raw OpenAI-style messages."""

    def __init__(self, add: Callable[..., None]):
        self.add = add
        self.cache: dict[str | None, _Tools] = {}

    def messages(self, n: int, msgs: list[dict], tools_json: str | None) -> None:
        """Role order, empty turns and every tool call of one normalised conversation."""
        tools = self.cache.get(tools_json)
        if tools is None:
            if len(self.cache) > TOOLS_CACHE:
                self.cache.clear()
            tools = self.cache[tools_json] = _Tools(tools_json)
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

    def template_args(self, n: int, row: dict, full: str) -> None:
        """String arguments the chat template JSON-encodes again (the model would learn escaped arguments)."""
        msgs = row.get("completion") or row.get("messages") or []
        for m in msgs if isinstance(msgs, list) else ():
            for call in m.get("tool_calls") or ():
                args = call["function"]["arguments"]
                if len(args) > 2 and json.dumps(args) in full:
                    self.add("tool_args_template", n)
                    return
