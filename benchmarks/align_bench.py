"""Benchmark of ``realsr align`` against a one-shot full-resolution SIFT + RANSAC baseline.

A 24-megapixel HR capture (6000x4000) with a 6-megapixel (x2) and a 1.5-megapixel (x4) LR capture
are simulated from a real photo (``../shared/data/real_lr/DualSR_0A5A4954.png``, or ``--scene``)
with the capture simulator: lens distortion, rotation, perspective, optical blur, exposure/colour
change and sensor noise, so the true HR->LR map is known.

The simulated captures are saved to a temporary folder; per scale, a fresh process (so the memory
the simulation used does not disturb the timings) loads them and runs, in that one process:

* ``realsr``: :func:`realsr.capture_align.align_pair` (estimation, output rendering, photometric
  correction and quality gates), arrays in memory;
* ``baseline``: SIFT on the full-resolution LR and HR (OpenCV defaults), FLANN ratio test 0.75,
  RANSAC homography (3 px), then the same output rendering with that homography;

both scored against the truth on the same LR crop (mean misalignment in LR pixels); seconds are
the median of 3 runs (realsr) and 2 runs (baseline), all runs listed. Then the
command itself (``realsr align`` on PNG files, one worker) runs in a subprocess for wall time and
peak resident memory. Prints one JSON object; ratios are baseline / realsr.

    python benchmarks/align_bench.py [--scene PHOTO] [--scales 2 4] [--no-cli]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from realsr.capture_align import AlignParams, Mapping, align_pair, render_hr
from realsr.capture_align.simulate import CaptureSpec, simulate_pair
from realsr.images import read_image, write_png

HERE = Path(__file__).resolve().parent
DEFAULT_SCENE = HERE.parent.parent / "shared" / "data" / "real_lr" / "DualSR_0A5A4954.png"
HR_SIZE = (4000, 6000)  # rows, cols: 24 MP
REPEAT_OURS, REPEAT_BASE = 3, 2  # timings are medians: this 2-core VM varies by +-30 % run to run


def baseline(lr: np.ndarray, hr: np.ndarray) -> np.ndarray:
    """One-shot full-resolution SIFT + FLANN ratio test + RANSAC: HR -> LR homography."""
    sift = cv2.SIFT_create()
    kl, dl = sift.detectAndCompute(cv2.cvtColor(lr, cv2.COLOR_RGB2GRAY), None)
    kh, dh = sift.detectAndCompute(cv2.cvtColor(hr, cv2.COLOR_RGB2GRAY), None)
    flann = cv2.FlannBasedMatcher({"algorithm": 1, "trees": 5}, {"checks": 50})
    good = [m for m, n in flann.knnMatch(dh, dl, k=2) if m.distance < 0.75 * n.distance]
    src = np.float32([kh[m.queryIdx].pt for m in good])
    dst = np.float32([kl[m.trainIdx].pt for m in good])
    h, _ = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    return h


def peak_rss_gb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would include the pre-exec parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 2**20, 3)
    return float("nan")  # pragma: no cover - not Linux


def cpu() -> tuple[float, float]:
    """User and system CPU seconds of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def measure(case_dir: Path, scale: int) -> dict:
    """Run in a fresh process: time realsr and the baseline on the saved captures."""
    import pickle

    lr, hr = np.load(case_dir / "lr.npy"), np.load(case_dir / "hr.npy")
    truth = pickle.loads((case_dir / "truth.pkl").read_bytes())
    warm = simulate_pair(hr[::8, ::8], CaptureSpec(lr_size=(200, 300), hr_size=(400, 600)), seed=0)
    align_pair(warm.lr, warm.hr, AlignParams(scale=2))  # first-call overheads out of the timing
    times_ours, times_base, cpu_ours, cpu_base = [], [], [], []
    for _ in range(REPEAT_OURS):
        c, t = cpu(), time.perf_counter()
        ours = align_pair(lr, hr, AlignParams(scale=scale))
        times_ours.append(time.perf_counter() - t)
        cpu_ours.append(np.subtract(cpu(), c))
    peak_ours = peak_rss_gb()
    for _ in range(REPEAT_BASE):
        c, t = cpu(), time.perf_counter()
        h_base = baseline(lr, hr)
        render_hr(hr, Mapping(h_base), ours.lr_box, scale)
        times_base.append(time.perf_counter() - t)
        cpu_base.append(np.subtract(cpu(), c))
    peak_base = peak_rss_gb()
    t_ours, t_base = float(np.median(times_ours)), float(np.median(times_base))
    u_ours, s_ours = np.median(cpu_ours, axis=0)
    u_base, s_base = np.median(cpu_base, axis=0)
    e_ours = truth.residual(ours.mapping, ours.lr_box)
    e_base = truth.residual(Mapping(h_base), ours.lr_box)
    return {
        "realsr": {"seconds": round(t_ours, 2), "runs": [round(t, 2) for t in times_ours], "status": ours.status,
                   "residual_mean_px": round(e_ours["mean"], 4), "residual_p95_px": round(e_ours["p95"], 4),
                   "measured_residual_px": round(ours.residual.median, 4),
                   "user_s": round(float(u_ours), 2), "sys_s": round(float(s_ours), 2),
                   "process_peak_gb": peak_ours},
        "baseline": {"seconds": round(t_base, 2), "runs": [round(t, 2) for t in times_base],
                     "residual_mean_px": round(e_base["mean"], 4),
                     "residual_p95_px": round(e_base["p95"], 4),
                     "user_s": round(float(u_base), 2), "sys_s": round(float(s_base), 2),
                     "process_peak_gb": peak_base},
        "speedup": round(t_base / t_ours, 2),
        "accuracy_ratio": round(e_base["mean"] / max(e_ours["mean"], 1e-9), 1),
    }


