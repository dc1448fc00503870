"""Atomic file writes: write to a hidden temporary name in the destination folder, then rename.

An interrupted run therefore never leaves a half-written file under its final name. Temporary names
start with :data:`TMP_PREFIX`; :func:`remove_stale_temporaries` deletes those a killed process left.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

TMP_PREFIX = ".realsr-tmp-"

# mkstemp creates files readable by the owner only; finished files get the usual permissions
# (0666 minus the umask). The umask can only be read by setting it: do it once, at import.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it.

    The temporary file keeps the final suffix so that writers choosing a format by extension
    (OpenCV) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(e, OSError) and e.filename is not None and Path(e.filename) == tmp_path:
            # name the file being written, not its temporary (the user never sees that name)
            raise OSError(e.errno, e.strerror, os.fspath(path)) from e
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically. Non-ASCII characters are escaped, so
    file names that are not valid UTF-8 (Python's surrogate escapes) are stored and read back intact."""
    text = json.dumps(obj, indent=2, ensure_ascii=True, allow_nan=True) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


#: a temporary file younger than this (seconds) may belong to a job still writing it (another shard
#: in the same folder); only older ones count as left behind by a killed run
STALE_AFTER_S = 3600.0


def remove_stale_temporaries(folder: str | os.PathLike, older_than_s: float = STALE_AFTER_S) -> int:
    """Delete temporary files a killed run left anywhere under ``folder``; return how many.

    Only files last modified more than ``older_than_s`` seconds ago are removed: shards of one job
    may write into the same folder at once, and a shard starting late must not delete a file another
    one is in the middle of writing."""
    import time

    folder = Path(folder)
    if not folder.is_dir():
        return 0
    now = time.time()
    n = 0
    for p in folder.rglob(TMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            if p.is_file() and now - p.stat().st_mtime > older_than_s:
                p.unlink()
                n += 1
    return n
