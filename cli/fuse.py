"""``realsr fuse``: fuse the outputs of several SR models by the Y-median rule of the Samsung-SLSI-MSL
NTIRE 2020 entry (:mod:`realsr.train.fusion`, docs/methods/samsung.md)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import Finite, summary_line
from .main import EXIT_OK, cli


class _Weights(click.ParamType):
    """A number, or comma-separated numbers (one per input folder)."""

    name = "W[,W...]"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float, tuple)):
            return value
        try:
            vals = tuple(float(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a number or a comma-separated list of numbers", param, ctx)
        return vals[0] if len(vals) == 1 else vals


@cli.command("fuse")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: <name>.png per image and fuse.json.")
@click.option("--alpha", type=_Weights(), default="1.0", show_default=True,
              help="Weights when the median Y is below --gamma (a dark image): for 2 inputs the first "
                   "input's weight a (the second gets 1 - a), else one weight per input, summing to 1.")
@click.option("--beta", type=_Weights(), default="0.5", show_default=True,
              help="Weights when the median Y is at least --gamma (as --alpha).")
@click.option("--gamma", type=Finite(), default=64.0, show_default=True,
              help="Threshold on the median Y, 0-255 scale of --luma.")
@click.option("--luma", type=click.Choice(["studio", "full"]), default="studio", show_default=True,
              help="Y convention: studio = MATLAB rgb2ycbcr (16-235, as realsr eval); full = 255 x "
                   "(0.299 R + 0.587 G + 0.114 B).")
@click.option("--median-of", "median_of", type=click.Choice(["mean", "first"]), default="mean", show_default=True,
              help="Image whose median Y decides, without --reference: the mean of the inputs or the first input.")
@click.option("--reference", type=click.Path(path_type=Path), default=None,
              help="Folder of images (any size, e.g. the LR inputs) whose median Y decides, by name.")
@click.option("--hr", type=click.Path(path_type=Path), default=None,
              help="HR folder: score every input and the fusion (PSNR/SSIM on Y) into fuse.json.")
@click.option("--crop-border", type=click.IntRange(min=0), default=4, show_default=True,
              help="With --hr: pixels cropped from each side before scoring (the models' scale).")
@click.option("--overwrite", is_flag=True, help="Replace a fusion that OUT already holds (its fuse.json).")
@click.pass_context
def fuse_command(ctx: click.Context, inputs: tuple[Path, ...], out: Path, alpha, beta, gamma: float, luma: str,
                 median_of: str, reference: Path | None, hr: Path | None, crop_border: int, overwrite: bool) -> int:
    """Fuse the images of 2 or more INPUTS folders (outputs of different models on the same inputs,
    paired by file name; Samsung-SLSI-MSL: first the standard-GAN model, then the relativistic one)
    into OUT: per image, the median Y of the reference (default: the mean of the inputs) picks the
    weights, --alpha when it is below --gamma, else --beta, and the output is the weighted average.
    The rule's reading and defaults are documented as [INFERENCE] in docs/methods/samsung.md."""
    from tqdm import tqdm

    from realsr.errors import UsageError
    from realsr.train.fusion import FusionRule, fuse_folders

    if len(inputs) < 2:
        raise UsageError(f"give at least 2 input folders, got {len(inputs)}")
    try:
        rule = FusionRule(alpha=alpha, beta=beta, gamma=gamma, luma=luma, source=median_of)
    except ValueError as e:
        raise UsageError(str(e)) from None
    bar = tqdm(desc="fuse", unit="image", leave=False, disable=not ctx.obj.get("progress", True))
    try:
        report = fuse_folders(inputs, out, rule, reference, hr, crop_border, overwrite, progress=lambda _: bar.update(1))
    finally:
        bar.close()
    if "mean" in report:
        for k, v in report["mean"].items():
            vals = " ".join(f"{m} {x:.4f}" for m, x in v.items() if x is not None)
            click.echo(f"realsr: {k}: {vals}", err=True)
    click.echo(summary_line(report["counts"], str(out)), err=True)
    return EXIT_OK
