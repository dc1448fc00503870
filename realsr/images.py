"""Image reading and writing.

Every reader returns an ``(H, W, 3)`` RGB array of dtype ``uint8`` or ``uint16``: grayscale is
replicated to three channels, alpha is dropped (with a warning), EXIF orientation is applied, RAW
files are developed through :mod:`realsr.raw`. Anything that cannot be read raises
:class:`~realsr.errors.ImageReadError` naming the file. Writers are atomic (temporary name + rename).
"""

from __future__ import annotations

import io
import logging
import os
import zlib
from pathlib import Path

import cv2
import numpy as np

from .atomic import write_bytes_atomic
from .errors import ImageReadError
from .raw import RAW_EXTENSIONS, RawOptions, develop_raw

log = logging.getLogger(__name__)

#: File extensions read through OpenCV (lower case, with the dot).
RASTER_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".bmp", ".webp"}
)
#: Every extension :func:`read_image` accepts.
IMAGE_EXTENSIONS = RASTER_EXTENSIONS | RAW_EXTENSIONS

try:  # OpenCV logs decoder errors to stderr itself; we report them as ImageReadError instead.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
except AttributeError:  # pragma: no cover - very old OpenCV
    pass


def is_image_file(path: str | os.PathLike) -> bool:
    """True if ``path`` has an extension :func:`read_image` handles (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def folder_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in ``folder`` (not recursive), sorted by name. Hidden files (names
    starting with a dot) are left out: the temporaries of an interrupted realsr run
    (``.realsr-tmp-*``, half written) and the ``._name.png`` resource forks macOS leaves on shared
    drives carry image extensions but are not images."""
    # a dangling symbolic link is listed too, so that reading it reports it instead of losing it
    return sorted(p for p in Path(folder).iterdir()
                  if not p.name.startswith(".") and (p.is_file() or p.is_symlink()) and is_image_file(p))


