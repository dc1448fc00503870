"""``realsr train``, ``realsr eval``, ``realsr upscale``: SR networks, their training and their use.

- :mod:`realsr.train.metrics`: PSNR / SSIM with the SR benchmark protocol (NumPy and batched torch).
- :mod:`realsr.train.lpips`: LPIPS-Alex v0.1 from local weight files.
- :mod:`realsr.train.models`: the architecture registry (``build``, ``names``) and the networks.
- :mod:`realsr.train.weights`, :mod:`realsr.train.model_files`: safetensors model files and official
  checkpoints (``weights_only``, key maps).
- :mod:`realsr.train.infer`: tiled inference, self-ensemble, devices, precision, OOM back-off.
- :mod:`realsr.train.evaluate`, :mod:`realsr.train.compare`, :mod:`realsr.train.upscale`: the commands' work.

- :mod:`realsr.train.config`, :mod:`realsr.train.data`, :mod:`realsr.train.losses`,
  :mod:`realsr.train.vgg`, :mod:`realsr.train.checkpoint`, :mod:`realsr.train.trainer`: training
  (``Trainer(load_config(path), run_dir).run()``); :mod:`realsr.train.subimages`: pre-cropped pairs.
"""
