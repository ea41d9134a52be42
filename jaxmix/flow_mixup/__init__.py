"""Flow-Mixup (Chen et al. 2020, arXiv 2102.08148) for multi-label training with corrupted labels.

Experimental: the paper's method section was not available when this was written, so the
module implements a stated *reading* of its abstract (two flows, clean and mixed, through one
network; a constraint that the mixed flow's hidden states equal the mix of the clean flow's;
per-class mixed multi-hot targets). :mod:`jaxmix._src.train.flow_mixup`'s docstring gives the
reading and each choice; check it against the paper before relying on it.
"""

from jaxmix._src.train.flow_mixup import FlowPlan
from jaxmix._src.train.flow_mixup import flow_constraint
from jaxmix._src.train.flow_mixup import flow_inputs
from jaxmix._src.train.flow_mixup import flow_targets
from jaxmix._src.train.flow_mixup import sample_flow_mixup

__all__ = [
  "FlowPlan",
  "flow_constraint",
  "flow_inputs",
  "flow_targets",
  "sample_flow_mixup",
]
