"""Error types. Every error the toolkit raises on purpose derives from :class:`RealsrError`, carries
a one-line message and, where one is involved, the file it concerns; the CLI prints it as
``realsr: error: <message> (<file>)``."""

from __future__ import annotations

import os


class RealsrError(Exception):
    """An expected failure with a one-line message and optionally the path it concerns."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else os.fspath(path)

    def __str__(self) -> str:
        return f"{self.message} ({self.path})" if self.path else self.message


class ImageReadError(RealsrError):
    """A file could not be read as an image: missing, empty, truncated, corrupt or unsupported."""


class UsageError(RealsrError):
    """Bad options or unusable input for a whole command (exit code 2)."""
