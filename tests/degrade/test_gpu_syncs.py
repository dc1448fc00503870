"""The on-the-fly degradation path must not make the host wait for the GPU once per batch.

Two things stall a CUDA stream from Python: reading a value of a device tensor (``bool(t.any())``,
``.item()``, ``.tolist()``) and a blocking copy from pageable host memory (``torch.as_tensor(a,
device="cuda")`` waits for all queued GPU work first). Neither can be seen on a CPU, so these tests
run the batched degradations on PyTorch's ``meta`` device, which stands in for the GPU: a meta
tensor holds no values, so any read of one fails, and a dispatch mode records every copy from the
host to it and whether it was asynchronous (what :func:`realsr.devices.to_device` makes it).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from realsr.degrade import ops  # noqa: E402
from realsr.degrade.jpeg import jpeg_torch  # noqa: E402
from realsr.degrade.recipes import ClassicParams, HighOrderParams  # noqa: E402
from realsr.devices import device_constant, to_device  # noqa: E402

META = torch.device("meta")
_READS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default,
          torch.ops.aten.item.default, torch.ops.aten.equal.default}
_COPIES = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default}


class HostSyncs(TorchDispatchMode):
    """Records device reads (``reads``) and blocking host-to-meta copies (``blocking``)."""

    def __init__(self):
        super().__init__()
        self.reads, self.blocking, self.uploads = [], [], 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if func in _READS and any(t.device == META for t in tensors):
            self.reads.append(str(func))
            raise RuntimeError(f"{func} reads a device tensor")
        if func == torch.ops.aten._to_copy.default and tensors[0].device.type == "cpu" and kwargs.get("device") == META:
            self.uploads += 1
            if not kwargs.get("non_blocking", False):
                self.blocking.append(str(func))
        if func == torch.ops.aten.copy_.default and args[0].device == META and args[1].device.type == "cpu":
            self.uploads += 1
            if not (len(args) > 2 and args[2]):
                self.blocking.append(str(func))
        return func(*args, **kwargs)


def _check(call):
    with HostSyncs() as mode:
        out = call()
    assert not mode.reads and not mode.blocking, (mode.reads, mode.blocking)
    return out, mode.uploads


def test_batched_degradations_never_wait_for_the_device():
    """random_classic (every noise kind, JPEG), random_highorder, blur, resize and JPEG run with no
    device read and only asynchronous uploads; the lookup tables are uploaded once, not per batch."""
    x = torch.empty((4, 3, 64, 64), device=META)
    rng = np.random.default_rng(0)
    classic = ClassicParams(noise=("gaussian", "poisson", "both"), jpeg_prob=1.0)
    for _ in range(4):  # several draws: mixed methods, gray and colour noise, both noise kinds
        out, _ = _check(lambda: ops.random_classic(x, 4, classic, rng))
        assert out.shape == (4, 3, 16, 16) and out.device == META
        out, _ = _check(lambda: ops.random_highorder(x, 4, HighOrderParams(), rng))
        assert out.shape == (4, 3, 16, 16)
    _check(lambda: ops.poisson_noise_t(x, [10.0, 20.0, 30.0, 40.0], np.array([True, False, True, False])))
    _check(lambda: ops.gaussian_noise(x, 3.0, [True, False, False, True]))
    _check(lambda: ops.blur_downsample(x, np.full((4, 5, 5), 0.04), 2))
    _check(lambda: ops.resize(x, (24, 40), "bicubic"))
    # replaying recorded steps: host-made kernels and noise fields go up asynchronously
    steps = [{"op": "blur", "kernel": {"type": "gaussian", "size": 7, "sigma_x": 1.2, "sigma_y": 1.2, "theta": 0.0}},
             {"op": "subsample", "scale": 2}, {"op": "gaussian_noise", "sigma": 2.0, "gray": False, "seed": 5}]
    out, uploads = _check(lambda: ops.apply_steps(x, steps))
    assert out.shape == (4, 3, 32, 32) and uploads == 2
    jpeg_torch(x, 50)  # warm the per-device tables
    _, uploads = _check(lambda: jpeg_torch(x, [10, 50, 90, 100]))
    assert uploads == 1  # the qualities; the quantisation and DCT tables stay on the device
    _, uploads = _check(lambda: jpeg_torch(x, 75, dct="float"))
    assert uploads == 0  # one quality for all: filled on the device


def test_pool_degradation_and_noise_injection_never_wait(tmp_path, monkeypatch):
    """random_pool with a NoiseBank, and the trainer's OnlineDegradation / NoiseInjection (pool
    mode, CPU generators for the crop positions), on the stand-in device."""
    import contextlib

    real_autocast = torch.autocast  # autocast has no meta device type; OnlineDegradation turns it off anyway
    monkeypatch.setattr(torch, "autocast", lambda device_type, **kw: contextlib.nullcontext()
                        if device_type == "meta" else real_autocast(device_type, **kw))
    from realsr.degrade.kernels import gaussian_kernel, shift_to_convention
    from realsr.degrade.pool import Pool
    from realsr.images import write_png
    from realsr.train.data import NoiseInjection, OnlineDegradation

    k = shift_to_convention(gaussian_kernel(13, 1.3, 0.9, 0.5), 2).astype(np.float32)
    np.save(tmp_path / "k.npy", k)
    write_png(tmp_path / "n.png", np.full((64, 64, 3), 128, np.uint8))
    src = {"name": "a", "file": "a.png", "status": "ok", "reason": None,
           "kernel": {"name": "a", "file": "k.npy", "size": k.shape[0]},
           "noise": [{"file": "n.png", "y": 0, "x": 0, "gray_var": 0.0, "gray_mean": 128.0}]}
    Pool(2, {}, {"a": src}, tmp_path).save(tmp_path / "pool.json")
    pool = Pool.load(tmp_path)
    bank = ops.NoiseBank(pool, META)
    hr = torch.empty((8, 3, 64, 64), device=META)
    gen = torch.Generator().manual_seed(0)
    out, _ = _check(lambda: ops.random_pool(hr, 2, pool, bank, np.random.default_rng(0), gen))
    assert out.shape == (8, 3, 32, 32)
    online = OnlineDegradation("pool", 2, 0, META, str(tmp_path), True, None, True)
    out, _ = _check(lambda: online(hr, (0, 0, 0)))
    assert out.shape == (8, 3, 32, 32)
    inject = NoiseInjection(str(tmp_path), 0, META)
    out, _ = _check(lambda: inject(torch.empty((8, 3, 32, 32), device=META), (0, 0, 0)))
    assert out.shape == (8, 3, 32, 32)


def test_to_device_and_device_constant():
    """to_device gives the same values as torch.as_tensor (CPU here: no copy at all) and leaves
    device data on its device; device_constant builds a table once per device and dtype."""
    a = np.arange(6.0).reshape(2, 3)
    t = to_device(a, "cpu", torch.float32)
    assert t.dtype == torch.float32 and torch.equal(t, torch.as_tensor(a, dtype=torch.float32))
    assert to_device([True, False], "cpu").dtype == torch.bool
    m = torch.empty(3, device=META)
    assert to_device(m, META) is m and to_device(m, META, torch.float64).dtype == torch.float64
    _, uploads = _check(lambda: to_device(a, META))
    assert uploads == 1
    calls = []

    def table():
        calls.append(1)
        return np.ones(4)

    x1, x2 = device_constant(table, META), device_constant(table, META)
    assert x1 is x2 and len(calls) == 1
    assert device_constant(table, META, torch.float32).dtype == torch.float32 and len(calls) == 2


def test_cached_tables_first_built_under_inference_mode_still_serve_autograd():
    """The per-device tables are cached; one first built under torch.inference_mode() was an
    inference tensor, and a later differentiable JPEG could not save it for backward."""
    from realsr.degrade import jpeg

    device_constant.cache_clear()
    jpeg._islow_tensors.cache_clear()
    ops._matrix.cache_clear()
    x = torch.rand(2, 3, 16, 16)
    with torch.inference_mode():
        jpeg_torch(x, 50)
        ops.resize(x, (8, 8))
    y = x.clone().requires_grad_()
    (jpeg_torch(y, [30, 90], differentiable=True).sum() + ops.resize(y, (8, 8)).sum()).backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()


def test_gray_flags_on_the_device_are_not_read():
    """Device flags cannot be read without a sync: with 1-channel images they are ignored (host flags
    asking for gray noise there are refused), with RGB the gray field is picked per image."""
    one = torch.empty((2, 1, 8, 8), device=META)
    out, _ = _check(lambda: ops.poisson_noise_t(one, 10.0, torch.zeros(2, dtype=torch.bool, device=META)))
    assert out.shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="gray Poisson noise needs RGB"):
        ops.poisson_noise_t(torch.full((2, 1, 8, 8), 0.5), 10.0, [True, False])
    rgb = torch.full((2, 3, 8, 8), 0.5)
    n = ops.poisson_noise_t(rgb, 10.0, torch.tensor([True, False]), torch.Generator().manual_seed(0))
    assert torch.equal(n[0, 0], n[0, 2]) and not torch.equal(n[1, 0], n[1, 2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_no_operation_synchronises():
    """On a real GPU, CUDA's own sync detector (``set_sync_debug_mode("error")``) raises at any
    synchronising call, pageable uploads included (which the meta stand-in cannot see)."""
    x = torch.rand(8, 3, 64, 64, device="cuda")
    rng = np.random.default_rng(0)
    gen = torch.Generator(device="cuda").manual_seed(0)
    classic = ClassicParams(noise=("gaussian", "poisson", "both"), jpeg_prob=1.0)
    for _ in range(2):  # the second round runs with the per-device tables cached
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            ops.random_classic(x, 4, classic, rng, gen)
            ops.random_highorder(x, 4, HighOrderParams(), rng, gen)
            jpeg_torch(x, [10, 50, 90, 100, 20, 30, 40, 60])
        finally:
            torch.cuda.set_sync_debug_mode("default")
