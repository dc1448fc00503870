"""``realsr upscale``: super-resolve images with a model (no HR needed)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import inference_options, make_inference, overwrite_option, summary_line
from .main import EXIT_ITEMS_FAILED, EXIT_OK, cli


@cli.command("upscale")
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder (<name>.png per input).")
@inference_options
@overwrite_option
@click.pass_context
def upscale_command(ctx: click.Context, model: str, inputs: tuple[Path, ...], out: Path, arch, scale, tile,
                    overlap, batch, ensemble, device, precision, half, overwrite) -> int:
    """Super-resolve INPUTS (images, folders, .txt lists) with MODEL (a .safetensors model file, an
    official .pth checkpoint, or 'bicubic'). 16-bit images stay 16-bit; alpha is kept (upscaled
    with bicubic). Finished outputs are skipped unless --overwrite; OUT/upscale.json records the model
    and settings, and a re-run with others (another model or scale) is refused unless --overwrite."""
    from tqdm import tqdm

    from realsr.degrade.build_pool import discover_sources
    from realsr.train.upscale import upscale_files

    net, iopts = make_inference(model, arch, scale, tile, overlap, batch, ensemble, device, precision, half)
    info = {"arch": net.arch, "arch_args": net.arch_args}
    if Path(model).is_file():
        from realsr.manifest import file_sha256

        info["sha256"] = file_sha256(model)
    sources = discover_sources(list(inputs))
    items = [(s.name, s.path) for s in sources if s.problem is None]
    for s in sources:
        if s.problem is not None:
            click.echo(f"realsr: warning: {s.problem} ({s.path})", err=True)
    bar = tqdm(total=len(items), desc="upscale", unit="image", leave=False, disable=not ctx.obj.get("progress", True))
    try:
        res = upscale_files(net, items, out, iopts, overwrite, progress=lambda _: bar.update(1), model_info=info)
    finally:
        bar.close()
    failed = len(res["failed"]) + sum(s.problem is not None for s in sources)
    counts = {"done": len(res["done"]), "skipped": len(res["skipped"]), "failed": failed}
    click.echo(summary_line(counts, str(out)), err=True)
    return EXIT_ITEMS_FAILED if failed else EXIT_OK
