"""The machine a benchmark ran on, for its JSON report (shared by the benchmark scripts)."""

from __future__ import annotations

import os
import platform


def machine(dev=None) -> dict:
    """CPU model, core count, Python and torch versions, torch threads and (``dev``, a
    ``torch.device``) the device name, CUDA version and TF32 settings."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    out = {"platform": platform.platform(), "python": platform.python_version(), "cpu": name,
           "cpu_count": os.cpu_count()}
    if dev is not None:
        import torch

        out.update({"torch": torch.__version__, "torch_threads": torch.get_num_threads(), "device": str(dev),
                    "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({name})"})
        if dev.type == "cuda":
            out["cuda"] = torch.version.cuda
            out["tf32"] = {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}
    return out
