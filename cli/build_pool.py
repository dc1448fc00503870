"""``realsr build-pool``: real LR photos -> blur-kernel + noise-patch pool (the "Impressionism" recipe)."""

from __future__ import annotations

from pathlib import Path

import click

from realsr.degrade.build_pool import PoolSettings, build_pool, discover_sources
from realsr.degrade.kernelgan_params import BICUBIC_LOSSES, D_INITS, KernelGANParams
from realsr.degrade.noise import NoiseParams
from realsr.errors import UsageError
from realsr.manifest import counted
from realsr.parallel import parse_shard
from realsr.raw import RawOptions

from .common import Finite, overwrite_option, shard_option, summary_line
from .main import EXIT_ITEMS_FAILED, EXIT_OK, cli

K = KernelGANParams()
N = NoiseParams()


@cli.command("build-pool")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Pool folder (pool.json, kernels/, noise/, preview.png).")
@click.option("--scale", type=click.Choice(["2", "4"]), default="4", show_default=True,
              help="SR scale the kernels are for: x2 as estimated, x4 derived analytically from it.")
@click.option("--kernels/--no-kernels", default=True, help="Estimate blur kernels with KernelGAN.")
@click.option("--noise/--no-noise", "collect", default=True, help="Collect real-noise patches.")
@click.option("--iterations", type=click.IntRange(min=1), default=K.iterations, show_default=True,
              help="KernelGAN iterations per image.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images whose KernelGANs train together in one process.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, mps ...")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same pool).")
@click.option("--runs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Independent KernelGAN runs per image; the one closest to the others is kept (self-check).")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True,
              help="Re-runs, with fresh seeds, of an image whose kernel is degenerate.")
@click.option("--bicubic-loss", type=click.Choice(BICUBIC_LOSSES), default=K.bicubic_loss, show_default=True,
              help="'mixed': the official loss (targets sum the colour channels); 'per-channel': each channel from itself.")
@click.option("--d-init", type=click.Choice(D_INITS), default=K.d_init, show_default=True,
              help="'official': D keeps PyTorch's default init as the official code does in effect; 'xavier': as it intends.")
@click.option("--lambda-bicubic", type=Finite(min=0), default=K.lambda_bicubic, show_default=True,
              help="Initial weight of the bicubic-similarity loss (Tencent/Real-SR's copy used 20).")
@click.option("--g-structure", default=",".join(map(str, K.g_structure)), show_default=True,
              help="G's layer sizes; the kernel is their sum minus (layers - 1) px wide (official 13). "
                   "11,7,3,1,1,1 gives 19x19, which fits wider blur (docs/pool.md).")
@click.option("--n-filtering", type=click.IntRange(min=1), default=K.n_filtering, show_default=True,
              help="Post-processing: 0.75 x the (n+1)-th largest weight is subtracted and what falls below 0 "
                   "cut (official 40). It narrows wide kernels; 80 keeps more of them (docs/pool.md).")
@click.option("--edge-shave", type=click.IntRange(min=0), default=K.edge_shave, show_default=True,
              help="Pixels cut from each side before estimation (official: 10 unless --real).")
@click.option("--noise-patch", type=click.IntRange(min=2), default=N.patch, show_default=True, help="Noise patch size (px).")
@click.option("--noise-stride", type=click.IntRange(min=1), default=N.stride, show_default=True, help="Noise grid stride (px).")
@click.option("--noise-max-var", type=Finite(min=0), default=N.max_var, show_default=True,
              help="Keep patches whose gray variance (0-255 scale) is below this.")
@click.option("--noise-min-mean", type=Finite(), default=N.min_mean, show_default=True,
              help="...and whose gray mean is above this (Real-SR: 50 for real photos, 0 for DF2K).")
@click.option("--noise-local", type=click.IntRange(min=0), default=N.local, show_default=True,
              help="GCBD local check: sub-patch size (0 = off, as Real-SR).")
@click.option("--noise-max-per-image", type=click.IntRange(min=0), default=N.max_per_image, show_default=True,
              help="At most this many patches per image (0 = no cap).")
@click.option("--noise-include-last", is_flag=True, help="Also try the last grid position (the official loop skips it).")
@click.option("--raw-linear", is_flag=True, help="Develop RAW files to linear RGB instead of sRGB gamma.")
@click.option("--preview/--no-preview", default=True, help="Write preview.png.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes (default: 1 on CUDA, else all cores).", show_default="auto")
@shard_option
@overwrite_option
@click.pass_context
def build_pool_cmd(ctx: click.Context, sources, out, scale, kernels, collect, iterations, batch, device, seed, runs,
                   retries, bicubic_loss, d_init, lambda_bicubic, g_structure, n_filtering, edge_shave, noise_patch, noise_stride, noise_max_var,
                   noise_min_mean, noise_local, noise_max_per_image, noise_include_last, raw_linear, preview, workers,
                   shard, overwrite) -> int:
    """Estimate blur kernels (KernelGAN) and collect real-noise patches from real low-quality photos.

    SOURCES: folders of photos, photo files (PNG/JPEG/TIFF/RAW) or .txt lists of paths. Writes
    OUT/pool.json (per-source status and figures), OUT/kernels/*.npy, OUT/noise/*.png and
    OUT/preview.png. Re-running resumes; --shard K/N splits the sources over N jobs.
    """
    try:
        structure = tuple(int(v) for v in g_structure.replace(" ", "").split(","))
    except ValueError:
        raise UsageError(f"--g-structure: expected comma-separated layer sizes such as 7,5,3,1,1,1, got {g_structure!r}") from None
    try:
        settings = PoolSettings(
            scale=int(scale),
            kernelgan=KernelGANParams(iterations=iterations, bicubic_loss=bicubic_loss, d_init=d_init,
                                      lambda_bicubic=lambda_bicubic, g_structure=structure, edge_shave=edge_shave,
                                      n_filtering=n_filtering),
            noise=NoiseParams(patch=noise_patch, stride=noise_stride, max_var=noise_max_var, min_mean=noise_min_mean,
                              include_last=noise_include_last, local=noise_local, max_per_image=noise_max_per_image),
            kernels=kernels, collect=collect, runs=runs, retries=retries, seed=seed,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    k, n = parse_shard(shard)
    found = discover_sources(list(sources))
    try:
        pool = build_pool(found, out, settings, RawOptions(linear=raw_linear), device=device, batch=batch,
                          workers=workers, shard=(k, n), overwrite=overwrite, preview=preview,
                          progress=ctx.obj.get("progress", True))
    except RuntimeError as e:  # e.g. an unavailable CUDA device
        raise UsageError(str(e)) from None
    counts = pool.counts()
    where = pool.record
    click.echo(summary_line(counts, str(where)) + f" ({counted(len(pool.kernels), 'kernel')}, {counted(len(pool.noise), 'noise patch', 'noise patches')})",
               err=True)
    return EXIT_ITEMS_FAILED if counts.get("failed") else EXIT_OK
