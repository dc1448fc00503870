"""realsr: real-world super-resolution datasets and models.

The top-level package holds the primitives every stage shares (image I/O, colour, MATLAB-compatible
resize, manifests, a parallel map). The stages live in sub-packages: ``realsr.capture_align``,
``realsr.degrade``, ``realsr.train``; the command line in ``realsr.cli``.
"""

import os as _os
from importlib.metadata import PackageNotFoundError, version as _version

# In the source tree the stage folders (capture_align/, degrade/, train/, cli/) sit beside this
# one and an installed wheel maps them to realsr.<stage>. When this package is imported from the
# source tree (the repository root on sys.path), let realsr.<stage> resolve the same way.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "pyproject.toml")) and _os.path.isdir(_os.path.join(_root, "capture_align")):
    __path__.append(_root)  # noqa: F821 - __path__ is defined for packages

try:
    __version__ = _version("realsr")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from .errors import ImageReadError, RealsrError, UsageError

__all__ = ["__version__", "RealsrError", "ImageReadError", "UsageError"]
