"""JPEG degradation: the OpenCV codec path, the exact torch codec backend, and the batched torch
simulation of libjpeg-turbo (bit-exact with the islow DCT, close with the float DCT)."""

import io
import subprocess
import sys
from itertools import pairwise

import cv2
import numpy as np
import pytest
from PIL import Image

from realsr.degrade.jpeg import jpeg_numpy, jpeg_torch, quant_tables
from realsr.images import from_float, to_float
from realsr.synthetic import synthetic_scene

torch = pytest.importorskip("torch")

QUALITIES = (30, 50, 75, 95)
# dct="float" vs the codec on synthetic_scene(256, 256, seed=0), measured with libjpeg-turbo 3.1.2
# (opencv-python 5.0): PSNR 47.1 / 49.9 / 47.6 / 48.9 dB, mean |diff| 0.23 / 0.18 / 0.36 / 0.50
# grey levels at quality 30 / 50 / 75 / 95 (the input itself is at 21.1 / 22.2 / 23.8 / 25.6 dB).
FLOAT_MIN_PSNR = 44.0
FLOAT_MAX_MAD = 0.7


def psnr(a, b):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return np.inf if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def to_batch(*imgs):
    """uint8 RGB (H, W, 3) or gray (H, W) images of one size -> (B, C, H, W) float tensor."""
    t = torch.stack([torch.from_numpy(to_float(i)) for i in imgs])
    return t[:, None] if imgs[0].ndim == 2 else t.permute(0, 3, 1, 2)


def to_u8(t):
    """(C, H, W) tensor on the 1/255 grid -> (H, W, 3) or (H, W) uint8."""
    a = t.detach().cpu().float().permute(1, 2, 0).numpy()
    return from_float(a[:, :, 0] if a.shape[2] == 1 else a, np.uint8)


@pytest.fixture(scope="module")
def img():
    return synthetic_scene(256, 256, seed=0)


@pytest.fixture(scope="module")
def odd():
    return synthetic_scene(37, 53, seed=1)


# ----------------------------------------------------------------------------------- numpy path


def test_numpy_dtypes_and_shapes(odd):
    u8 = jpeg_numpy(odd, 60)
    assert u8.dtype == np.uint8 and u8.shape == odd.shape and not np.array_equal(u8, odd)

    f = jpeg_numpy(to_float(odd), 60)
    assert f.dtype == np.float32 and f.shape == odd.shape
    assert np.array_equal(f, to_float(u8))  # float is rounded to 8 bit, coded, returned on the 1/255 grid
    assert np.array_equal(jpeg_numpy(to_float(odd).astype(np.float64), 60), f)

    # uint16: round(v / 257) is coded and the result scaled back by 257 (the low byte is lost)
    u16 = (odd.astype(np.int32) * 257 + np.where(odd < 128, 100, -100)).astype(np.uint16)
    o16 = jpeg_numpy(u16, 60)
    assert o16.dtype == np.uint16 and o16.shape == odd.shape
    assert np.array_equal(o16, u8.astype(np.uint16) * 257)

    gray = odd[:, :, 1].copy()
    g = jpeg_numpy(gray, 60)
    assert g.dtype == np.uint8 and g.shape == gray.shape and psnr(g, gray) > 25
    assert np.array_equal(jpeg_numpy(gray[:, :, None], 60), g[:, :, None])


def test_lower_quality_lower_psnr(img):
    p = [psnr(jpeg_numpy(img, q), img) for q in (10, 30, 50, 75, 95, 100)]
    assert all(a < b for a, b in pairwise(p)), p


@pytest.mark.parametrize("q", [0, 101, -5, 50.0, 75.5, True, "50", None])
def test_invalid_quality_raises(odd, q):
    with pytest.raises(ValueError):
        jpeg_numpy(odd, q)


def test_invalid_input_raises(odd):
    with pytest.raises(TypeError):
        jpeg_numpy(odd.astype(np.int32), 50)
    with pytest.raises(ValueError):
        jpeg_numpy(odd[:, :, :2], 50)
    with pytest.raises(ValueError):
        jpeg_numpy(np.full((8, 8, 3), np.nan, np.float32), 50)


