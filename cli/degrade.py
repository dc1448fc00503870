"""``realsr degrade``: clean HR images -> realistic LR/HR pairs (pool, classic, bicubic, highorder, dsgan, network)."""

from __future__ import annotations

from pathlib import Path

import click

from realsr.degrade.build_pool import discover_sources
from realsr.degrade.degrade_dataset import DegradeSettings, degrade_dataset
from realsr.degrade.degrade_pair import CLEANUPS
from realsr.degrade.recipes import MODES, NOISE_CHOICES, ClassicParams, HighOrderParams, ModeParams
from realsr.errors import UsageError
from realsr.manifest import MANIFEST_NAME, shard_manifest_name
from realsr.parallel import parse_shard, select_shard
from realsr.raw import RawOptions
from realsr.resize import METHODS

from .common import Finite, overwrite_option, shard_option, summary_line, workers_option
from .main import EXIT_ITEMS_FAILED, EXIT_OK, cli

C = ClassicParams()


def _names(value: str, allowed: tuple[str, ...] | list[str], what: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise click.BadParameter(f"{what} must be a comma-separated list of {', '.join(allowed)}; got {value!r}")
    return items


#: the command's option for each ClassicParams field
_CLASSIC_OPTIONS = {"sigma": "--blur-sigma", "kernel_size": "--kernel-size", "methods": "--resize-methods",
                    "noise": "--noise", "gaussian_sigma": "--noise-sigma", "poisson_peak": "--poisson-peak",
                    "jpeg_prob": "--jpeg-prob", "jpeg_quality": "--jpeg-quality"}


def _load_highorder(path: Path | None) -> HighOrderParams:
    if path is None:
        return HighOrderParams()
    import yaml

    try:
        obj = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read --highorder-config: {e}", path) from None
    except yaml.YAMLError as e:
        raise UsageError(f"bad --highorder-config: not valid YAML ({str(e).splitlines()[0]})", path) from None
    try:
        return HighOrderParams.from_overrides(obj)
    except (ValueError, TypeError) as e:
        raise UsageError(f"bad --highorder-config: {e}", path) from None


@cli.command("degrade")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Pair dataset folder (HR/, LR/, manifest.json).")
@click.option("--scale", type=click.IntRange(1, 16), default=4, show_default=True, help="SR scale: HR = scale x LR.")
@click.option("--mode", type=click.Choice(MODES), default="pool", show_default=True,
              help="pool: kernels + real noise from --pool (Impressionism); classic: random blur/resize/noise/JPEG "
                   "(Samsung NTIRE 2020); bicubic: MATLAB imresize; highorder: Real-ESRGAN second-order; "
                   "dsgan: the DSGAN generator (--weights) on the bicubic LR, as SRResCGAN's training data; "
                   "network: a DDNSR degradation network (--weights RUN/degradation.safetensors) with real LR "
                   "patches from --source.")
@click.option("--pool", "pool", type=click.Path(exists=True, path_type=Path), default=None,
              help="Pool folder made by realsr build-pool (for --mode pool).")
@click.option("--pool-noise/--no-pool-noise", default=True, help="Add the pool's real noise (--mode pool).")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="dsgan: the generator's weights (a PyTorch state dict such as SRResCGAN's "
                   "pretrained_nets/DSGAN/300_G.pth; read without unpickling code); network: a DDNSR "
                   "degradation network file (RUN/degradation.safetensors of a method: ddnsr run).")
@click.option("--source", "source", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="network: folder of real LR photos; each pair draws one (and a crop of LR size) from its seed.")
@click.option("--device", default="auto", show_default=True,
              help="dsgan/network: where the network runs: auto (cuda if available), cpu, cuda or cuda:N.")
@click.option("--tile", type=click.IntRange(min=0), default=512, show_default=True,
              help="dsgan/network: LR tile side in pixels (0: the whole image at once); tiles overlap by the "
                   "network's receptive radius, so they change nothing beyond float rounding.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Random seed (same seed, same files).")
@click.option("--cleanup", type=click.Choice(CLEANUPS), default="off", show_default=True,
              help="Real-SR's source clean-up (MATLAB bicubic x1/2) before degrading: 'replace' the HR by it, "
                   "or 'add' it as an extra pair <name>_clean.")
@click.option("--blur-sigma", nargs=2, type=Finite(), default=C.sigma, show_default=True,
              help="classic: Gaussian blur std range (HR px).")
@click.option("--kernel-size", type=click.IntRange(min=1), default=C.kernel_size, show_default=True,
              help="classic: Gaussian kernel support (odd).")
@click.option("--resize-methods", default=",".join(C.methods), show_default=True,
              help=f"classic: downscaling kernels drawn from ({', '.join(METHODS)}).")
@click.option("--antialias/--no-antialias", default=C.antialias, show_default=True,
              help="classic: widen the downscaling kernel (MATLAB antialiasing).")
