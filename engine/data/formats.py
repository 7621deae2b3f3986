"""Dataset formats: detect a record's format and normalise it to TRL's standard dataset types.

Standard library only. Everything here works on one record at a time and knows nothing about
files: errors are `RecordError`s without a location, which `engine.data` prefixes with file:line.

Normalised rows (what SFTTrainer gets):
- chat, loss on the completion: ``{"prompt": [msg...], "completion": [last assistant msg], "tools"}``
- chat, loss on every assistant turn (or all): ``{"messages": [msg...], "tools"}``
- plain strings (``chat=False``): ``{"prompt": str, "completion": str}``; ``text``: ``{"text": str}``

Every message has ``role`` and ``content`` (a string) and, only where present, ``tool_calls``
(arguments as JSON strings), ``tool_call_id`` and ``name``; ``tools`` is a JSON string or None.
Both keep Arrow from inventing a struct column per argument name.
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine.errors import DataError

FORMATS = (
    "messages", "sharegpt", "messages-parts", "prompt-completion", "alpaca", "input-output",
    "question-answer", "nli", "text", "mapped",
)
CHAT_FORMATS = ("messages", "sharegpt", "messages-parts")
LOSS_ON = ("completion", "assistant", "all")
ROLES = ("system", "user", "assistant", "tool")
# Aliases seen in ShareGPT, LLaMA-Factory and OpenAI exports.
_ROLE_ALIASES = {
    "human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant",
    "developer": "system", "observation": "tool", "function": "tool", "ipython": "tool",
}
# (prompt fields, completion field) of the NLI column namings in the wild.
_NLI_FIELDS = (
    (("premise", "hypothesis"), "label"), (("premise", "hypothesis"), "gold_label"),
    (("sentence1", "sentence2"), "gold_label"), (("sentence1", "sentence2"), "label"),
)
_PLACEHOLDER = re.compile(r"\{([^{}\s][^{}]*)\}")
TEMPLATE_FIX = "--set data.prompt_template='...{column}...' --set data.completion_template='{column}'"
# Plain text built from fields is prompt + separator + completion (TRL would glue "Is it?" "Yes" into "Is it?Yes"):
# a newline, or a space where the tokenizer drops newlines (engine/train/sft.py picks).
PLAIN_SEPARATORS = ("\n", " ")


class RecordError(DataError):
    """A problem with one record; `engine.data.load` adds the file and line. `code` names it (lint's check codes)."""

    def __init__(self, message: str, code: str = "bad_record"):
        super().__init__(message, code=code)


class Skip(Exception):
    """The record trains nothing (e.g. an empty completion); dropped and counted under `reason`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def detect_format(record: dict, *, prompt_template: str | None = None,
                  completion_template: str | None = None) -> str:
    """Name the format of one record; raises RecordError naming its columns when none fits."""
    if prompt_template or completion_template:
        return "mapped"
    if not isinstance(record, dict):
        raise RecordError(f"a record must be a JSON object, found {type(record).__name__}")
    keys = record.keys()
    if isinstance(record.get("messages"), list):
        return "messages-parts" if _has_parts(record["messages"]) else "messages"
    if isinstance(record.get("conversations"), list):
        return "sharegpt"
    if "prompt" in keys and "completion" in keys:
        return "prompt-completion"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if _nli_fields(record):
        return "nli"
    if "question" in keys and "answer" in keys:
        return "question-answer"
    if "input" in keys and "output" in keys:
        return "input-output"
    if "text" in keys:
        return "text"
    cols = ", ".join(map(str, keys)) or "none"
    raise RecordError(f"no known format in the columns ({cols}); {_mapping_hint(record)}",
                      "unknown_format")


def _mapping_hint(record: dict) -> str:
    """The fix for unknown columns, with the record's own column names where they fit."""
    nested = [k for k, v in record.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
    if nested:
        return (f"nested records in '{nested[0]}' are not read: flatten them to one record each "
                f"(e.g. instruction/input/output), or map columns with {TEMPLATE_FIX}")
    texts = [k for k, v in record.items() if isinstance(v, (str, int, float))
             and not isinstance(v, bool) and not (k == "id" or str(k).endswith(("_id", "ID")))]
    if len(texts) < 2:
        return f"map them to a prompt and a completion with {TEMPLATE_FIX}"
    prompt = "\\n".join(f"{k}: {{{k}}}" for k in texts[:-1])
    return ("map them to a prompt and a completion, e.g. --set data.prompt_template="
            f"'{prompt}' --set data.completion_template='{{{texts[-1]}}}'")


def _has_parts(messages: list) -> bool:
    return any(isinstance(m, dict) and isinstance(m.get("content"), list) for m in messages)


def _nli_fields(record: dict):
    for prompt_keys, label_key in _NLI_FIELDS:
        if all(k in record for k in prompt_keys) and label_key in record:
            return prompt_keys, label_key
    return None


def unescape_template(template: str) -> str:
    r"""Turn the `\n` and `\t` a user typed on the command line into real newlines and tabs."""
    return template.replace("\\n", "\n").replace("\\t", "\t")


def render_template(template: str, record: dict, key: str) -> str:
    """Substitute `{column}` placeholders by regex (never str.format or eval: data is not code)."""

    def sub(match: re.Match) -> str:
        name = match.group(1)
        if name not in record:
            cols = ", ".join(map(str, record)) or "none"
            raise RecordError(f"{key} names column '{{{name}}}', which the record lacks "
                              f"(columns: {cols}); fix the template")
        return as_text(record[name])

    return _PLACEHOLDER.sub(sub, template)


def as_text(value: Any) -> str:
    """A cell as text: None is empty, containers become JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


# ---------------------------------------------------------------- messages and tools


# Records of a file mostly share one tool set: reuse its JSON when the next list is equal (an
# exact comparison, much cheaper than encoding it again).
_TOOLS_SEEN: dict[Any, tuple[Any, str | None]] = {}


def _tools_key(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # a cheap fingerprint; equality is checked on a hit
        return (len(value), repr(value[0])[:200])
    return None


def normalize_tools(value: Any, key: str = "tools") -> str | None:
    """Tools as a JSON string of OpenAI function specs (``{"type": "function", "function": ...}``)."""
    if value is None or value == "" or value == []:
        return None
    cache_key = _tools_key(value)
    hit = _TOOLS_SEEN.get(cache_key) if cache_key is not None else None
    if hit is not None and hit[0] == value:
        return hit[1]
    result = _encode_tools(value, key)
    if cache_key is not None:
        if len(_TOOLS_SEEN) > 256:
            _TOOLS_SEEN.clear()
        _TOOLS_SEEN[cache_key] = (value, result)
    return result


def _encode_tools(value: Any, key: str) -> str | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise RecordError(f"{key} is not valid JSON ({exc}); fix it or remove it",
                              "tool_schema_invalid") from None
        if value in (None, [], ""):
            return None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise RecordError(f"{key} must be a list of function specs (objects)", "tool_schema_invalid")
    tools = [t if "function" in t else {"type": "function", "function": t} for t in value]
    return json.dumps(tools, ensure_ascii=False, check_circular=False)


def arguments_text(arguments: Any) -> str:
    """Tool-call arguments as the JSON string chat templates expect; objects are encoded."""
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False)


def _tool_call(call: Any, key: str, new_id) -> dict:
    if not isinstance(call, dict):
        raise RecordError(f"{key} must be an object with a function name and arguments")
    fn = call.get("function") if isinstance(call.get("function"), dict) else call
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise RecordError(f"{key} has no function name")
    return {
        "id": str(call.get("id") or new_id()),
        "type": "function",
        "function": {"name": name, "arguments": arguments_text(fn.get("arguments"))},
    }


class _Conversation:
    """Builds normalised messages, giving tool calls ids and tool replies the id they answer."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self._pending: list[str] = []
        self._next = 0

    def new_id(self) -> str:
        self._next += 1
        return f"call_{self._next}"

    def add(self, role: str, content: str, *, tool_calls=None, tool_call_id=None, name=None):
        msg: dict = {"role": role, "content": content}
        if tool_calls:
            msg["tool_calls"] = tool_calls
            self._pending = [c["id"] for c in tool_calls]
        if role == "tool":
            if tool_call_id is None and self._pending:
                tool_call_id = self._pending[0]
            if tool_call_id in self._pending:
                self._pending.remove(tool_call_id)
        if tool_call_id is not None:
            msg["tool_call_id"] = str(tool_call_id)
        if name is not None:
            msg["name"] = str(name)
        self.messages.append(msg)

    def add_tool_replies(self, content: str, name=None) -> None:
        """A tool turn answering several parallel calls at once becomes one message per call."""
        if len(self._pending) > 1:
            try:
                replies = json.loads(content)
            except ValueError:
                replies = None
            if (isinstance(replies, list) and len(replies) == len(self._pending)
                    and all(isinstance(r, dict) and "content" in r for r in replies)):
                for r in replies:
                    self.add("tool", as_text(r["content"]), name=r.get("name", name))
                return
        self.add("tool", content, name=name)


def _role(value: Any, key: str) -> str:
    role = _ROLE_ALIASES.get(value, value) if isinstance(value, str) else value
    if role not in ROLES:
        raise RecordError(f"{key} {value!r} is not a known role; use one of {', '.join(ROLES)}")
    return role


def _parts(content: list, key: str, conv: _Conversation):
    """LLaMA-Factory / OpenAI content parts -> (text, tool calls); reasoning kept as <think>."""
    texts, thoughts, calls = [], [], []
    for j, part in enumerate(content):
        pkey = f"{key}[{j}]"
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise RecordError(f"{pkey} must be an object with 'type' and 'value'")
        kind = part.get("type", "text")
        value = part.get("value", part.get("text"))
        if kind == "tool_call":
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError as exc:
                    raise RecordError(f"{pkey} tool_call is not valid JSON ({exc})",
                                      "tool_args_invalid_json") from None
            for k, call in enumerate(value if isinstance(value, list) else [value]):
                calls.append(_tool_call(call, f"{pkey}.value[{k}]", conv.new_id))
        elif kind in ("reasoning", "thinking"):
            thoughts.append(as_text(value))
        else:
            texts.append(as_text(value))
    text = "".join(texts)
    if thoughts:
        text = "<think>\n" + "\n".join(thoughts) + "\n</think>\n\n" + text
    return text, calls


def normalize_messages(messages: Any, key: str = "messages") -> list[dict]:
    """OpenAI-style (or content-parts) messages -> normalised messages."""
    if not isinstance(messages, list):
        raise RecordError(f"{key} must be a list of messages")
    conv = _Conversation()
    out = conv.messages
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise RecordError(f"{key}[{i}] must be an object with 'role' and 'content'")
        role, content = m.get("role"), m.get("content")
        # The common case, a plain turn, skips the general path below (lint streams big files).
        if (role == "user" or role == "system" or role == "assistant") and type(content) is str \
                and not m.get("tool_calls") and m.get("name") is None:
            out.append({"role": role, "content": content})
            continue
        mkey = f"{key}[{i}]"
        if "role" not in m:
            raise RecordError(f"{mkey} has no 'role'")
        role = _role(role, f"{mkey}.role")
        calls = []
        if isinstance(content, list):
            content, calls = _parts(content, f"{mkey}.content", conv)
        raw_calls = m.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            raise RecordError(f"{mkey}.tool_calls must be a list")
        calls += [_tool_call(c, f"{mkey}.tool_calls[{k}]", conv.new_id)
                  for k, c in enumerate(raw_calls)]
        if role == "tool" and m.get("tool_call_id") is None and isinstance(m.get("content"), list):
            conv.add_tool_replies(as_text(content), name=m.get("name"))
            continue
        conv.add(role, as_text(content), tool_calls=calls or None,
                 tool_call_id=m.get("tool_call_id"), name=m.get("name"))
    return conv.messages


def normalize_sharegpt(turns: Any, system: Any = None, key: str = "conversations") -> list[dict]:
    """ShareGPT turns (from/value; function_call and observation) -> normalised messages."""
    if not isinstance(turns, list):
        raise RecordError(f"{key} must be a list of turns")
    conv = _Conversation()
    if system:
        conv.add("system", as_text(system))
    for i, t in enumerate(turns):
        tkey = f"{key}[{i}]"
        if not isinstance(t, dict):
            raise RecordError(f"{tkey} must be an object with 'from' and 'value'")
        speaker = t.get("from", t.get("role"))
        value = t.get("value", t.get("content"))
        if speaker is None:
            raise RecordError(f"{tkey} has no 'from'")
        if speaker == "function_call":
            try:
                call = json.loads(value) if isinstance(value, str) else value
            except ValueError as exc:
                raise RecordError(f"{tkey}.value: function_call is not valid JSON ({exc})",
                                  "tool_args_invalid_json") from None
            calls = [_tool_call(c, f"{tkey}.value", conv.new_id)
                     for c in (call if isinstance(call, list) else [call])]
            conv.add("assistant", "", tool_calls=calls)
        elif _role(speaker, f"{tkey}.from") == "tool":
            conv.add_tool_replies(as_text(value))
        else:
            conv.add(_role(speaker, f"{tkey}.from"), as_text(value))
    return conv.messages


# ---------------------------------------------------------------- rows


def chat_row(messages: list[dict], tools: str | None, *, loss_on: str,
             system_prompt: str | None) -> dict:
    """Normalised messages -> a TRL conversational row (prompt/completion or messages)."""
    if system_prompt and not (messages and messages[0]["role"] == "system"):
        messages = [{"role": "system", "content": system_prompt}] + messages
    if not any(m["role"] == "assistant" for m in messages):
        if not messages:
            raise Skip("empty conversation")
        raise RecordError("the conversation has no assistant message, so nothing to train on; "
                          "add the assistant's reply", "no_assistant")
    if loss_on != "completion":
        return {"messages": messages, "tools": tools}
    last = messages[-1]
    if last["role"] != "assistant":
        raise RecordError(
            f"the conversation ends with a '{last['role']}' message; the last message must be "
            "the assistant's (the completion, e.g. the tool call): remove the trailing turns, or "
            "train on every assistant turn with --set data.loss_on=assistant", "not_ending_with_assistant")
    if not last["content"].strip() and not last.get("tool_calls"):
        raise Skip("empty completion")
    return {"prompt": messages[:-1], "completion": [last], "tools": tools}


def _require(record: dict, field: str, fmt: str) -> Any:
    if field not in record:
        cols = ", ".join(map(str, record)) or "none"
        raise RecordError(f"missing field '{field}' of format {fmt} (columns: {cols}); every "
                          "record of a file must have the fields of the same format", "missing_field")
    return record[field]


def prompt_and_completion(record: dict, fmt: str, *, prompt_template=None,
                          completion_template=None) -> tuple[str, str, str | None]:
    """(user text, assistant text, record's own system text) of a non-chat record."""
    system = record.get("system") if isinstance(record.get("system"), str) else None
    if fmt == "alpaca":
        prompt = as_text(_require(record, "instruction", fmt))
        extra = as_text(record.get("input"))
        if extra.strip():
            prompt = f"{prompt}\n\n{extra}" if prompt.strip() else extra
        return prompt, as_text(_require(record, "output", fmt)), system
    if fmt == "input-output":
        return as_text(_require(record, "input", fmt)), as_text(_require(record, "output", fmt)), system
    if fmt == "question-answer":
        return (as_text(_require(record, "question", fmt)),
                as_text(_require(record, "answer", fmt)), system)
    if fmt == "prompt-completion":
        return (as_text(_require(record, "prompt", fmt)),
                as_text(_require(record, "completion", fmt)), system)
    if fmt == "nli":
        fields = _nli_fields(record)
        if fields is None:
            cols = ", ".join(map(str, record)) or "none"
            raise RecordError(f"missing the fields of format nli: premise/hypothesis/label or "
                              f"sentence1/sentence2/gold_label (columns: {cols})", "missing_field")
        (p, h), label = fields
        prompt = f"Premise: {as_text(record[p])}\nHypothesis: {as_text(record[h])}"
        return prompt, as_text(record[label]), None
    if fmt == "mapped":
        return (render_template(prompt_template, record, "data.prompt_template"),
                render_template(completion_template, record, "data.completion_template"), None)
    raise RecordError(f"format {fmt} has no prompt and completion")


def normalize_record(record: dict, fmt: str, *, loss_on: str = "completion", chat: bool = True,
                     system_prompt: str | None = None, prompt_template: str | None = None,
                     completion_template: str | None = None, separator: str = PLAIN_SEPARATORS[0]) -> dict:
    """One raw record of format `fmt` -> one normalised row (`separator` joins plain text). Raises RecordError or Skip."""
    if not isinstance(record, dict):
        raise RecordError(f"a record must be a JSON object, found {type(record).__name__}")
    if not record:
        raise Skip("empty record")
    if fmt in ("messages", "messages-parts"):
        msgs = normalize_messages(_require(record, "messages", fmt))
        return chat_row(msgs, normalize_tools(record.get("tools")), loss_on=loss_on,
                        system_prompt=system_prompt)
    if fmt == "sharegpt":
        msgs = normalize_sharegpt(_require(record, "conversations", fmt), record.get("system"))
        return chat_row(msgs, normalize_tools(record.get("tools")), loss_on=loss_on,
                        system_prompt=system_prompt)
    if fmt == "text":
        text = as_text(_require(record, "text", fmt))
        if not text.strip():
            raise Skip("empty text")
        return {"text": text}
    if fmt == "prompt-completion" and isinstance(record.get("prompt"), list):
        prompt = normalize_messages(record["prompt"], "prompt")
        completion = normalize_messages(_require(record, "completion", fmt), "completion")
        return chat_row(prompt + completion, normalize_tools(record.get("tools")),
                        loss_on=loss_on, system_prompt=system_prompt)
    prompt, completion, system = prompt_and_completion(
        record, fmt, prompt_template=prompt_template, completion_template=completion_template)
    if not completion.strip():
        raise Skip("empty completion")
    if not prompt.strip():
        raise Skip("empty prompt")
    system = system or system_prompt
    if not chat:
        prompt = f"{system}\n\n{prompt}" if system else prompt
        # A prompt-completion record is TRL's own plain form already: its text stays as the user wrote it.
        if fmt != "prompt-completion" and not (prompt[-1:].isspace() or completion[:1].isspace()):
            prompt += separator
        return {"prompt": prompt, "completion": completion}
    messages = [{"role": "system", "content": system}] if system else []
    for turn in record.get("history") or [] if fmt == "alpaca" else []:
        if isinstance(turn, (list, tuple)) and len(turn) == 2:
            messages += [{"role": "user", "content": as_text(turn[0])},
                         {"role": "assistant", "content": as_text(turn[1])}]
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    return chat_row(messages, None, loss_on=loss_on, system_prompt=None)