def read_image(path: str | os.PathLike, raw: RawOptions | None = None, keep_alpha: bool = False) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` RGB ``uint8`` or ``uint16`` (``(H, W, 4)`` RGBA when
    ``keep_alpha`` and the file has alpha).

    PNG/JPEG/TIFF/PPM/PGM/BMP/WebP go through OpenCV (8- and 16-bit kept as they are; float TIFFs
    in [0, 1] become 16-bit, values outside it are clipped with a warning); RAW camera files (DNG, NEF, CR2, ARW, KDC, ...) are developed by
    :func:`realsr.raw.develop_raw` with ``raw`` options (default: camera white balance, no
    auto-brightness, 16-bit sRGB). Raises :class:`ImageReadError` when the file is missing, empty,
    truncated, corrupt or of an unsupported kind.
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError("file not found", p)
    if p.is_dir():
        raise ImageReadError("a folder, not an image file", p)
    if not p.is_file():
        raise ImageReadError("not a file", p)
    if p.stat().st_size == 0:
        raise ImageReadError("empty file", p)
    ext = p.suffix.lower()
    if ext in RAW_EXTENSIONS:
        return develop_raw(p, raw or RawOptions())
    if ext not in RASTER_EXTENSIONS:
        raise ImageReadError(f"unsupported image type '{ext or '(no extension)'}'", p)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ImageReadError(f"cannot read file: {e.strerror or e}", p) from None
    return decode_image(data, p, keep_alpha)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png(data: bytes, path: str | os.PathLike) -> None:
    """Walk the PNG chunks (lengths and CRCs) so damaged files get a precise error before libpng
    (which would print its own message to stderr) sees them."""
    pos, n = 8, len(data)
    while True:
        if pos + 12 > n:
            raise ImageReadError("truncated PNG (ends before the IEND chunk)", path)
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if not kind.isalpha() or not kind.isascii() or (pos == 8 and kind != b"IHDR"):
            raise ImageReadError(f"corrupt PNG (invalid chunk at byte {pos})", path)
        end = pos + 12 + length
        if length > 2**31 - 1 or end > n:
            raise ImageReadError(f"truncated PNG (chunk {kind!r} cut short)", path)
        crc = int.from_bytes(data[end - 4 : end], "big")
        if zlib.crc32(data[pos + 4 : end - 4]) != crc:
            raise ImageReadError(f"corrupt PNG (CRC error in chunk {kind.decode('latin-1')!r})", path)
        if kind == b"IEND":
            return
        pos = end


def decode_image(data: bytes, path: str | os.PathLike = "<memory>", keep_alpha: bool = False) -> np.ndarray:
    """Decode encoded raster image bytes to ``(H, W, 3)`` RGB uint8/uint16 (see :func:`read_image`)."""
    if data[:8] == _PNG_SIGNATURE:
        _check_png(data, path)
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]:
        # Older OpenCV/libjpeg fill a truncated JPEG with grey and only warn; refuse it here.
        raise ImageReadError("truncated JPEG (no end-of-image marker)", path)
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:  # e.g. a header claiming more pixels than the decoder allows
        if "CV_IO_MAX_IMAGE_PIXELS" in str(e):
            raise ImageReadError("image too large for the decoder (over OpenCV's limit of 2^30 pixels; the "
                                 "environment variable OPENCV_IO_MAX_IMAGE_PIXELS raises it)", path) from None
        detail = (str(e).strip().splitlines() or [""])[-1][:160]
        raise ImageReadError(f"not a readable image (decoder error: {detail})", path) from None
    except MemoryError:
        raise ImageReadError("image too large to decode in the available memory", path) from None
    if arr is None or arr.size == 0:
        raise ImageReadError("not a readable image (corrupt, truncated or unsupported)", path)
    arr = _to_rgb(arr, path, keep_alpha)
    orientation = _exif_orientation(data)
    if orientation not in (None, 1):
        arr = apply_exif_orientation(arr, orientation)
    return np.ascontiguousarray(arr)


#: float images further than this outside [0, 1] are taken for 0-255 (or other) data and refused
FLOAT_SLACK = 0.5


def check_pixels(img: np.ndarray, float_range: bool = True) -> np.ndarray:
    """``img`` as an array of image pixels: uint8 and uint16 kept, float32/float64 in [0, 1] kept
    (float16 becomes float32). Raises :class:`ValueError` for other pixel types (bool, int64 ...),
    and for float images holding NaN or infinity or (``float_range``: for functions whose result
    depends on the scale) values more than :data:`FLOAT_SLACK` outside [0, 1] (0-255 data)."""
    img = np.asarray(img)
    if img.dtype.kind == "f":
        if img.dtype == np.float16:
            img = img.astype(np.float32)
        if img.size:
            if not np.isfinite(img).all():
                raise ValueError("the image holds NaN or infinite values")
            lo, hi = (float(img.min()), float(img.max())) if float_range else (0.0, 1.0)
            if lo < -FLOAT_SLACK or hi > 1 + FLOAT_SLACK:
                raise ValueError(f"float images are taken in [0, 1]; this one holds values in [{lo:.4g}, {hi:.4g}] "
                                 "(0-255 data? divide by 255, or pass uint8)")
    elif img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8, uint16 or float [0, 1] pixels, got {img.dtype}")
    return img


def as_rgb(img: np.ndarray) -> np.ndarray:
    """An in-memory image (H, W), (H, W, 1), gray + alpha (H, W, 2), RGB or RGBA as (H, W, 3) RGB,
    alpha dropped, gray repeated, pixels as :func:`check_pixels` takes them. The entry check of the
    API functions that take image arrays: raises :class:`ValueError` for other shapes and for what
    :func:`check_pixels` refuses."""
    img = check_pixels(img)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected a gray, gray+alpha, RGB or RGBA image, got shape {img.shape}")
    if img.shape[2] <= 2:
        return np.repeat(img[:, :, :1], 3, axis=2)
    return img[:, :, :3]


def _to_rgb(arr: np.ndarray, path: str | os.PathLike, keep_alpha: bool = False) -> np.ndarray:
    if arr.dtype == np.float32 or arr.dtype == np.float64:
        if not np.isfinite(arr).all():
            raise ImageReadError("floating-point image holds NaN or infinity", path)
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1e-3 or hi > 1.001:
            log.warning("floating-point image has values in [%.4g, %.4g], outside [0, 1]: clipped to [0, 1] (%s)",
                        lo, hi, path)
        arr = np.round(np.clip(arr, 0.0, 1.0) * 65535.0).astype(np.uint16)
    elif arr.dtype == np.int16 or arr.dtype == np.int32 or arr.dtype == np.int8:
        raise ImageReadError(f"unsupported signed pixel type {arr.dtype}", path)
    elif arr.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"unsupported pixel type {arr.dtype}", path)
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3:
        raise ImageReadError(f"unsupported image shape {arr.shape}", path)
    c = arr.shape[2]
    if c == 1:
        return np.repeat(arr, 3, axis=2)
    if c == 2 and keep_alpha:
        return np.concatenate([np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1:]], axis=2)
    if c == 4 and keep_alpha:
        return arr[:, :, [2, 1, 0, 3]]
    if c == 2:  # gray + alpha
        log.warning("alpha channel dropped (%s)", path)
        return np.repeat(arr[:, :, :1], 3, axis=2)
    if c == 3:
        return arr[:, :, ::-1]
    if c == 4:
        log.warning("alpha channel dropped (%s)", path)
        return arr[:, :, 2::-1]
    raise ImageReadError(f"unsupported number of channels {c}", path)


def _exif_orientation(data: bytes) -> int | None:
    """EXIF orientation tag (1-8) of encoded image bytes, or None when absent/unreadable."""
    if not (data[:2] == b"\xff\xd8" or data[:4] in (b"II*\x00", b"MM\x00*") or data[:4] == b"RIFF"):
        return None  # PNG/PPM/BMP practically never carry EXIF orientation
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            value = im.getexif().get(0x0112)
    except Exception:  # a file OpenCV could decode but PIL cannot parse: no orientation
        return None
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else None


def apply_exif_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip ``arr`` (H, W, ...) so that an image stored with EXIF ``orientation`` displays upright."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1, :]
    if orientation == 5:
        return np.swapaxes(arr, 0, 1)
    if orientation == 6:
        return np.rot90(arr, k=-1)
    if orientation == 7:
        return np.rot90(arr, k=1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(arr, k=1)
    return arr


def encode_png(img: np.ndarray, compression: int = 1) -> bytes:
    """Encode an ``(H, W, 3)`` RGB, ``(H, W, 4)`` RGBA or ``(H, W)`` gray uint8/uint16 array as PNG bytes.

    zlib level 1 by default: on a 24-megapixel photo it encodes ~1.6x faster than level 3 for
    files ~5% larger.
    """
    if img.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"PNG needs uint8 or uint16 pixels, got {img.dtype}")
    bgr = img if img.ndim == 2 else img[:, :, [2, 1, 0, 3]] if img.shape[2] == 4 else img[:, :, ::-1]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:  # pragma: no cover - OpenCV failure
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def write_png(path: str | os.PathLike, img: np.ndarray, compression: int = 1) -> None:
    """Write an RGB uint8/uint16 image as PNG, atomically (temporary name, then rename)."""
    write_bytes_atomic(path, encode_png(img, compression))


def max_value(dtype: np.dtype | type) -> float:
    """Full-scale value of an integer pixel type (255 for uint8, 65535 for uint16)."""
    return float(np.iinfo(dtype).max)


def to_float(img: np.ndarray) -> np.ndarray:
    """uint8/uint16 image -> float32 in [0, 1] (divided by the type's full scale)."""
    if img.dtype in (np.float32, np.float64):
        return img.astype(np.float32, copy=False)
    return img.astype(np.float32) * np.float32(1.0 / max_value(img.dtype))


def from_float(img: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """float image in [0, 1] -> ``dtype`` (uint8/uint16): clip, scale to full range, round half up."""
    m = max_value(dtype)
    out = np.clip(img, 0.0, 1.0) * np.float32(m) + np.float32(0.5)
    return np.floor(out, out=out).astype(dtype)


def label_text(text: str) -> str:
    """``text`` as printable ASCII for ``cv2.putText`` (its Hershey fonts draw nothing else): other
    characters become ``?``. File names that are not valid UTF-8 reach Python as lone surrogates,
    which crash OpenCV's text drawing (a segmentation fault), so every label goes through this."""
    return "".join(c if " " <= c <= "~" else "?" for c in str(text))
