"""The errors a user can fix, as data (standard library only).

An `EngineError` crosses the process boundary as the `error` event's payload: its kind, a stable
code, the one-line message, the config key it is about, the numbers behind it and the fix as
config overrides. Readers (the diagnoses, the TUI's form) use those fields; none parses the message.
"""

from __future__ import annotations

from typing import Any

# kind "config" and "data" are bad input (exit 2, nothing trained); "oom", "nan", "disk" and "crash"
# are failures of a run that had started.
BAD_INPUT_KINDS = ("config", "data")


class EngineError(Exception):
    """A failure with a kind from the event contract and a one-line message naming the fix.

    `code` names the problem for readers (e.g. "completion-lost", "eval-empty"); `key` the config
    key it concerns (the form marks that field); `data` the numbers behind it; `overrides` the fix
    as config keys, e.g. {"train.max_length": 2048}.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        code: str | None = None,
        key: str | None = None,
        data: dict[str, Any] | None = None,
        overrides: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code or kind
        self.key = key
        self.data = dict(data or {})
        self.overrides = dict(overrides or {})

    def payload(self) -> dict[str, Any]:
        """The `error` event's fields."""
        out: dict[str, Any] = {"kind": self.kind, "code": self.code, "message": self.message}
        if self.key:
            out["key"] = self.key
        if self.data:
            out["data"] = self.data
        if self.overrides:
            out["overrides"] = self.overrides
        return out

    @property
    def bad_input(self) -> bool:
        return self.kind in BAD_INPUT_KINDS


class ConfigError(EngineError, ValueError):
    """A config a user wrote that cannot run; the message is one line naming the key and the fix.

    `problem` is the message without its source (for a form that shows it next to the field).
    """

    def __init__(self, message: str, *, key: str | None = None, problem: str | None = None, code: str = "config", **kw: Any):
        super().__init__("config", message, code=code, key=key, **kw)
        self.problem = problem or message


class DataError(EngineError, ValueError):
    """Bad input data; the message is one line naming the file and line (or key) and the fix."""

    def __init__(self, message: str, *, code: str = "data", **kw: Any):
        super().__init__("data", message, code=code, **kw)
