"""``realsr align``: real LR/HR captures -> pixel-aligned pairs with HR exactly ``scale`` x LR.

Public API: :class:`AlignParams`, :func:`align_pair` (arrays), :func:`align_dataset` (folders),
:class:`Mapping` (the estimated geometry), and the capture simulator in
:mod:`realsr.capture_align.simulate`.
"""

from .align import AlignResult, align_pair
from .mapping import Mapping, render_hr
from .params import AlignParams
from .refine import AlignmentFailed

__all__ = ["AlignParams", "AlignResult", "AlignmentFailed", "Mapping", "align_pair", "render_hr"]
