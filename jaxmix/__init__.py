"""jaxmix: mixed-sample data augmentation (MixUp, CutMix and their family) for JAX.

Every method is a pure function ``fn(key, inputs, labels, *, ...) -> (mixed,
soft_labels)`` built from two layers: ``sample_<method>`` draws a plan and
:func:`apply` / :func:`mix_labels` carry it out on any pytree.
"""

from jaxmix._src.audio import audio_mixup
from jaxmix._src.audio import sample_specmix
from jaxmix._src.audio import specmix
from jaxmix._src.cross import mix_batches
from jaxmix._src.cutmix import cutmix
from jaxmix._src.cutmix import mixup_cutmix
from jaxmix._src.cutmix import sample_cutmix
from jaxmix._src.cutmix import sample_mixup_cutmix
from jaxmix._src.label_rules import keep_larger_share
from jaxmix._src.label_rules import regmixup
from jaxmix._src.label_rules import remix
from jaxmix._src.label_rules import remix_lam
from jaxmix._src.label_rules import with_plan_transform
from jaxmix._src.labels import one_hot
from jaxmix._src.mixup import mixup
from jaxmix._src.mixup import sample_mixup
from jaxmix._src.multiway import MultiPlan
from jaxmix._src.multiway import augment_per_sample
from jaxmix._src.multiway import multimix
from jaxmix._src.multiway import sample_multimix
from jaxmix._src.plan import Plan
from jaxmix._src.plan import apply
from jaxmix._src.plan import mix_labels
from jaxmix._src.sequence import SequencePlan
from jaxmix._src.sequence import mix_token_labels
from jaxmix._src.sequence import sample_sequence_mixup
from jaxmix._src.sequence import sequence_mixup

__version__ = "0.1.0"

__all__ = [
  "MultiPlan",
  "Plan",
  "SequencePlan",
  "apply",
  "audio_mixup",
  "augment_per_sample",
  "cutmix",
  "keep_larger_share",
  "mix_batches",
  "mix_labels",
  "mix_token_labels",
  "mixup",
  "mixup_cutmix",
  "multimix",
  "one_hot",
  "regmixup",
  "remix",
  "remix_lam",
  "sample_cutmix",
  "sample_mixup",
  "sample_mixup_cutmix",
  "sample_multimix",
  "sample_sequence_mixup",
  "sample_specmix",
  "sequence_mixup",
  "specmix",
  "with_plan_transform",
]
