"""jaxmix: mixed-sample data augmentation (MixUp, CutMix and their family) for JAX.

Every method is a pure function ``fn(key, inputs, labels, *, ...) -> (mixed,
soft_labels)`` built from two layers: ``sample_<method>`` draws a plan and
:func:`apply` / :func:`mix_labels` carry it out on any pytree.
"""

from jaxmix._src.compose.choose import choose
from jaxmix._src.compose.choose import sample_choose
from jaxmix._src.compose.cross import mix_batches
from jaxmix._src.compose.recipes import keep_larger_share
from jaxmix._src.compose.recipes import regmixup
from jaxmix._src.compose.recipes import remix
from jaxmix._src.compose.recipes import remix_lam
from jaxmix._src.compose.recipes import with_plan_transform
from jaxmix._src.core.labels import one_hot
from jaxmix._src.core.plan import Plan
from jaxmix._src.core.plan import apply
from jaxmix._src.core.plan import mix_labels
from jaxmix._src.families.boxes import BoxTargets
from jaxmix._src.families.boxes import box_area
from jaxmix._src.families.boxes import clip_boxes
from jaxmix._src.families.boxes import convert_boxes
from jaxmix._src.families.boxes import denormalize_boxes
from jaxmix._src.families.boxes import normalize_boxes
from jaxmix._src.families.detection import cutmix_detection
from jaxmix._src.families.detection import mix_boxes
from jaxmix._src.families.detection import mixup_detection
from jaxmix._src.families.mosaic_detection import mosaic
from jaxmix._src.families.mosaic_detection import mosaic_boxes
from jaxmix._src.families.segmentation import classmix
from jaxmix._src.families.segmentation import mix_label_maps
from jaxmix._src.families.segmentation import sample_classmix
from jaxmix._src.families.sequence import SequencePlan
from jaxmix._src.families.sequence import mix_token_labels
from jaxmix._src.families.sequence import sample_sequence_mixup
from jaxmix._src.families.sequence import sequence_mixup
from jaxmix._src.families.sharding import local
from jaxmix._src.families.sharding import local_key
from jaxmix._src.families.voc import VOC_CLASSES
from jaxmix._src.families.voc import read_voc
from jaxmix._src.families.voc import read_voc_batch
from jaxmix._src.methods.attentive import attentive_cutmix
from jaxmix._src.methods.attentive import sample_attentive_cutmix
from jaxmix._src.methods.audio import audio_mixup
from jaxmix._src.methods.audio import sample_specmix
from jaxmix._src.methods.audio import specmix
from jaxmix._src.methods.cutmix import cutmix
from jaxmix._src.methods.cutmix import mixup_cutmix
from jaxmix._src.methods.cutmix import sample_cutmix
from jaxmix._src.methods.cutmix import sample_mixup_cutmix
from jaxmix._src.methods.fmix import fmix
from jaxmix._src.methods.fmix import fmix_grey_map
from jaxmix._src.methods.fmix import sample_fmix
from jaxmix._src.methods.gridmix import gridmix
from jaxmix._src.methods.gridmix import sample_gridmix
from jaxmix._src.methods.mixup import mixup
from jaxmix._src.methods.mixup import sample_mixup
from jaxmix._src.methods.mosaic import MosaicPlan
from jaxmix._src.methods.mosaic import sample_mosaic
from jaxmix._src.methods.multiway import MultiPlan
from jaxmix._src.methods.multiway import multimix
from jaxmix._src.methods.multiway import sample_multimix
from jaxmix._src.methods.resizemix import ResizeMixPlan
from jaxmix._src.methods.resizemix import resizemix
from jaxmix._src.methods.resizemix import sample_resizemix
from jaxmix._src.methods.saliencymix import saliencymix
from jaxmix._src.methods.saliencymix import sample_saliencymix
from jaxmix._src.methods.saliencymix import spectral_residual_saliency
from jaxmix._src.methods.smoothmix import sample_smoothmix
from jaxmix._src.methods.smoothmix import smoothmix
from jaxmix._src.train.manifold import ManifoldPlan
from jaxmix._src.train.manifold import manifold_point
from jaxmix._src.train.manifold import sample_manifold
from jaxmix._src.train.per_sample import augment_per_sample
from jaxmix._src.train.schedules import off_after
from jaxmix._src.train.schedules import scheduled

__version__ = "0.1.0"

__all__ = [
  "apply",
  "attentive_cutmix",
  "audio_mixup",
  "augment_per_sample",
  "box_area",
  "BoxTargets",
  "choose",
  "classmix",
  "clip_boxes",
  "convert_boxes",
  "cutmix",
  "cutmix_detection",
  "denormalize_boxes",
  "fmix",
  "fmix_grey_map",
  "gridmix",
  "keep_larger_share",
  "local",
  "local_key",
  "manifold_point",
  "ManifoldPlan",
  "mix_batches",
  "mix_boxes",
  "mix_label_maps",
  "mix_labels",
  "mix_token_labels",
  "mixup",
  "mixup_cutmix",
  "mixup_detection",
  "mosaic",
  "mosaic_boxes",
  "MosaicPlan",
  "multimix",
  "MultiPlan",
  "normalize_boxes",
  "off_after",
  "one_hot",
  "Plan",
  "read_voc",
  "read_voc_batch",
  "regmixup",
  "remix",
  "remix_lam",
  "resizemix",
  "ResizeMixPlan",
  "saliencymix",
  "sample_attentive_cutmix",
  "sample_choose",
  "sample_classmix",
  "sample_cutmix",
  "sample_fmix",
  "sample_gridmix",
  "sample_manifold",
  "sample_mixup",
  "sample_mixup_cutmix",
  "sample_mosaic",
  "sample_multimix",
  "sample_resizemix",
  "sample_saliencymix",
  "sample_sequence_mixup",
  "sample_smoothmix",
  "sample_specmix",
  "scheduled",
  "sequence_mixup",
  "SequencePlan",
  "smoothmix",
  "specmix",
  "spectral_residual_saliency",
  "VOC_CLASSES",
  "with_plan_transform",
]