@pytest.mark.parametrize("q", [1, 10, 30, 49, 50, 75, 95, 100])
def test_quant_tables_and_sampling_are_the_ones_opencv_writes(odd, q):
    ok, buf = cv2.imencode(".jpg", odd[:, :, ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, q])  # OpenCV's defaults
    assert ok
    with Image.open(io.BytesIO(buf.tobytes())) as im:
        tables = im.quantization
        sampling = [(h, v) for _, h, v, _ in im.layer]
    luma, chroma = quant_tables(q)
    assert list(tables[0]) == luma.ravel().tolist() and list(tables[1]) == chroma.ravel().tolist()
    assert sampling == [(2, 2), (1, 1), (1, 1)]  # 4:2:0
    assert np.array_equal(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1], jpeg_numpy(odd, q))


# ---------------------------------------------------------------------------------- torch codec


def test_codec_backend_equals_numpy_bit_for_bit(img, odd):
    crops = [img[:37, :53], img[100:137, 50:103], odd]
    qs = [20, 55, 90]
    x = to_batch(*crops)
    y = jpeg_torch(x, qs, backend="codec")
    assert y.shape == x.shape and y.dtype == x.dtype
    for i, (c, q) in enumerate(zip(crops, qs)):
        assert np.array_equal(y[i].permute(1, 2, 0).numpy(), jpeg_numpy(to_float(c), q))
    y = jpeg_torch(x.double(), 40, backend="codec")  # one quality for all; dtype kept
    assert y.dtype == torch.float64
    assert np.array_equal(y[1].permute(1, 2, 0).numpy(), jpeg_numpy(to_float(crops[1]), 40))
    g = jpeg_torch(x[:, :1], torch.tensor(qs), backend="codec")  # gray
    assert g.shape == (3, 1, 37, 53)
    assert np.array_equal(g[2, 0].numpy(), jpeg_numpy(to_float(odd[:, :, 0]), 90))


def test_torch_invalid_arguments(odd):
    x = to_batch(odd, odd)
    for bad in (0, 101, [50], [50, 101], torch.tensor([50, 0]), torch.tensor([50.5, 60.0]), True, "50"):
        with pytest.raises(ValueError):
            jpeg_torch(x, bad)
    for kw in ({"backend": "pillow"}, {"dct": "fast"}, {"backend": "codec", "differentiable": True}):
        with pytest.raises(ValueError):
            jpeg_torch(x, 50, **kw)
    with pytest.raises(ValueError):
        jpeg_torch(x[0], 50)
    with pytest.raises(TypeError):
        jpeg_torch((x * 255).to(torch.uint8), 50)
    assert torch.equal(jpeg_torch(x, torch.tensor([40.0, 60.0])), jpeg_torch(x, [40, 60]))


# ------------------------------------------------------------------------------ torch simulated


def test_simulated_islow_equals_codec_bit_for_bit(img):
    x = to_batch(img)
    for q in (1, 10, *QUALITIES, 100):
        sim = jpeg_torch(x, q)  # dct="islow" is the default
        assert np.array_equal(sim[0].permute(1, 2, 0).numpy(), jpeg_numpy(to_float(img), q)), q
    # all 100 qualities at once, one per image
    small = img[:48, :64]
    y = jpeg_torch(to_batch(*[small] * 100), list(range(1, 101)))
    for q in range(1, 101):
        assert np.array_equal(to_u8(y[q - 1]), jpeg_numpy(small, q)), q


