"""jaxmix: mixed-sample data augmentation (MixUp, CutMix and their family) for JAX.

Every method is a pure function ``fn(key, inputs, labels, *, ...) -> (mixed,
soft_labels)`` built from two layers: ``sample_<method>`` draws a plan and
:func:`apply` / :func:`mix_labels` carry it out on any pytree.
"""

from jaxmix._src.attentive import attentive_cutmix
from jaxmix._src.attentive import sample_attentive_cutmix
from jaxmix._src.choose import choose
from jaxmix._src.choose import sample_choose
from jaxmix._src.cutmix import cutmix
from jaxmix._src.cutmix import mixup_cutmix
from jaxmix._src.cutmix import sample_cutmix
from jaxmix._src.cutmix import sample_mixup_cutmix
from jaxmix._src.fmix import fmix
from jaxmix._src.fmix import fmix_grey_map
from jaxmix._src.fmix import sample_fmix
from jaxmix._src.gridmix import gridmix
from jaxmix._src.gridmix import sample_gridmix
from jaxmix._src.labels import one_hot
from jaxmix._src.manifold import ManifoldPlan
from jaxmix._src.manifold import manifold_point
from jaxmix._src.manifold import sample_manifold
from jaxmix._src.mixup import mixup
from jaxmix._src.mixup import sample_mixup
from jaxmix._src.plan import Plan
from jaxmix._src.plan import apply
from jaxmix._src.plan import mix_labels
from jaxmix._src.resizemix import ResizeMixPlan
from jaxmix._src.resizemix import resizemix
from jaxmix._src.resizemix import sample_resizemix
from jaxmix._src.saliencymix import saliencymix
from jaxmix._src.saliencymix import sample_saliencymix
from jaxmix._src.saliencymix import spectral_residual_saliency
from jaxmix._src.schedules import off_after
from jaxmix._src.schedules import scheduled
from jaxmix._src.smoothmix import sample_smoothmix
from jaxmix._src.smoothmix import smoothmix

__version__ = "0.1.0"

__all__ = [
  "ManifoldPlan",
  "Plan",
  "ResizeMixPlan",
  "apply",
  "attentive_cutmix",
  "choose",
  "cutmix",
  "fmix",
  "fmix_grey_map",
  "gridmix",
  "manifold_point",
  "mix_labels",
  "mixup",
  "mixup_cutmix",
  "off_after",
  "one_hot",
  "resizemix",
  "saliencymix",
  "sample_attentive_cutmix",
  "sample_choose",
  "sample_cutmix",
  "sample_fmix",
  "sample_gridmix",
  "sample_manifold",
  "sample_mixup",
  "sample_mixup_cutmix",
  "sample_resizemix",
  "sample_saliencymix",
  "sample_smoothmix",
  "scheduled",
  "smoothmix",
  "spectral_residual_saliency",
]
