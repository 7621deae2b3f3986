"""The one exception the engine raises for things a user can fix (standard library only)."""

from __future__ import annotations


class EngineError(Exception):
    """A failure with a kind from the event contract and a one-line message naming the fix.

    kind "config" and "data" are bad input (exit 2, before any training); "oom" and "crash" are
    failures of a run that had started.
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message