def test_simulated_islow_exact_on_hard_content():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)
    stripes = np.zeros((40, 42, 3), np.uint8)
    stripes[::2] = 255
    checker = np.kron(rng.integers(0, 2, (6, 7, 3)), np.ones((8, 8, 1))).astype(np.uint8) * 255
    narrow = np.zeros((6, 4, 3), np.uint8)  # chroma 2 samples wide: libjpeg replicates instead of filtering
    narrow[:, :2] = (255, 0, 0)
    narrow[:, 2:] = (0, 0, 255)
    for im in (noise, stripes, checker, narrow):
        for q in (5, 50, 97):
            assert np.array_equal(to_u8(jpeg_torch(to_batch(im), q)[0]), jpeg_numpy(im, q))
            gray = np.ascontiguousarray(im[:, :, 0])
            assert np.array_equal(to_u8(jpeg_torch(to_batch(gray), q)[0]), jpeg_numpy(gray, q))


def test_simulated_islow_exact_at_odd_sizes(img):
    # even heights (chroma padding), widths <= 4 (libjpeg skips fancy upsampling), 1-pixel images
    sizes = [(37, 53), (1, 1), (2, 3), (3, 2), (4, 4), (5, 6), (15, 17), (16, 16), (18, 20), (33, 8), (34, 35)]
    for i, (h, w) in enumerate(sizes):
        crop = img[7 * i:7 * i + h, 9 * i:9 * i + w]
        q = 20 + 7 * i
        sim = to_u8(jpeg_torch(to_batch(crop, 255 - crop), [q, 100 - q])[0])
        assert sim.shape == crop.shape
        assert np.array_equal(sim, jpeg_numpy(crop, q)), (h, w, q)


def test_simulated_float_dct_close_to_codec(img):
    x = to_batch(img)
    for q in QUALITIES:
        ref = jpeg_numpy(img, q)
        sim = to_u8(jpeg_torch(x, q, dct="float")[0])
        p, mad = psnr(sim, ref), np.abs(sim.astype(int) - ref).mean()
        assert p >= FLOAT_MIN_PSNR and mad <= FLOAT_MAX_MAD, (q, p, mad)
        # the artefacts are reproduced: the simulation is far closer to the codec than the input is
        assert p > psnr(img, ref) + 15, (q, p, psnr(img, ref))
    for h, w in ((37, 53), (3, 2), (18, 20)):
        crop = img[:h, :w]
        sim = to_u8(jpeg_torch(to_batch(crop), 50, dct="float")[0])
        assert sim.shape == crop.shape and psnr(sim, jpeg_numpy(crop, 50)) > 30


@pytest.mark.parametrize("dct", ["islow", "float"])
def test_simulated_per_image_quality_batch_equals_single(img, odd, dct):
    crops = [img[:37, :53], img[60:97, 100:153], img[200:237, 3:56], odd]
    qs = [15, 45, 70, 95]
    x = to_batch(*crops)
    y = jpeg_torch(x, torch.tensor(qs), dct=dct)
    assert y.shape == x.shape and y.dtype == x.dtype and not y.requires_grad
    for i, q in enumerate(qs):
        assert torch.equal(y[i:i + 1], jpeg_torch(x[i:i + 1], q, dct=dct))
    assert torch.equal(y, torch.round(y * 255) * np.float32(1 / 255))  # on the 1/255 grid
    assert torch.equal(jpeg_torch(x.double(), qs, dct=dct), y.double())
    assert jpeg_torch(x.half(), qs, dct=dct).dtype == torch.float16


@pytest.mark.parametrize("dct", ["islow", "float"])
def test_simulated_differentiable(odd, dct):
    x = to_batch(odd, odd).requires_grad_()
    y = jpeg_torch(x, [30, 90], differentiable=True, dct=dct)
    assert torch.equal(y.detach(), jpeg_torch(x.detach(), [30, 90], dct=dct))  # same forward value
    y.sum().backward()
    assert x.grad is not None and abs(x.grad.mean().item() - 1) < 0.05  # straight-through: ~identity
    assert not jpeg_torch(x, 50, dct=dct).requires_grad  # plain rounding: no gradient path


def test_import_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np\n"
            "from realsr.degrade.jpeg import jpeg_numpy\n"
            "print(jpeg_numpy(np.zeros((8, 8, 3), np.uint8), 50).shape)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0 and "(8, 8, 3)" in r.stdout, r.stderr
