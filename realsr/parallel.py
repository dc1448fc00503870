"""Per-item parallelism: a process-pool map with a progress bar, and ``--shard K/N`` selection."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterator, Sequence, TypeVar

from tqdm import tqdm

from .errors import RealsrError, UsageError

#: what a dead worker means; the usual cause in a user's script is the missing ``__main__`` guard: a
#: spawned worker re-runs the script, reaches the parallel call again and dies in its bootstrap
WORKER_DIED = ("a worker process ended abruptly (killed, out of memory, or it failed to start or to read its job: "
               "see the worker's traceback above). Calling realsr from a Python script with workers > 1? Worker "
               "processes are spawned and re-import the script: put its code under 'if __name__ == \"__main__\":'")

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def parse_shard(spec: str | None) -> tuple[int, int]:
    """Parse ``"K/N"`` (1 <= K <= N) into ``(K, N)``; None means ``(1, 1)``."""
    if spec is None:
        return 1, 1
    try:
        k_s, n_s = spec.split("/")
        k, n = int(k_s), int(n_s)
    except ValueError:
        raise UsageError(f"--shard must look like K/N (e.g. 2/4), got {spec!r}") from None
    if n < 1 or not 1 <= k <= n:
        raise UsageError(f"--shard K/N needs 1 <= K <= N, got {spec!r}")
    return k, n


def select_shard(items: Sequence[T], index: int, count: int) -> list[T]:
    """Every ``count``-th item starting at position ``index - 1`` (``index`` is 1-based)."""
    return [it for i, it in enumerate(items) if i % count == index - 1]


def _init_worker(log_level: int) -> None:
    logging.getLogger("realsr").setLevel(log_level)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="realsr: %(levelname)s: %(message)s")
    try:  # one OpenCV thread per worker process: the processes already fill the cores
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass


def parallel_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    workers: int = 1,
    desc: str | None = None,
    progress: bool = True,
) -> Iterator[tuple[int, R]]:
    """Apply ``fn`` to every item, yielding ``(index, result)`` as items finish.

    ``workers <= 1`` runs in this process, in order. Otherwise a pool of ``workers`` spawned
    processes runs them (``fn`` and the items must pickle); at most ``2 * workers`` items are in
    flight so huge item lists do not all sit in memory. A tqdm bar on stderr counts finished items.
    An exception in ``fn`` propagates (stage functions catch per-item errors themselves); a worker
    that dies (killed, out of memory, a script without a ``__main__`` guard) raises
    :class:`~realsr.errors.RealsrError` saying so.
    """
    n = len(items)
    bar = tqdm(total=n, desc=desc, disable=not progress or n == 0, unit="item", leave=False)
    try:
        if workers <= 1 or n <= 1:
            for i, it in enumerate(items):
                r = fn(it)
                bar.update(1)
                yield i, r
            return
        ctx = mp.get_context("spawn")
        level = logging.getLogger("realsr").getEffectiveLevel()
        with ProcessPoolExecutor(
            max_workers=min(workers, n), mp_context=ctx, initializer=_init_worker, initargs=(level,)
        ) as ex:
            pending: dict[Any, int] = {}
            next_i = 0
            try:
                while next_i < n or pending:
                    while next_i < n and len(pending) < 2 * workers:
                        pending[ex.submit(fn, items[next_i])] = next_i
                        next_i += 1
                    done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                    for fut in done:
                        i = pending.pop(fut)
                        r = fut.result()
                        bar.update(1)
                        yield i, r
            except BaseException as e:
                for fut in pending:
                    fut.cancel()
                ex.shutdown(wait=True, cancel_futures=True)
                if isinstance(e, BrokenProcessPool):  # from a result or from submitting the next item
                    raise RealsrError(WORKER_DIED) from e
                raise
    finally:
        bar.close()
