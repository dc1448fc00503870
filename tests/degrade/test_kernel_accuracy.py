"""KernelGAN against known kernels (real photos from ../shared/data; about 3.1 minutes on 2 cores).

Each of the 12 USRNet kernels, and 8 random anisotropic Gaussians drawn as DIV2KRK's (KernelGAN's own
benchmark), blurs a different real photo (City100 long-focal captures), which is then subsampled by 2;
KernelGAN (official defaults, 3000 iterations, batched) estimates the kernel from that LR alone. The
FKP sample (true x4 kernel and its LR) runs with them.
"""

import glob

import numpy as np
import pytest
import scipy.io as sio

from realsr.degrade.estimate import estimate_kernels
from realsr.degrade.kernelgan import KernelGANParams
from realsr.degrade.kernels import (
    analytic_x4, bicubic_kernel, blindsr_kernel, kernel_distance, kernel_shape, on_canvas, shift_to_convention,
)
from realsr.degrade.operators import blur_downsample
from realsr.images import read_image
from realsr.resize import imresize


def _psnr(a, b):
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


def _u8(x):
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


#: DIV2KRK-style kernels in the batch (photos 12-19; about 10 s each on the 2-core VM)
N_BLINDSR = 8


@pytest.fixture(scope="module")
def run(shared):
    kernels = [k.astype(np.float64) for k in sio.loadmat(shared("kernels", "kernels_12.mat"))["kernels"][0]]
    photos = sorted(glob.glob(str(shared("city100") / "*" / "*H.png")))
    truths = [shift_to_convention(k, 2) for k in kernels]  # USRNet kernels are centred on a pixel
    rng = np.random.default_rng(2019)
    blindsr = [blindsr_kernel(rng, 2) for _ in range(N_BLINDSR)]
    lrs = [_u8(blur_downsample(read_image(photos[i]) / 255.0, k, 2)) for i, k in enumerate(truths + blindsr)]
    fkp = shared("kernels", "fkp_sample")
    fkp_lr = read_image(next(fkp.glob("*lr_x4*.png")))
    # no edge shave (KernelGAN's --real setting): the FKP LR is only 80 px wide. Keys: the USRNet and FKP
    # images keep the seeds they had in a 13-image batch (an image's result depends on its key only)
    keys = list(range(12)) + list(range(100, 100 + N_BLINDSR)) + [12]
    # two processes of one thread each (the CPU default of build-pool): the same kernels as one batch,
    # about 15 % sooner
    ests = estimate_kernels(lrs + [fkp_lr], scale=2, params=KernelGANParams(edge_shave=0), seed=0,
                            batch=len(lrs) + 1, retries=0, keys=keys, workers=2)
    return {"truths": truths, "ests": ests[:12], "blindsr": blindsr, "blindsr_ests": ests[12:-1], "fkp": ests[-1],
            "fkp_dir": fkp, "held": shared("sr_benchmarks", "Set14", "x2", "HR", "lenna.png")}


def _closer_than_bicubic(truths, ests) -> int:
    bic = bicubic_kernel(2)
    closer = 0
    for i, (k_true, est) in enumerate(zip(truths, ests)):
        d_bic = kernel_distance(bic, k_true)
        if est.reason:  # a rejected estimate counts as a miss
            print(f"kernel {i}: rejected ({est.reason}); bicubic distance {d_bic:.4f}")
            continue
        d_est = kernel_distance(est.kernel_x2, k_true)
        print(f"kernel {i}: distance estimated {d_est:.4f} bicubic {d_bic:.4f}; {est.figures}")
        closer += d_est < d_bic
    return closer


def test_estimates_are_closer_to_the_truth_than_bicubic_for_most_kernels(run):
    # measured: 11 of 12 USRNet kernels (the sharpest, sigma 0.7, is closer to bicubic); 10 of 12 with
    # other rounding. DIV2KRK-style: see docs/pool.md
    assert _closer_than_bicubic(run["truths"], run["ests"]) >= 8
    assert _closer_than_bicubic(run["blindsr"], run["blindsr_ests"]) >= 6


