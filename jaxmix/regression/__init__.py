"""Regression: mixing samples whose targets are real numbers.

``c_mixup`` (Yao et al., NeurIPS 2022) draws each sample's partner with a
Gaussian kernel on the distance between regression targets, so samples mix
mostly with samples of similar targets; ``sample_c_mixup`` returns its plan, a
two-source :class:`jaxmix.Plan`: ``jaxmix.apply(plan, x)`` blends inputs and
``jaxmix.apply(plan, targets)`` blends real-valued targets `[B]` or `[B, d]`
with the same λ.
"""

from jaxmix._src.methods.c_mixup import c_mixup
from jaxmix._src.methods.c_mixup import sample_c_mixup

__all__ = [
  "c_mixup",
  "sample_c_mixup",
]
