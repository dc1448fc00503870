"""Options shared by several commands."""

from __future__ import annotations

import math

import click

from realsr.parallel import default_workers

#: Architectures ``--arch`` names (the model registry's names; a test keeps the two equal without
#: importing torch here)
ARCHITECTURES = ("bicubic", "d2csr", "edsr", "rcan", "rrdbnet", "srrescgan")


class Finite(click.FloatRange):
    """A float option (optionally bounded, as :class:`click.FloatRange`) that refuses NaN and
    infinity: a comparison with NaN is always false, so a plain range check lets it through and it
    would silently switch a gate off or reach the arithmetic."""

    name = "finite float"

    def _describe_range(self) -> str:
        # no bounds: no range text in --help (click would print "x<=None")
        return "" if self.min is None and self.max is None else super()._describe_range()

    def convert(self, value, param, ctx):  # type: ignore[override]
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


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


def inference_options(f):
    """Model and inference options shared by ``eval`` and ``upscale``."""
    opts = [
        click.option("--arch", default=None, help="Architecture of a PyTorch checkpoint (recognised from "
                     "the parameter names when omitted). One of: " + ", ".join(ARCHITECTURES) + "."),
        click.option("--scale", type=click.IntRange(1, 16), default=None,
                     help="Scale; model files know theirs. Needed for 'bicubic' (default 4)."),
        click.option("--tile", type=click.IntRange(min=0), default=512, show_default=True,
                     help="Tile side in LR pixels; 0: the whole image at once."),
        click.option("--overlap", type=click.IntRange(min=0), default=16, show_default=True,
                     help="LR pixels shared by neighbouring tiles (blended); raised to 3x the network's "
                     "receptive radius where it declares one, so tiles then change nothing."),
        click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Tiles per forward pass."),
        click.option("--ensemble", is_flag=True, help="x8 self-ensemble (flips and rotations, averaged)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps."),
        click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16", "half"]), default="fp32",
                     show_default=True, help="Compute precision; half = bf16 where the GPU has it, else fp16."),
        click.option("--half", is_flag=True, help="Same as --precision half."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def make_inference(model_spec: str, arch: str | None, scale: int | None, tile: int, overlap: int, batch: int,
                   ensemble: bool, device: str, precision: str, half: bool):
    """(model, InferOptions) from the shared options; errors as UsageError."""
    from realsr.train.infer import InferOptions, resolve_device
    from realsr.train.model_files import load_model

    resolve_device(device)  # fail early on a device that is not there
    model = load_model(model_spec, arch=arch, scale=scale)
    opts = InferOptions(tile=tile, overlap=overlap, batch=batch, ensemble=ensemble, device=device,
                        precision="half" if half else precision)
    return model, opts
