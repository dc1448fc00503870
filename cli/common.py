"""Options shared by several commands."""

from __future__ import annotations

import click

from realsr.parallel import default_workers


def workers_option(f):
    return click.option(
        "--workers", type=click.IntRange(min=1), default=default_workers(),
        help="Worker processes (default: all cores).", show_default="all cores",
    )(f)


def shard_option(f):
    return click.option(
        "--shard", metavar="K/N", default=None,
        help="Process every N-th item starting at the K-th (1-based), so N jobs can split a dataset.",
    )(f)


def overwrite_option(f):
    return click.option("--overwrite", is_flag=True, help="Redo items that are already done.")(f)


def summary_line(counts: dict[str, int], where: str) -> str:
    parts = ", ".join(f"{v} {k}" for k, v in counts.items())
    return f"realsr: {parts} -> {where}"
