import logging
import os
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from realsr.atomic import TMP_PREFIX, atomic_path, remove_stale_temporaries, write_bytes_atomic
from realsr.errors import ImageReadError
from realsr.images import apply_exif_orientation, encode_png, from_float, label_text, read_image, to_float, write_png
from realsr.raw import RawOptions



def _rand(shape, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    hi = np.iinfo(dtype).max
    return rng.integers(0, hi + 1, shape, dtype=np.int64).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_roundtrip_keeps_depth_and_rgb_order(tmp_path, dtype):
    img = _rand((21, 33, 3), dtype)
    write_png(tmp_path / "a.png", img)
    back = read_image(tmp_path / "a.png")
    assert back.dtype == dtype and np.array_equal(back, img)
    # RGB order on disk: OpenCV reads BGR, so the red channel is its last
    assert np.array_equal(cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED)[:, :, 2], img[:, :, 0])


@pytest.mark.parametrize("ext", [".tif", ".ppm", ".bmp"])
def test_other_formats(tmp_path, ext):
    img = _rand((16, 24, 3))
    cv2.imwrite(str(tmp_path / f"a{ext}"), img[:, :, ::-1])
    assert np.array_equal(read_image(tmp_path / f"a{ext}"), img)


def test_pgm_and_grayscale_become_three_channels(tmp_path):
    g = _rand((10, 12))
    cv2.imwrite(str(tmp_path / "g.pgm"), g)
    cv2.imwrite(str(tmp_path / "g.png"), g)
    for name in ("g.pgm", "g.png"):
        out = read_image(tmp_path / name)
        assert out.shape == (10, 12, 3) and all(np.array_equal(out[:, :, c], g) for c in range(3))


def test_16bit_tiff_and_float_tiff(tmp_path):
    img16 = _rand((8, 9, 3), np.uint16)
    cv2.imwrite(str(tmp_path / "a.tif"), img16[:, :, ::-1])
    assert np.array_equal(read_image(tmp_path / "a.tif"), img16)
    f = np.linspace(0, 1, 8 * 9 * 3, dtype=np.float32).reshape(8, 9, 3)
    cv2.imwrite(str(tmp_path / "f.tif"), f[:, :, ::-1])
    out = read_image(tmp_path / "f.tif")
    assert out.dtype == np.uint16 and np.abs(out / 65535.0 - f).max() < 1e-4


def test_float_tiff_outside_unit_range_is_clipped_with_a_warning(tmp_path, caplog):
    f = np.linspace(0, 255, 8 * 9 * 3, dtype=np.float32).reshape(8, 9, 3)  # 0-255 floats, a common slip
    cv2.imwrite(str(tmp_path / "f.tif"), f[:, :, ::-1])
    with caplog.at_level(logging.WARNING, logger="realsr"):
        out = read_image(tmp_path / "f.tif")
    assert "outside [0, 1]: clipped" in caplog.text and "[0, 255]" in caplog.text
    assert out.max() == 65535 and out.min() == 0


def test_rgba_drops_alpha_with_warning(tmp_path, caplog):
    rgba = _rand((6, 7, 4))
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    with caplog.at_level(logging.WARNING, logger="realsr"):
        out = read_image(tmp_path / "a.png")
    assert np.array_equal(out, rgba[:, :, :3])
    assert "alpha channel dropped" in caplog.text


def test_gray_alpha(tmp_path, caplog):
    la = _rand((6, 7, 2))
    Image.fromarray(la, "LA").save(tmp_path / "a.png")
    with caplog.at_level(logging.WARNING, logger="realsr"):
        out = read_image(tmp_path / "a.png")
    assert out.shape == (6, 7, 3) and np.array_equal(out[:, :, 1], la[:, :, 0])
    assert "alpha" in caplog.text


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    # An asymmetric picture stored rotated/flipped with the EXIF tag that undoes it.
    upright = np.zeros((40, 60, 3), np.uint8)
    upright[:10, :20] = (255, 0, 0)  # red block top-left
    upright[30:, 50:] = (0, 0, 255)  # blue block bottom-right
    inverse = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
               5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, 1), 7: lambda a: np.rot90(a[::-1, ::-1], -1),
               8: lambda a: np.rot90(a, -1)}
    stored = np.ascontiguousarray(inverse[orientation](upright))
    assert np.array_equal(apply_exif_orientation(stored, orientation), upright)
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(tmp_path / "a.jpg", quality=98, exif=exif.tobytes())
    out = read_image(tmp_path / "a.jpg")
    assert out.shape == upright.shape
    assert out[5, 10, 0] > 200 and out[5, 10, 2] < 60  # red top-left
    assert out[35, 55, 2] > 200 and out[35, 55, 0] < 60  # blue bottom-right


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".ppm"])
def test_truncated_files_raise_clear_error(tmp_path, ext):
    img = _rand((64, 64, 3))
    ok, buf = cv2.imencode(ext, img)
    data = buf.tobytes()
    for cut in (len(data) // 2, len(data) - 3):
        p = tmp_path / f"t{cut}{ext}"
        p.write_bytes(data[:cut])
        with pytest.raises(ImageReadError) as e:
            read_image(p)
        assert str(p) in str(e.value)


def test_png_damage_is_named_without_libpng_noise(tmp_path, capfd):
    ok, buf = cv2.imencode(".png", _rand((32, 32, 3)))
    data = bytearray(buf.tobytes())
    (tmp_path / "cut.png").write_bytes(bytes(data[:-20]))
    data[60] ^= 0xFF  # flip bits inside the image data
    (tmp_path / "flip.png").write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="truncated PNG"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(ImageReadError, match="corrupt PNG .CRC error"):
        read_image(tmp_path / "flip.png")
    assert "libpng" not in capfd.readouterr().err


def test_a_header_over_the_decoder_limit_is_a_read_error(tmp_path, bomb_png):
    """OpenCV asserts (cv2.error) on an image over its pixel limit; that stopped whole runs as an
    'internal error' where other unreadable files are skipped with a reason."""
    (tmp_path / "bomb.png").write_bytes(bomb_png)
    with pytest.raises(ImageReadError, match="too large for the decoder") as e:
        read_image(tmp_path / "bomb.png")
    assert "bomb.png" in str(e.value)


def test_missing_empty_garbage_unsupported(tmp_path):
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty file"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "junk.jpg").write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(ImageReadError, match="not a readable image|truncated"):
        read_image(tmp_path / "junk.jpg")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ImageReadError, match="unsupported image type"):
        read_image(tmp_path / "a.txt")
    with pytest.raises(ImageReadError, match="a folder, not an image file"):
        read_image(tmp_path)


