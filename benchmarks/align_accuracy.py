"""Accuracy of ``realsr align`` per refinement mode, for docs/align.md. Prints JSON.

* ``simulated``: capture pairs rendered by the simulator (LR radial distortion k1 = -0.02,
  rotation, tilt, offset, blur, exposure/colour change, noise) from the built-in procedural scenes
  and from real photos in ``../shared/data`` (City100 ``H`` images, ``real_lr``); error = mean
  distance between where the written HR's content truly lies in the LR and where it was put (LR px).
* ``city100``: LR = City100 ``L`` downscaled by the scale, HR = ``H`` warped by a known homography;
  City100's own L/H registration is off by 0.1-4 px, so the error is measured on the written pair
  (median tile shift, the manifest's ``residual_px``).

    python benchmarks/align_accuracy.py [--modes field ecc none] [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from realsr.capture_align import AlignParams, AlignmentFailed, align_pair
from realsr.capture_align.simulate import CaptureSpec, centred_homography, pair_from_registered, simulate_pair
from realsr.images import read_image
from realsr.synthetic import synthetic_scene

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
LR_SIZE = {2: (480, 640), 4: (600, 800)}


def spec(scale: int, i: int) -> CaptureSpec:
    return CaptureSpec(lr_size=LR_SIZE[scale], zoom=float(scale), rotation_deg=1.2 * (-1) ** i,
                       perspective=0.01 * (i % 3), perspective_angle_deg=40.0 * i,
                       offset=(4.0 * i - 6, 3.0 - 2.0 * i), distortion=-0.02)


def known_warp(i: int, shape: tuple[int, int]) -> np.ndarray:
    """The known homography applied to the i-th City100 HR capture."""
    return centred_homography(shape, 0.7 * (-1) ** i, 1.0 + 0.01 * i, (3.3 * i, -2.1 * i), (1e-6 * i, -2e-6 * i))


def summary(errs: list[float], failed: int, seconds: list[float]) -> dict:
    e = np.array(errs)
    return {"pairs": len(errs) + failed, "failed_or_rejected": failed,
            "median_px": round(float(np.median(e)), 4) if len(e) else None,
            "worst_px": round(float(e.max()), 4) if len(e) else None,
            "mean_seconds": round(float(np.mean(seconds)), 3) if seconds else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", nargs="+", default=["field", "ecc", "none"])
    ap.add_argument("--quick", action="store_true", help="fewer pairs")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="override AlignParams fields, e.g. --set work_size=768 max_iters=2")
    args = ap.parse_args()
    n = 3 if args.quick else 8
    extra = {k: type(getattr(AlignParams(), k))(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    scenes = [("procedural", synthetic_scene(768, 1024, seed=s)) for s in range(1, n + 1)]
    if SHARED.exists():
        scenes += [("photo", read_image(f)) for f in sorted((SHARED / "city100" / "NikonD5500").glob("*H.png"))[:n]]
        scenes += [("photo", read_image(f)) for f in sorted((SHARED / "real_lr").glob("*.png"))]
    report: dict = {"simulated": {}, "city100": {}}
    for mode in args.modes:
        for scale in (2, 4):
            for source in ("procedural", "photo"):
                errs, secs, bad = [], [], 0
                for i, (_, sc) in enumerate(s for s in scenes if s[0] == source):
                    pair = simulate_pair(sc, spec(scale, i), seed=i)
                    t = time.perf_counter()
                    try:
                        r = align_pair(pair.lr, pair.hr, AlignParams(scale=scale, refine=mode, **extra))
                    except AlignmentFailed:
                        bad += 1
                        continue
                    secs.append(time.perf_counter() - t)
                    if r.status != "ok":
                        bad += 1
                        continue
                    errs.append(pair.truth.residual(r.mapping, r.lr_box)["mean"])
                if errs or bad:
                    report["simulated"][f"{mode}/x{scale}/{source}"] = summary(errs, bad, secs)
        if not SHARED.exists():
            continue
        for camera in ("NikonD5500", "iPhoneX"):
            files = sorted((SHARED / "city100" / camera).glob("*H.png"))[: (4 if args.quick else None)]
            for scale in (2, 4):
                errs, secs, bad = [], [], 0
                for i, f in enumerate(files):
                    hr = read_image(f)
                    pair = pair_from_registered(hr, read_image(f.with_name(f.name.replace("H.png", "L.png"))), scale,
                                                known_warp(i, hr.shape[:2]))
                    t = time.perf_counter()
                    r = align_pair(pair.lr, pair.hr, AlignParams(scale=scale, refine=mode, **extra))
                    secs.append(time.perf_counter() - t)
                    if r.status != "ok":
                        bad += 1
                        continue
                    errs.append(r.residual.median)
                report["city100"][f"{mode}/x{scale}/{camera}"] = summary(errs, bad, secs)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
