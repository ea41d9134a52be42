"""Semantic segmentation: per-pixel label maps mixed with the images.

``mix_label_maps`` turns int class-id maps into per-pixel soft targets under
any plan; ``classmix`` pastes the pixels of half the classes of a partner.
"""

from jaxmix._src.families.segmentation import classmix
from jaxmix._src.families.segmentation import mix_label_maps
from jaxmix._src.families.segmentation import sample_classmix

__all__ = [
  "classmix",
  "mix_label_maps",
  "sample_classmix",
]
