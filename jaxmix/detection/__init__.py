"""Object detection: boxes that follow the pixels of a mix.

``mix_boxes`` carries boxes through any two-source plan; ``mixup``, ``cutmix``,
``mosaic`` and ``copy_paste`` (with or without instance masks) are the one-call
methods for images with boxes; ``compact_boxes`` keeps the box axis of a chain
of mixes at a fixed size; the box utilities and the Pascal VOC reader complete
the family.
"""

from jaxmix._src.families.affine_detection import Affine
from jaxmix._src.families.affine_detection import random_affine
from jaxmix._src.families.boxes import BoxTargets
from jaxmix._src.families.boxes import box_area
from jaxmix._src.families.boxes import clip_boxes
from jaxmix._src.families.boxes import compact_boxes
from jaxmix._src.families.boxes import convert_boxes
from jaxmix._src.families.boxes import denormalize_boxes
from jaxmix._src.families.boxes import normalize_boxes
from jaxmix._src.families.copy_paste import copy_paste
from jaxmix._src.families.detection import cutmix_detection as cutmix
from jaxmix._src.families.detection import mix_boxes
from jaxmix._src.families.detection import mixup_detection as mixup
from jaxmix._src.families.mosaic_detection import mosaic
from jaxmix._src.families.mosaic_detection import mosaic_boxes
from jaxmix._src.families.voc import VOC_CLASSES
from jaxmix._src.families.voc import read_voc
from jaxmix._src.families.voc import read_voc_batch
from jaxmix._src.methods.mosaic import MosaicPlan
from jaxmix._src.methods.mosaic import sample_mosaic

__all__ = [
  "Affine",
  "box_area",
  "BoxTargets",
  "clip_boxes",
  "compact_boxes",
  "convert_boxes",
  "copy_paste",
  "cutmix",
  "denormalize_boxes",
  "mix_boxes",
  "mixup",
  "mosaic",
  "mosaic_boxes",
  "MosaicPlan",
  "normalize_boxes",
  "random_affine",
  "read_voc",
  "read_voc_batch",
  "sample_mosaic",
  "VOC_CLASSES",
]
