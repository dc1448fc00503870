"""realsr: real-world super-resolution datasets and models.

The top-level package holds the primitives every stage shares (image I/O, colour, MATLAB-compatible
resize, manifests, a parallel map). The stages live in sub-packages: ``realsr.capture_align``,
``realsr.degrade``, ``realsr.train``; the command line in ``realsr.cli``.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("realsr")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from .errors import ImageReadError, RealsrError, UsageError

__all__ = ["__version__", "RealsrError", "ImageReadError", "UsageError"]
