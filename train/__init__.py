"""``realsr train`` / ``realsr eval``: architectures, losses, trainer, metrics.

Available: :mod:`realsr.train.metrics` (PSNR / SSIM with the SR benchmark protocol, NumPy and batched
torch). The rest (models, losses, trainer, evaluation) is to come.
"""
