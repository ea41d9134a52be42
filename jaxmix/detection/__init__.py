"""Object detection: boxes that follow the pixels of a mix.

``mix_boxes`` carries boxes through any two-source plan; ``mixup``, ``cutmix``,
``mosaic`` (2 × 2 at the input size, or the YOLO form: 4 or 9 tiles on a 2s
canvas and a random ``Affine``, also alone as ``random_affine``) and
``copy_paste`` (with or without instance masks) are the one-call methods for
images with boxes, ``yolox_mixup`` and ``ultralytics_mixup``
the YOLO trainers' presets of MixUp, which (like ``mosaic``'s tiles) can take
partners from a ``PartnerCache`` carried across steps; ``compact_boxes`` keeps the box axis of a chain
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
from jaxmix._src.families.detection_presets import ultralytics_mixup
from jaxmix._src.families.detection_presets import yolox_mixup
from jaxmix._src.families.mosaic_detection import mosaic
from jaxmix._src.families.mosaic_detection import mosaic_boxes
from jaxmix._src.families.partner_cache import PartnerCache
from jaxmix._src.families.partner_cache import draw_partners
from jaxmix._src.families.partner_cache import init_partner_cache
from jaxmix._src.families.partner_cache import update_partner_cache
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
  "draw_partners",
  "init_partner_cache",
  "mix_boxes",
  "mixup",
  "mosaic",
  "mosaic_boxes",
  "MosaicPlan",
  "normalize_boxes",
  "PartnerCache",
  "random_affine",
  "read_voc",
  "read_voc_batch",
  "sample_mosaic",
  "ultralytics_mixup",
  "update_partner_cache",
  "VOC_CLASSES",
  "yolox_mixup",
]
