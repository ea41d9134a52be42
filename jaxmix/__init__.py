"""jaxmix: mixed-sample data augmentation (MixUp, CutMix and their family) for JAX.

Every method is a pure function ``fn(key, inputs, labels, *, ...) -> (mixed,
soft_labels)`` built from two layers: ``sample_<method>`` draws a plan and
:func:`apply` / :func:`mix_labels` carry it out on any pytree.
"""

from jaxmix._src.attentive import attentive_cutmix
from jaxmix._src.attentive import sample_attentive_cutmix
from jaxmix._src.cutmix import cutmix
from jaxmix._src.cutmix import mixup_cutmix
from jaxmix._src.cutmix import sample_cutmix
from jaxmix._src.cutmix import sample_mixup_cutmix
from jaxmix._src.labels import one_hot
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

__version__ = "0.1.0"

__all__ = [
  "Plan",
  "ResizeMixPlan",
  "apply",
  "attentive_cutmix",
  "cutmix",
  "mix_labels",
  "mixup",
  "mixup_cutmix",
  "one_hot",
  "resizemix",
  "saliencymix",
  "sample_attentive_cutmix",
  "sample_cutmix",
  "sample_mixup",
  "sample_mixup_cutmix",
  "sample_resizemix",
  "sample_saliencymix",
  "spectral_residual_saliency",
]
