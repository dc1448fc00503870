"""Error types. Every error the toolkit raises on purpose derives from :class:`RealsrError`, carries
a one-line message and, where one is involved, the file it concerns; the CLI prints it as
``realsr: error: <message> (<file>)``."""

from __future__ import annotations

import errno
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


#: errors of writing or reading one file that say nothing about the others (a name too long for the
#: file system, a folder where a file should be, a name the file system cannot hold)
_ONE_FILE_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EISDIR, errno.ENOTDIR, errno.EILSEQ, errno.EINVAL})


def concerns_one_file(e: OSError) -> bool:
    """True when ``e`` is a problem of one file (a run goes on with the next item), False when it
    concerns the output as a whole (disk full, no permission, read-only file system: the run stops)."""
    return e.errno in _ONE_FILE_ERRNOS


def os_error_text(e: OSError) -> str:
    """One line for an OSError: its message and the file it names."""
    return f"{e.strerror or e}" + (f" ({e.filename})" if getattr(e, "filename", None) else "")


def item_failure(e: BaseException) -> tuple[str, str | None] | None:
    """``(reason, file)`` when ``e`` is the failure of one item of a run (a :class:`RealsrError`, a
    ``ValueError`` from checking it, running out of memory on it, an OSError of one file: see
    :func:`concerns_one_file`), ``file`` being the file the error names (or None); None when ``e``
    concerns the whole run, which the caller then lets stop."""
    if isinstance(e, RealsrError):
        return e.message, e.path
    if isinstance(e, MemoryError):
        return "out of memory", None
    if isinstance(e, OSError):
        return (e.strerror or str(e), os.fspath(e.filename) if e.filename else None) if concerns_one_file(e) else None
    if isinstance(e, ValueError):
        return str(e), None
    return None
