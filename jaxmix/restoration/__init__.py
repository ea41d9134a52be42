"""Restoration: mixing LR/HR pairs (super-resolution, denoising, deraining).

``apply_scaled`` applies one plan, drawn at the LR size, to leaves whose
resolutions differ by integer factors (an LR input and its ×2/×3/×4 HR
target): regions are scaled and masks repeated, so the pair stays aligned
and λ holds in every leaf. ``cutblur`` (Yoo, Ahn, Sohn, CVPR 2020) pastes an
HR patch into the upsampled LR input or the reverse; ``sample_cutblur``
returns its :class:`CutBlurPlan`, applied with ``apply_cutblur``. ``moa``
(the same paper's Mixture of Augmentations) draws one of blend, rgb permute,
MixUp, cutout, CutMix, CutMixup and CutBlur per step, with the official
probabilities and α values.
"""

from jaxmix._src.families.restoration import CutBlurPlan
from jaxmix._src.families.restoration import apply_cutblur
from jaxmix._src.families.restoration import apply_scaled
from jaxmix._src.families.restoration import cutblur
from jaxmix._src.families.restoration import moa
from jaxmix._src.families.restoration import sample_cutblur

__all__ = [
  "CutBlurPlan",
  "apply_cutblur",
  "apply_scaled",
  "cutblur",
  "moa",
  "sample_cutblur",
]
