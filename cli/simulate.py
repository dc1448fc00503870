"""``realsr simulate``: render LR/HR capture pairs with known geometry (capture simulator)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from realsr.capture_align.simulate import MIN_SCENE, CaptureSpec, write_simulated_dataset
from realsr.errors import UsageError
from realsr.images import IMAGE_EXTENSIONS, folder_images, read_image
from realsr.synthetic import synthetic_scene

from .common import Finite
from .main import cli

D = CaptureSpec()
#: largest capture side in pixels (a 67-MP capture; an estimate of its rendering, not measured: a few GB)
MAX_SIDE = 8192


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"size must look like WIDTHxHEIGHT, got {text!r}") from None
    if w < 32 or h < 32:
        raise UsageError(f"size must be at least 32x32, got {text!r}")
    if w > MAX_SIDE or h > MAX_SIDE:  # the render holds several float64 sampling grids per output pixel
        raise UsageError(f"size must be at most {MAX_SIDE}x{MAX_SIDE}, got {text!r}")
    return h, w


@cli.command("simulate")
@click.argument("photos", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: LR/, HR/, truth.json.")
@click.option("--zoom", type=Finite(min=1.0), default=2.0, help="Focal-length ratio HR/LR (e.g. 2, 2.9, 4).")
@click.option("--lr-size", default="640x480", help="LR capture size WIDTHxHEIGHT (the HR capture has the same size).")
@click.option("--count", type=click.IntRange(min=1), default=4,
              help="Number of pairs from the built-in procedural scene when no PHOTOS are given.")
@click.option("--distortion", type=Finite(), default=-0.01, help="LR radial distortion k1 (negative = barrel).")
@click.option("--blur", type=Finite(min=0), default=D.lr_blur, help="LR optical blur sigma (LR pixels).")
@click.option("--noise", type=Finite(min=0), default=D.lr_noise,
              help="LR noise std at mid-grey (fraction of full scale).")
@click.option("--jpeg", type=click.IntRange(1, 100), default=None, help="JPEG-compress the LR captures at this quality.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", help="Bit depth of the captures.")
@click.option("--seed", type=click.IntRange(min=0), default=0, help="Seed of the per-pair variations and noise.")
@click.option("--overwrite", is_flag=True, help="Replace the captures of an earlier simulation in OUT.")
def simulate_cmd(photos: tuple[Path, ...], out: Path, zoom: float, lr_size: str, count: int, distortion: float,
                 blur: float, noise: float, jpeg: int | None, bits: str, seed: int, overwrite: bool) -> None:
    """Render realistic LR/HR capture pairs with a known ground-truth geometry.

    Each PHOTO (or, with none, a built-in procedural scene) is the scene two cameras look at: a wide
    LR capture with lens distortion, blur, exposure/colour change and noise, and an HR capture
    ZOOM times closer with a small rotation, tilt and offset. Writes OUT/LR/<name>.png,
    OUT/HR/<name>.png and OUT/truth.json, ready for `realsr align OUT/LR OUT/HR -o ALIGNED`. An OUT
    that already holds captures is refused unless --overwrite.
    """
    files: list[Path] = []
    for p in photos:
        files += folder_images(p) if p.is_dir() else [p]
    if photos and not files:
        raise UsageError("no photos found", ", ".join(map(str, photos)))
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen:
            raise UsageError(f"two photos are called '{f.stem}' ({seen[f.stem]} and {f}); rename one of them")
        seen[f.stem] = f
    h, w = _size(lr_size)
    spec = CaptureSpec(lr_size=(h, w), zoom=zoom, distortion=distortion, lr_blur=blur, lr_noise=noise,
                       jpeg_quality=jpeg, bits=int(bits))
    _clear_output(out, overwrite)
    # scenes are rendered (or read) one at a time, as they are written
    scenes = ((f.stem, _scene(f)) for f in files) if files else (
        (f"scene{i:03d}", synthetic_scene(int(h * 1.6), int(w * 1.6), seed=seed * 100 + i)) for i in range(count))
    truths = write_simulated_dataset(out, scenes, spec, seed=seed)
    click.echo(f"realsr: {len(truths)} capture pairs -> {out}", err=True)


def _scene(path: Path) -> np.ndarray:
    """The photo at ``path``, refused (naming it) when too small to render captures from."""
    img = read_image(path)
    if min(img.shape[:2]) < MIN_SCENE:
        raise UsageError(f"photo {img.shape[1]}x{img.shape[0]} px is too small to simulate captures from "
                         f"(at least {MIN_SCENE} px per side)", path)
    return img


def _clear_output(out: Path, overwrite: bool) -> None:
    """Refuse an OUT that already holds captures (LR/, HR/ or truth.json: a new simulation would mix
    with them); with ``overwrite`` delete the image files of LR/ and HR/ and truth.json first."""
    held = [p for p in (out / "LR", out / "HR") if p.is_dir() and any(p.iterdir())]
    held += [out / "truth.json"] if (out / "truth.json").exists() else []
    if not held:
        return
    if not overwrite:
        if not (out / "truth.json").exists():  # truth.json is written last
            raise UsageError("output folder holds the captures of an unfinished simulation (no truth.json); "
                             "start again with --overwrite, or use another -o", out)
        raise UsageError("output folder already holds captures (" + ", ".join(p.name for p in held)
                         + "); use --overwrite or another -o", out)
    for d in (out / "LR", out / "HR"):
        for f in d.glob("*") if d.is_dir() else []:
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                f.unlink()
    (out / "truth.json").unlink(missing_ok=True)