def test_float_conversions():
    x = np.array([[0.0, 0.5, 1.0, 1.2, -0.1]], np.float32)
    assert from_float(x, np.uint8).tolist() == [[0, 128, 255, 255, 0]]
    assert from_float(x, np.uint16).tolist() == [[0, 32768, 65535, 65535, 0]]
    assert to_float(np.array([255], np.uint8))[0] == 1.0
    assert to_float(np.array([65535], np.uint16))[0] == 1.0


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "x.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert not target.exists() and list((tmp_path / "sub").iterdir()) == []
    write_bytes_atomic(target, b"ok")
    assert target.read_bytes() == b"ok"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    stale, busy = tmp_path / "sub" / f"{TMP_PREFIX}stale.png", tmp_path / "sub" / f"{TMP_PREFIX}busy.png"
    stale.write_bytes(b"x")
    busy.write_bytes(b"y")  # another shard writing into the same folder right now
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert remove_stale_temporaries(tmp_path) == 1
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == [busy.name, "x.bin"]


def test_encode_png_rejects_float():
    with pytest.raises(TypeError):
        encode_png(np.zeros((2, 2, 3), np.float32))


def test_raw_development_is_deterministic_16bit_and_linear_option(shared):
    path = shared("raw", "RAW_KODAK_DC50.KDC")
    a = read_image(path)
    b = read_image(path)
    assert a.dtype == np.uint16 and a.shape == (512, 768, 3) and np.array_equal(a, b)
    lin = read_image(path, RawOptions(linear=True))
    assert lin.shape == a.shape and lin.mean() < a.mean()  # no gamma: darker mid-tones
    eight = read_image(path, RawOptions(bits=8))
    assert eight.dtype == np.uint8


def test_corrupt_raw_raises(tmp_path, shared):
    p = tmp_path / "broken.NEF"
    p.write_bytes(b"\x00" * 4096)
    with pytest.raises(ImageReadError) as e:
        read_image(p)
    assert "broken.NEF" in str(e.value)
    try:
        src = shared("raw", "RAW_KODAK_DC50.KDC")
    except pytest.skip.Exception:
        return
    t = tmp_path / "trunc.kdc"
    t.write_bytes(src.read_bytes()[:5000])
    with pytest.raises(ImageReadError):
        read_image(t)


def test_label_text_is_printable_ascii():
    """OpenCV's putText crashes (segfault) on lone surrogates, which non-UTF-8 file names become."""
    assert label_text("scene 1: OK (x2)") == "scene 1: OK (x2)"
    assert label_text(os.fsdecode(b"caf\xe9") + " \u00fc\U0001f600\n") == "caf? ???"



#: arrays ``as_rgb`` refuses, with the message it gives
BAD_ARRAYS = {
    "float images are taken in \\[0, 1\\]; this one holds values in \\[0.0": lambda x: x * 255,
    "NaN or infinite": lambda x: np.where(x < 0.01, np.inf, x),
    "got bool": lambda x: x > 0.5,
    "got int64": lambda x: [[1, 2], [3, 4]],
    "gray, gray\\+alpha, RGB or RGBA": lambda x: np.zeros((4, 4, 5), np.uint8),
}


def test_as_rgb_is_the_entry_check_of_array_apis():
    from realsr.images import as_rgb

    x = np.random.default_rng(0).random((20, 30))
    assert as_rgb(x).shape == (20, 30, 3) and as_rgb(x).dtype == np.float64
    assert as_rgb(x.astype(np.float16)).dtype == np.float32
    assert as_rgb(np.zeros((5, 6, 4), np.uint16)).shape == (5, 6, 3)
    assert as_rgb(x * 1.2 - 0.1).shape == (20, 30, 3)  # a resize's overshoot is fine
    for msg, make in BAD_ARRAYS.items():
        with pytest.raises(ValueError, match=msg):
            as_rgb(make(x))