@click.option("--noise", "noise_kinds", default=",".join(C.noise), show_default=True,
              help=f"classic: noise kinds drawn from ({', '.join(NOISE_CHOICES)}).")
@click.option("--noise-sigma", nargs=2, type=Finite(), default=C.gaussian_sigma, show_default=True,
              help="classic: Gaussian noise std range (0-255).")
@click.option("--poisson-peak", nargs=2, type=Finite(), default=C.poisson_peak, show_default=True,
              help="classic: Poisson photon-count scale range (y = Poisson(peak x) / peak).")
@click.option("--jpeg-prob", type=Finite(0, 1), default=C.jpeg_prob, show_default=True,
              help="classic: probability of a JPEG step.")
@click.option("--jpeg-quality", nargs=2, type=int, default=C.jpeg_quality, show_default=True,
              help="classic: JPEG quality range.")
@click.option("--highorder-config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="highorder: YAML overriding Real-ESRGAN's defaults (keys of HighOrderParams: first/second stage "
                   "ranges, second_stage_prob, final_sinc_prob, methods).")
@click.option("--reference", type=click.Path(exists=True, path_type=Path), default=None,
              help="Real LR photos: write realism.json/realism.png comparing the synthetic LR with them.")
@click.option("--raw-linear", is_flag=True, help="Develop RAW files to linear RGB instead of sRGB gamma.")
@workers_option
@shard_option
@overwrite_option
@click.pass_context
def degrade_cmd(ctx: click.Context, sources, out, scale, mode, pool, pool_noise, weights, source, device, tile, seed, cleanup,
                blur_sigma, kernel_size, resize_methods, antialias, noise_kinds, noise_sigma, poisson_peak, jpeg_prob,
                jpeg_quality, highorder_config, reference, raw_linear, workers, shard, overwrite) -> int:
    """Make LR/HR training pairs from clean HR images.

    SOURCES: folders of HR photos, photo files or .txt lists of paths. Writes OUT/HR/*.png (mod-cropped
    to a multiple of the scale), OUT/LR/*.png and OUT/manifest.json, whose per-pair steps regenerate
    every pair exactly. Re-running resumes; --shard K/N splits the images over N jobs.
    """
    if highorder_config is not None and mode != "highorder":
        raise UsageError(f"--highorder-config is only used by --mode highorder, not --mode {mode}")
    try:
        classic = ClassicParams(sigma=tuple(blur_sigma), kernel_size=kernel_size,
                                methods=_names(resize_methods, list(METHODS), "--resize-methods"),
                                antialias=antialias, noise=_names(noise_kinds, NOISE_CHOICES, "--noise"),
                                gaussian_sigma=tuple(noise_sigma), poisson_peak=tuple(poisson_peak),
                                jpeg_prob=jpeg_prob, jpeg_quality=tuple(jpeg_quality))
    except ValueError as e:  # named by the option, not by ClassicParams' field
        field, _, rest = str(e).partition(" ")
        raise UsageError(f"{_CLASSIC_OPTIONS.get(field, field)} {rest}") from None
    try:
        params = ModeParams(
            classic=classic,
            highorder=_load_highorder(highorder_config) if mode == "highorder" else HighOrderParams(),
            pool_noise=pool_noise)
        settings = DegradeSettings(mode=mode, scale=scale, seed=seed, params=params, cleanup=cleanup,
                                   pool=str(pool) if pool else None, weights=str(weights) if weights else None,
                                   source=str(source) if source else None)
    except ValueError as e:
        raise UsageError(str(e)) from None
    k, n = parse_shard(shard)
    if reference is not None:  # a bad reference stops the run now, not after every pair is made
        from realsr.degrade.realism import check_reference

        check_reference(reference, out)
    found = discover_sources(list(sources))
    manifest = degrade_dataset(found, out, settings, RawOptions(linear=raw_linear), workers=workers, shard=(k, n),
                               overwrite=overwrite, progress=ctx.obj.get("progress", True), device=device, tile=tile)
    where = out / (MANIFEST_NAME if n == 1 or len(manifest.pairs) > len(select_shard(found, k, n))
                   else shard_manifest_name(k, n))
    if reference is not None:
        from realsr.degrade.realism import write_realism_report

        ok = [out / "LR" / f"{name}.png" for name, e in sorted(manifest.pairs.items()) if e["status"] == "ok"]
        if not ok:
            raise UsageError("no pair was made, so there is nothing to compare with the reference", out)
        report = write_realism_report(ok, reference, out)
        for line in report.get("summary", []):
            click.echo(f"realsr: realism: {line}", err=True)
    counts = manifest.counts()
    click.echo(summary_line(counts, str(where)), err=True)
    return EXIT_ITEMS_FAILED if counts.get("failed") else EXIT_OK
