"""``realsr train`` / ``realsr eval``: architectures, losses, trainer, metrics.

Available: :mod:`realsr.train.metrics` (PSNR / SSIM with the SR benchmark protocol, NumPy and batched
torch) and :mod:`realsr.train.lpips` (LPIPS-Alex v0.1 from local weight files). The rest (models,
losses, trainer, evaluation) is to come.
"""