def run_cli(case_dir: Path, scale: int) -> dict:
    """``realsr align`` on PNG files in a subprocess: wall time and peak memory of that process."""
    out = case_dir / "out"
    code = (
        "import json, sys, time; from realsr.cli.main import main; "
        "from benchmarks.align_bench import peak_rss_gb; t = time.perf_counter(); "
        f"rc = main(['-q', 'align', '{case_dir / 'LR'}', '{case_dir / 'HR'}', '-o', '{out}', '--scale', '{scale}', "
        "'--workers', '1']); print(json.dumps([time.perf_counter() - t, peak_rss_gb(), rc]))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=HERE.parent)
    seconds, peak, rc = json.loads(res.stdout.strip().splitlines()[-1])
    manifest = json.loads((out / "manifest.json").read_text())
    return {"seconds": round(seconds, 2), "peak_rss_gb": peak, "exit_code": rc,
            "status": manifest["pairs"][0]["status"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scene", type=Path, default=DEFAULT_SCENE)
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--no-cli", action="store_true", help="skip the subprocess run of the command")
    ap.add_argument("--measure", nargs=2, metavar=("DIR", "SCALE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:  # child process
        print(json.dumps(measure(Path(args.measure[0]), int(args.measure[1]))))
        return
    if not args.scene.exists():
        sys.exit(f"scene photo not found: {args.scene} (give --scene)")
    import pickle

    scene = read_image(args.scene)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "scene": args.scene.name,
        "hr_size": [HR_SIZE[1], HR_SIZE[0]],
        "cases": [],
    }
    with tempfile.TemporaryDirectory() as tmp_s:
        for scale in args.scales:
            case_dir = Path(tmp_s) / f"x{scale}"
            case_dir.mkdir()
            lr_size = (HR_SIZE[0] // scale, HR_SIZE[1] // scale)
            spec = CaptureSpec(lr_size=lr_size, zoom=float(scale), hr_size=HR_SIZE, distortion=-0.01,
                               rotation_deg=0.8, perspective=0.02, offset=(9.0, -6.0))
            pair = simulate_pair(scene, spec, seed=scale)
            np.save(case_dir / "lr.npy", pair.lr)
            np.save(case_dir / "hr.npy", pair.hr)
            (case_dir / "truth.pkl").write_bytes(pickle.dumps(pair.truth))
            write_png(case_dir / "LR" / "bench.png", pair.lr)
            write_png(case_dir / "HR" / "bench.png", pair.hr)
            del pair
            res = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure", str(case_dir), str(scale)],
                                 capture_output=True, text=True, check=True, cwd=HERE.parent)
            case = {"scale": scale, "lr_size": [lr_size[1], lr_size[0]], **json.loads(res.stdout.strip().splitlines()[-1])}
            if not args.no_cli:
                case["cli"] = run_cli(case_dir, scale)
            report["cases"].append(case)
            print(json.dumps(case), file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