def _redegrade(held, truths, ests) -> dict[str, float]:
    """Mean fidelity PSNR(LR_k, LR_true) and strength gap |PSNR(LR_k, clean) - PSNR(LR_true, clean)|
    (clean = MATLAB bicubic LR) over the usable estimates, for the estimates and the bicubic kernel."""
    hr = read_image(held) / 255.0
    clean = imresize(hr, 0.5, float_result=True)
    lr_bic = blur_downsample(hr, on_canvas(bicubic_kernel(2), 15), 2)
    gap_est, gap_bic, fid_est, fid_bic = [], [], [], []
    for i, (k_true, est) in enumerate(zip(truths, ests)):
        if est.reason is not None:
            continue
        lr_true, lr_est = blur_downsample(hr, k_true, 2), blur_downsample(hr, est.kernel_x2, 2)
        ref = _psnr(lr_true, clean)
        gap_est.append(abs(_psnr(lr_est, clean) - ref))
        gap_bic.append(abs(_psnr(lr_bic, clean) - ref))
        fid_est.append(_psnr(lr_est, lr_true))
        fid_bic.append(_psnr(lr_bic, lr_true))
        print(f"kernel {i}: PSNR vs true-kernel LR: estimated {fid_est[-1]:.2f} bicubic {fid_bic[-1]:.2f} dB; "
              f"strength gap estimated {gap_est[-1]:.2f} bicubic {gap_bic[-1]:.2f} dB")
    out = {"usable": len(fid_est), "fid_est": float(np.mean(fid_est)), "fid_bic": float(np.mean(fid_bic)),
           "gap_est": float(np.mean(gap_est)), "gap_bic": float(np.mean(gap_bic))}
    print(f"mean: fidelity {out['fid_est']:.2f} vs {out['fid_bic']:.2f} dB, gap {out['gap_est']:.2f} vs "
          f"{out['gap_bic']:.2f} dB")
    return out


def test_redegrading_a_held_back_photo(run):
    """LR of a held-back HR made with the estimated kernel vs with the true kernel.

    Fidelity: PSNR(LR_est, LR_true) beats PSNR(LR_bicubic, LR_true) on average. Degradation
    strength: |PSNR(LR_k, clean) - PSNR(LR_true, clean)| (clean = MATLAB bicubic LR) is smaller for
    the estimated kernels than for the bicubic kernel, on average. docs/pool.md gives the figures.
    """
    usrnet = _redegrade(run["held"], run["truths"], run["ests"])
    assert usrnet["usable"] >= 10  # at most 2 rejections
    assert usrnet["fid_est"] > usrnet["fid_bic"] + 2.0
    assert usrnet["gap_est"] < usrnet["gap_bic"]
    # DIV2KRK-style Gaussians (the kernels KernelGAN was designed and benchmarked for)
    blindsr = _redegrade(run["held"], run["blindsr"], run["blindsr_ests"])
    assert blindsr["usable"] >= N_BLINDSR - 1
    assert blindsr["fid_est"] > blindsr["fid_bic"] + 3.0
    assert blindsr["gap_est"] < 0.5 * blindsr["gap_bic"]


def test_fkp_sample_end_to_end(run):
    """FKP's sample (an 80x120 LR made from its HR with a known anisotropic x4 kernel): re-degrading
    the HR with the x4 kernel derived from the estimate reproduces the LR better than bicubic does.
    (Measured: 23.2 dB vs bicubic 22.4, true kernel 28.8. The kernel's shape is poorly determined by
    so small an image, so it is printed, not asserted: see docs/pool.md.)"""
    d = run["fkp_dir"]
    k_true = sio.loadmat(next(d.glob("*gt_k_x4*.mat")))["Kernel"].astype(np.float64)
    est = run["fkp"]
    assert est.reason is None, est.reason
    k4 = analytic_x4(est.kernel_x2.astype(np.float64))
    s_est, s_true = kernel_shape(k4), kernel_shape(k_true)
    hr = read_image(next(d.glob("HR_*.png"))) / 255.0
    lr = read_image(next(d.glob("*lr_x4*.png"))) / 255.0

    def best(k):  # the sample's sampling phase differs from ours: take the best HR offset for both
        scores = []
        for dy in range(4):
            for dx in range(4):
                out = blur_downsample(hr[dy:, dx:], k, 4)[:lr.shape[0], :lr.shape[1]]
                if out.shape == lr.shape:
                    scores.append(_psnr(out, lr))
        return max(scores)

    b_est, b_bic = best(k4), best(on_canvas(bicubic_kernel(4), 29, 4))
    print(f"FKP: distance estimated {kernel_distance(k4, k_true, 4):.4f} bicubic "
          f"{kernel_distance(bicubic_kernel(4), k_true, 4):.4f}; PSNR vs LR estimated {b_est:.2f} bicubic {b_bic:.2f}; "
          f"sigma {s_est.sigma_major:.2f}/{s_est.sigma_minor:.2f} (true {s_true.sigma_major:.2f}/{s_true.sigma_minor:.2f})")
    assert b_est > b_bic + 0.3
