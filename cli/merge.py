"""``realsr merge``: join shard manifests into manifest.json."""

from __future__ import annotations

from pathlib import Path

import click

from realsr.errors import UsageError
from realsr.manifest import MANIFEST_NAME, merge_shards

from .common import summary_line
from .main import EXIT_ITEMS_FAILED, EXIT_OK, cli


@cli.command("merge")
@click.argument("dataset", type=click.Path(file_okay=False, path_type=Path))
def merge_cmd(dataset: Path) -> int:
    """Merge the shard manifests (manifest.shard-K-of-N.json) of DATASET into manifest.json.

    Runs made with --shard merge automatically once every shard is done; use this to merge what
    is there earlier, or after copying shard folders together.
    """
    merged = merge_shards(dataset)
    if merged is None:
        raise UsageError("no shard manifests to merge", dataset)
    counts = merged.counts()
    click.echo(summary_line(counts, str(dataset / MANIFEST_NAME)), err=True)
    return EXIT_ITEMS_FAILED if counts.get("failed") else EXIT_OK
