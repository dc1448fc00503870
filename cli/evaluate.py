"""``realsr eval``: score a model on LR/HR pairs (PSNR/SSIM on Y, LPIPS) next to bicubic."""

from __future__ import annotations

from pathlib import Path

import click

from realsr.errors import UsageError

from .common import inference_options, make_inference, overwrite_option, summary_line
from .main import EXIT_ITEMS_FAILED, EXIT_OK, cli


@cli.command("eval")
@click.argument("model")
@click.argument("lr_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("hr_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: eval.json, eval.csv, SR/, compare/.")
@inference_options
@click.option("--crop-border", type=click.IntRange(min=0), default=None,
              help="Pixels cropped from each side before scoring.", show_default="the scale")
@click.option("--rgb", is_flag=True, help="Score PSNR/SSIM on RGB instead of the Y channel.")
@click.option("--round-y", is_flag=True, help="Round Y to integers first (MATLAB on uint8 images).")
@click.option("--lpips-lin", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="LPIPS calibration weights (v0.1/alex.pth of the official repository).")
@click.option("--lpips-alex", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="torchvision AlexNet weights (e.g. alexnet-owt-7be5be79.pth); with --lpips-lin, adds LPIPS.")
@click.option("--no-sr", is_flag=True, help="Do not write the SR images.")
@click.option("--no-compare", is_flag=True, help="Do not write the comparison crops.")
@click.option("--compare-size", type=click.IntRange(min=8), default=160, show_default=True,
              help="Side of the comparison crops, HR pixels.")
@click.option("--branches", is_flag=True,
              help="Multi-branch models (D2C-SR): score each branch beside the fused output and write "
                   "branches/<name>.png (branch outputs and their fusion weight maps).")
@overwrite_option
@click.pass_context
def eval_command(ctx: click.Context, model: str, lr_dir: Path, hr_dir: Path | None, out: Path, arch, scale,
                 tile, overlap, batch, ensemble, device, precision, half, crop_border, rgb, round_y,
                 lpips_lin, lpips_alex, no_sr, no_compare, compare_size, branches, overwrite) -> int:
    """Super-resolve LR_DIR with MODEL and score it against HR_DIR (or a pair dataset folder LR_DIR
    with LR/ and HR/). MODEL: a .safetensors model file, an official .pth checkpoint (--arch if it is
    not recognised), or 'bicubic'. Images pair by name; every pair is also scored for bicubic."""
    from tqdm import tqdm

    from realsr.train.evaluate import EvalOptions, evaluate, file_digest, find_pairs
    from realsr.train.infer import resolve_device

    if (lpips_lin is None) != (lpips_alex is None):
        raise UsageError("LPIPS needs both --lpips-lin and --lpips-alex (nothing is downloaded)")
    if hr_dir is None and not ((lr_dir / "LR").is_dir() and (lr_dir / "HR").is_dir()):
        raise UsageError("give LR_DIR and HR_DIR, or a pair dataset folder with LR/ and HR/", lr_dir)
    from realsr.manifest import check_dataset_scale, dataset_scale

    recorded = dataset_scale(lr_dir) if hr_dir is None else None  # a pair dataset's own scale
    if model == "bicubic" and scale is None and recorded is not None:
        scale = recorded
    net, iopts = make_inference(model, arch, scale, tile, overlap, batch, ensemble, device, precision, half)
    if hr_dir is None:
        check_dataset_scale(lr_dir, net.scale, "the model")
    pairs = find_pairs(lr_dir, hr_dir)
    lp = None
    if lpips_lin is not None:
        from realsr.train.lpips import LPIPS

        lp = LPIPS(lpips_lin, lpips_alex).to(resolve_device(device))
    info = {"file": model, "arch": net.arch, "arch_args": net.arch_args}
    if Path(model).is_file():
        info["sha256"] = file_digest(model)
    opts = EvalOptions(infer=iopts, crop_border=crop_border, y_channel=not rgb, round_y=round_y,
                       save_sr=not no_sr, compare=not no_compare, compare_size=compare_size, branches=branches)
    if branches and not getattr(net, "branch_names", None):
        raise UsageError(f"--branches: architecture {net.arch!r} has a single output")
    bar = tqdm(total=len(pairs), desc="eval", unit="image", leave=False, disable=not ctx.obj.get("progress", True))

    def tick(pair) -> None:
        bar.update(1)

    try:
        report = evaluate(net, pairs, out, opts, lp, info, overwrite, progress=tick)
    finally:
        bar.close()
    m, b = report["mean"], report["baseline"]["mean"]

    def fmt(d: dict) -> str:
        return " ".join(f"{k} {v:.4f}" for k, v in d.items() if isinstance(v, float))

    if report["images"]:
        click.echo(f"realsr: {net.arch} x{net.scale}: {fmt(m)} | bicubic: {fmt(b)}", err=True)
    else:
        click.echo(f"realsr: no pair could be scored (reasons in {out / 'eval.json'})", err=True)
    for name, sc in (m.get("branches") or {}).items():
        click.echo(f"realsr:   branch {name}: {fmt(sc)}", err=True)
    click.echo(summary_line(report["counts"], str(out)), err=True)
    return EXIT_ITEMS_FAILED if report["failed"] else EXIT_OK
