"""jaxmix: mixed-sample data augmentation (MixUp, CutMix and their family) for JAX.

Every method is a pure function ``fn(key, inputs, labels, *, ...) -> (mixed,
soft_labels)`` built from two layers: ``sample_<method>`` draws a plan and
:func:`apply` / :func:`mix_labels` carry it out on any pytree. ``SAMPLERS`` is the
name → method table (what :func:`choose` resolves names with).

Families live in their namespaces: :mod:`jaxmix.detection` (boxes, Mosaic, VOC),
:mod:`jaxmix.segmentation` (label maps, ClassMix), :mod:`jaxmix.sequence`
(padded sequences, token labels), :mod:`jaxmix.sharding` (mixing per device),
:mod:`jaxmix.losses` (multi-hot targets, loss mixing from sparse labels, TransMix's
attention-weighted labels), :mod:`jaxmix.regression` (C-Mixup for real-valued targets),
:mod:`jaxmix.restoration` (LR/HR pairs: one plan at several resolutions, CutBlur, MoA),
:mod:`jaxmix.guided` (mixing guided by the model: TokenMix, SnapMix, PuzzleMix, AlignMix) and
:mod:`jaxmix.flow_mixup` (Flow-Mixup for multi-label training; experimental).
"""

import typing
import warnings

from jaxmix import detection as detection
from jaxmix import flow_mixup as flow_mixup
from jaxmix import guided as guided
from jaxmix import losses as losses
from jaxmix import regression as regression
from jaxmix import restoration as restoration
from jaxmix import segmentation as segmentation
from jaxmix import sequence as sequence
from jaxmix import sharding as sharding
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
from jaxmix._src.core.plan import PlanLike
from jaxmix._src.core.plan import apply
from jaxmix._src.core.plan import mix_labels
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
from jaxmix._src.methods.registry import SAMPLERS
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
  "SAMPLERS",
  "apply",
  "attentive_cutmix",
  "audio_mixup",
  "augment_per_sample",
  "choose",
  "cutmix",
  "fmix",
  "fmix_grey_map",
  "gridmix",
  "keep_larger_share",
  "manifold_point",
  "ManifoldPlan",
  "mix_batches",
  "mix_labels",
  "mixup",
  "mixup_cutmix",
  "MosaicPlan",
  "multimix",
  "MultiPlan",
  "off_after",
  "one_hot",
  "Plan",
  "PlanLike",
  "regmixup",
  "remix",
  "remix_lam",
  "resizemix",
  "ResizeMixPlan",
  "saliencymix",
  "sample_attentive_cutmix",
  "sample_choose",
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
  "sample_smoothmix",
  "sample_specmix",
  "scheduled",
  "smoothmix",
  "specmix",
  "spectral_residual_saliency",
  "with_plan_transform",
]

# Names that moved into the family namespaces in 0.2.0. They stay reachable at the top level for one
# release and warn; CHANGELOG.md lists every move.
_MOVED = {
  "BoxTargets": ("detection", "BoxTargets"),
  "box_area": ("detection", "box_area"),
  "clip_boxes": ("detection", "clip_boxes"),
  "convert_boxes": ("detection", "convert_boxes"),
  "denormalize_boxes": ("detection", "denormalize_boxes"),
  "normalize_boxes": ("detection", "normalize_boxes"),
  "mix_boxes": ("detection", "mix_boxes"),
  "mosaic": ("detection", "mosaic"),
  "mosaic_boxes": ("detection", "mosaic_boxes"),
  "read_voc": ("detection", "read_voc"),
  "read_voc_batch": ("detection", "read_voc_batch"),
  "VOC_CLASSES": ("detection", "VOC_CLASSES"),
  "cutmix_detection": ("detection", "cutmix"),
  "mixup_detection": ("detection", "mixup"),
  "classmix": ("segmentation", "classmix"),
  "mix_label_maps": ("segmentation", "mix_label_maps"),
  "sample_classmix": ("segmentation", "sample_classmix"),
  "SequencePlan": ("sequence", "SequencePlan"),
  "mix_token_labels": ("sequence", "mix_token_labels"),
  "sample_sequence_mixup": ("sequence", "sample_mixup"),
  "sequence_mixup": ("sequence", "mixup"),
  "local": ("sharding", "local"),
  "local_key": ("sharding", "local_key"),
}


def __getattr__(name: str) -> typing.Any:
  if name in _MOVED:
    namespace, new = _MOVED[name]
    warnings.warn(
      f"jaxmix.{name} moved to jaxmix.{namespace}.{new}; the old name will be removed in 0.3.0.",
      DeprecationWarning,
      stacklevel=2,
    )
    return getattr(globals()[namespace], new)
  raise AttributeError(f"module 'jaxmix' has no attribute {name!r}")


def __dir__() -> list[str]:
  namespaces = [
    "detection", "flow_mixup", "guided", "losses", "regression", "restoration", "segmentation", "sequence",
    "sharding",
  ]
  return sorted(__all__ + namespaces + ["__version__"])
