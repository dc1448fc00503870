"""``realsr align``: real LR/HR captures -> pixel-aligned pair dataset."""

from __future__ import annotations

from pathlib import Path

import click

from realsr.capture_align.geometry import METHODS, MODELS
from realsr.capture_align.params import INTERPOLATION_NAMES, PHOTOMETRIC_MODES, REFINE_MODES, AlignParams
from realsr.capture_align.dataset import align_dataset
from realsr.capture_align.pairing import discover_pairs
from realsr.errors import UsageError
from realsr.manifest import MANIFEST_NAME, shard_manifest_name
from realsr.parallel import parse_shard
from realsr.raw import RawOptions

from .common import Finite, overwrite_option, shard_option, summary_line, workers_option
from .main import EXIT_ITEMS_FAILED, EXIT_OK, cli

D = AlignParams()


@cli.command("align")
@click.argument("lr_source", type=click.Path(exists=True, path_type=Path))
@click.argument("hr_source", type=click.Path(exists=True, path_type=Path), required=False)
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output dataset folder (HR/, LR/, previews/, manifest.json).")
@click.option("--scale", type=click.IntRange(min=1), required=True,
              help="Output scale: HR is exactly SCALE times LR (2, 3, 4, 8 ...).")
@click.option("--zoom", type=Finite(min=0, min_open=True), default=None,
              help="Expected focal-length ratio HR/LR when it differs from SCALE (e.g. 2.9).",
              show_default="SCALE")
@click.option("--zoom-tolerance", type=Finite(min=0), default=D.zoom_tolerance,
              help="Reject pairs whose measured zoom differs from the expected one by more (relative).")
@click.option("--lr-suffix", default="", help="Suffix of LR stems to strip before pairing (e.g. 'L' for 001L.png).")
@click.option("--hr-suffix", default="", help="Suffix of HR stems to strip before pairing (e.g. 'H').")
@click.option("--model", type=click.Choice(MODELS), default=D.model, help="Geometric model.")
@click.option("--robust", type=click.Choice(METHODS), default=D.method,
              help="Robust estimator (OpenCV USAC MAGSAC++ or RANSAC).")
@click.option("--ratio", type=Finite(0, 1, min_open=True), default=D.ratio, help="Lowe ratio-test threshold.")
@click.option("--max-features", type=click.IntRange(min=0), default=D.max_features,
              help="SIFT keypoints kept per image (0 = all).")
@click.option("--coarse-size", type=click.IntRange(min=64), default=D.coarse_size,
              help="Coarse matching works with the LR reduced to at most this many pixels per side.")
@click.option("--work-size", type=click.IntRange(min=64), default=D.work_size,
              help="Refinement works with the LR crop reduced to at most this many pixels per side.")
@click.option("--blur", type=Finite(min=0), default=D.blur,
              help="Gaussian sigma (LR pixels) applied to the HR before matching, to match the LR's sharpness.")
@click.option("--crop", type=Finite(0, 0.25, max_open=True), default=D.crop,
              help="Fraction of the crop removed per side each refinement round (drops distorted borders).")
@click.option("--max-iters", type=click.IntRange(min=0), default=D.max_iters, help="Refinement rounds at most.")
@click.option("--tol", type=Finite(min=0), default=D.tol,
              help="Stop refining when an update moves no crop corner by more than this (LR pixels).")
@click.option("--refine", type=click.Choice(REFINE_MODES), default=D.refine,
              help="Dense sub-pixel refinement of the final crop: ECC homography plus a smooth displacement "
                   "field (absorbs lens distortion), ECC only, or none (the paper's SIFT-only procedure).")
@click.option("--field-degree", type=click.IntRange(0, 5), default=D.field_degree,
              help="Polynomial degree of the displacement field (3 models radial distortion).")
@click.option("--photometric", type=click.Choice(PHOTOMETRIC_MODES), default=D.photometric,
              help="Correct the LR's colours to the HR: 3x3 colour transfer, gain+offset, or nothing.")
@click.option("--photometric-sigma", type=Finite(min=0), default=D.photometric_sigma,
              help="Low-pass (LR pixels) both images before fitting the photometric transfer (0 = as RealSR).")
@click.option("--interpolation", type=click.Choice(INTERPOLATION_NAMES), default=D.interpolation,
              help="Resampling of the HR.")
@click.option("--min-inliers", type=click.IntRange(min=0), default=D.min_inliers, help="Gate: minimum inlier matches.")
@click.option("--max-residual", type=Finite(min=0), default=D.max_residual,
              help="Gate: maximum median residual misalignment (LR pixels) on the written pair.")
@click.option("--min-psnr", type=Finite(), default=D.min_psnr, help="Gate: minimum PSNR-Y (dB) of bicubic-downscaled HR vs LR.")
@click.option("--raw-linear", is_flag=True, help="Develop RAW files to linear RGB instead of sRGB gamma.")
@click.option("--raw-bits", type=click.Choice(["16", "8"]), default="16", help="Bit depth of developed RAW files.")
@click.option("--preview/--no-preview", default=True, help="Write previews/<name>.png for each pair.")
@workers_option
@shard_option
@overwrite_option
@click.pass_context
def align_cmd(ctx: click.Context, lr_source: Path, hr_source: Path | None, out: Path, scale: int, zoom, zoom_tolerance,
              lr_suffix, hr_suffix, model, robust, ratio, max_features, coarse_size, work_size, blur, crop, max_iters,
              tol, refine, field_degree, photometric, photometric_sigma, interpolation, min_inliers, max_residual, min_psnr,
              raw_linear, raw_bits, preview, workers, shard, overwrite) -> int:
    """Align LR/HR captures into pixel-aligned pairs with HR exactly SCALE times LR.

    LR_SOURCE and HR_SOURCE are two folders (files paired by stem), two files, or LR_SOURCE is a
    CSV file with columns lr,hr[,name]. LR = short focal length (wide view), HR = long focal
    length (the same scene zoomed). RAW files (DNG, NEF, CR2, ARW ...) are developed with rawpy.

    Writes OUT/HR/<name>.png, OUT/LR/<name>.png, OUT/previews/<name>.png and OUT/manifest.json
    (status, reason and figures of every pair). Re-running skips finished pairs.
    """
    try:
        params = AlignParams(
            scale=scale, zoom=zoom, zoom_tolerance=zoom_tolerance, model=model, method=robust, ratio=ratio,
            max_features=max_features, coarse_size=coarse_size, work_size=work_size, blur=blur, crop=crop,
            max_iters=max_iters, tol=tol, refine=refine, field_degree=field_degree, photometric=photometric,
            photometric_sigma=photometric_sigma, interpolation=interpolation, min_inliers=min_inliers,
            max_residual=max_residual, min_psnr=min_psnr,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    k, n = parse_shard(shard)
    pairs = discover_pairs(lr_source, hr_source, lr_suffix, hr_suffix)
    raw = RawOptions(linear=raw_linear, bits=int(raw_bits))
    manifest = align_dataset(pairs, out, params, raw, workers=workers, shard=(k, n), overwrite=overwrite,
                             preview=preview, progress=ctx.obj.get("progress", True))
    counts = manifest.counts()
    where = out / (MANIFEST_NAME if n == 1 or len(manifest.pairs) == len(pairs) else shard_manifest_name(k, n))
    click.echo(summary_line(counts, str(where)), err=True)
    return EXIT_ITEMS_FAILED if counts.get("failed") else EXIT_OK
