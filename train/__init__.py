"""``realsr eval`` / ``realsr upscale`` (and, to come, ``realsr train``): SR networks and their use.

- :mod:`realsr.train.metrics`: PSNR / SSIM with the SR benchmark protocol (NumPy and batched torch).
- :mod:`realsr.train.lpips`: LPIPS-Alex v0.1 from local weight files.
- :mod:`realsr.train.models`: the architecture registry (``build``, ``names``) and the networks.
- :mod:`realsr.train.weights`, :mod:`realsr.train.model_files`: safetensors model files and official
  checkpoints (``weights_only``, key maps).
- :mod:`realsr.train.infer`: tiled inference, self-ensemble, devices, precision, OOM back-off.
- :mod:`realsr.train.evaluate`, :mod:`realsr.train.compare`, :mod:`realsr.train.upscale`: the commands' work.

Losses, datasets and the trainer are to come.
"""
