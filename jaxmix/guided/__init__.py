"""Mixing guided by the model: methods whose masks or labels follow a vision transformer's tokens or a
network's class activation maps, and AlignMix, which aligns feature maps before interpolating them.

``tokenmix`` (TokenMix, Liu et al., ECCV 2022) pastes the partner on blocks of whole patch tokens;
``sample_tokenmix`` returns its plan, a :class:`jaxmix.Plan` (registered: ``jaxmix.choose`` takes
``"tokenmix"``), and ``tokenmix_labels`` weights the labels with a teacher's activation on each
source's tokens.

``snapmix`` (SnapMix, Huang, Wang, Tao, AAAI 2021) resizes a box of the partner into a box of the
sample and weights each label by the share of its class activation map that the mixed image keeps
(``snapmix_labels``, from ``class_activation_map``); the two weights need not sum to 1.
``sample_snapmix`` returns a :class:`SnapMixPlan`. SnapMix is not in ``jaxmix.SAMPLERS``: its labels
need the model's CAM.

``alignmix_point`` (AlignMix, Venkataramanan, Kijak, Amsaleg, Avrithis, CVPR 2022) aligns each
sample's feature map with its partner's by entropic optimal transport (``transport_plan``,
``sinkhorn_align``) and interpolates the aligned maps inside the model, at a layer drawn each step
(``sample_alignmix`` returns an :class:`AlignMixPlan`; point 0, the input, gets plain MixUp). AlignMix
is not in ``jaxmix.SAMPLERS`` either: it mixes the model's features, not its inputs.
``puzzlemix`` (PuzzleMix, Kim, Choo, Song, ICML 2020) mixes block-wise with a labelling of a block grid
that keeps both sources' salient blocks (an approximate, jit-able minimisation of the official graph-cut
energy) and moves each source's salient blocks into the region it keeps (transport);
``sample_puzzlemix`` returns a :class:`PuzzleMixPlan`, and ``puzzlemix_saliency`` turns the gradient of
the loss w.r.t. the images into its saliency. PuzzleMix is not in ``jaxmix.SAMPLERS``: it needs the
model's gradients.

TransMix's attention-weighted labels are :func:`jaxmix.losses.transmix_labels`.
"""

from jaxmix._src.methods.puzzlemix import PuzzleMixPlan
from jaxmix._src.methods.puzzlemix import puzzlemix
from jaxmix._src.methods.puzzlemix import puzzlemix_saliency
from jaxmix._src.methods.puzzlemix import sample_puzzlemix
from jaxmix._src.methods.snapmix import SnapMixPlan
from jaxmix._src.methods.snapmix import class_activation_map
from jaxmix._src.methods.snapmix import sample_snapmix
from jaxmix._src.methods.snapmix import snapmix
from jaxmix._src.methods.snapmix import snapmix_labels
from jaxmix._src.methods.tokenmix import sample_tokenmix
from jaxmix._src.methods.tokenmix import tokenmix
from jaxmix._src.methods.tokenmix import tokenmix_labels
from jaxmix._src.train.alignmix import AlignMixPlan
from jaxmix._src.train.alignmix import alignmix_point
from jaxmix._src.train.alignmix import sample_alignmix
from jaxmix._src.train.alignmix import sinkhorn_align
from jaxmix._src.train.alignmix import transport_plan

__all__ = [
  "alignmix_point",
  "AlignMixPlan",
  "class_activation_map",
  "puzzlemix",
  "puzzlemix_saliency",
  "PuzzleMixPlan",
  "sample_puzzlemix",
  "sample_alignmix",
  "sample_snapmix",
  "sample_tokenmix",
  "snapmix",
  "snapmix_labels",
  "sinkhorn_align",
  "SnapMixPlan",
  "tokenmix",
  "tokenmix_labels",
  "transport_plan",
]
