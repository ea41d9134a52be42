"""Targets and losses: multi-label (multi-hot) target helpers, and loss mixing from sparse labels.

Multi-hot ``[B, K]`` float targets are mixed by every method and by
:func:`jaxmix.mix_labels` as they are; ``smooth_multi_hot`` (before mixing) and
``threshold_targets`` (after mixing) complete timm's BCE recipe.
"""

from jaxmix._src.core.multilabel import smooth_multi_hot
from jaxmix._src.core.multilabel import threshold_targets

__all__ = [
  "smooth_multi_hot",
  "threshold_targets",
]
