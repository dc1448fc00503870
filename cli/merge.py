"""``realsr merge``: join shard records into manifest.json (pair datasets) or pool.json (pools)."""

from __future__ import annotations

from pathlib import Path

import click

from realsr.errors import UsageError
from realsr.manifest import MANIFEST_NAME, merge_shards

from .common import summary_line
from .main import EXIT_ITEMS_FAILED, EXIT_OK, cli


@cli.command("merge")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def merge_cmd(folder: Path) -> int:
    """Merge the shard records of FOLDER: manifest.shard-K-of-N.json into manifest.json (a pair
    dataset), pool.shard-K-of-N.json into pool.json and its preview.png (a pool).

    Runs made with --shard merge automatically once every shard is done; use this to merge what
    is there earlier, or after copying shard folders together.
    """
    if not folder.is_dir():
        raise UsageError("no such folder", folder)
    merged = merge_shards(folder)
    where = folder / MANIFEST_NAME
    if merged is None:
        from realsr.degrade.pool import POOL_NAME, Pool, merge_pool_shards
        from realsr.degrade.preview import make_pool_preview
        from realsr.images import write_png

        merged = merge_pool_shards(folder)
        if merged is None:
            raise UsageError("no shard records to merge (manifest.shard-K-of-N.json or pool.shard-K-of-N.json)",
                             folder)
        where = folder / POOL_NAME
        write_png(folder / "preview.png", make_pool_preview(Pool.load(where)))
    counts = merged.counts()
    click.echo(summary_line(counts, str(where)), err=True)
    return EXIT_ITEMS_FAILED if counts.get("failed") else EXIT_OK
