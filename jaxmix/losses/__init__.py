"""Targets and losses: multi-label (multi-hot) target helpers, loss mixing from sparse labels, and
TransMix's attention-weighted labels.

Multi-hot ``[B, K]`` float targets are mixed by every method and by
:func:`jaxmix.mix_labels` as they are; ``smooth_multi_hot`` (before mixing) and
``threshold_targets`` (after mixing) complete timm's BCE recipe. ``mixed_loss``
mixes the loss instead of the target, ``w·loss(y_a) + (1 − w)·loss(y_b)``, for
class ids, per-token labels and per-pixel label maps, with no dense soft
targets; ``label_pair`` gives its ``(y_a, y_b, w)``. ``transmix_labels`` (TransMix, Chen et al.
2022) weights each source's label by a vision transformer's class-token attention on its pixels,
after the forward pass, from the plan that mixed the images.
"""

from jaxmix._src.core.multilabel import smooth_multi_hot
from jaxmix._src.core.multilabel import threshold_targets
from jaxmix._src.families.losses import label_pair
from jaxmix._src.families.losses import mixed_loss
from jaxmix._src.methods.transmix import transmix_labels

__all__ = [
  "label_pair",
  "mixed_loss",
  "smooth_multi_hot",
  "threshold_targets",
  "transmix_labels",
]
