"""``realsr subimages``: cut a pair dataset into overlapping aligned sub-image pairs."""

from __future__ import annotations

from pathlib import Path

import click

from .common import overwrite_option, summary_line
from .main import EXIT_ITEMS_FAILED, EXIT_OK, cli


@cli.command("subimages")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="New pair dataset.")
@click.option("--scale", type=click.IntRange(1, 16), default=None, help="HR = scale x LR (default: from DATASET/manifest.json).")
@click.option("--crop", type=click.IntRange(1), default=480, help="Sub-image side in HR pixels (BasicSR: 480).")
@click.option("--step", type=click.IntRange(1), default=240, help="Distance between sub-images in HR pixels.")
@click.option("--min-rest", type=click.IntRange(0), default=0,
              help="Add a crop flush with the far edge when more than this many pixels would be left out.")
@overwrite_option
@click.pass_context
def subimages_command(ctx: click.Context, dataset: Path, out: Path, scale: int | None, crop: int, step: int, min_rest: int,
                      overwrite: bool) -> int:
    """Cut every pair of DATASET (HR/ + LR/) into overlapping aligned crops, written as the pair
    dataset OUT: faster training on large photos with `data.in_memory: false`. Re-running skips
    finished sources; --overwrite redoes them (and replaces crops made with other settings)."""
    from tqdm import tqdm

    from realsr.errors import UsageError
    from realsr.manifest import check_dataset_scale, dataset_scale
    from realsr.train.subimages import extract_subimages

    if scale is None:
        scale = dataset_scale(dataset)
        if scale is None:
            raise UsageError("give --scale (DATASET has no readable manifest.json)", dataset)
    check_dataset_scale(dataset, scale)
    bar = tqdm(desc="subimages", unit="pair", leave=False, disable=not ctx.obj.get("progress", True))
    try:
        man = extract_subimages(dataset, out, scale, crop, step, min_rest, overwrite, progress=lambda _: bar.update(1))
    finally:
        bar.close()
    counts = man.counts()
    click.echo(summary_line(counts, str(out / "manifest.json")), err=True)
    return EXIT_ITEMS_FAILED if counts.get("failed") else EXIT_OK
