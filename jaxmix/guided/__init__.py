"""Mixing guided by the model: methods whose masks or labels follow a vision transformer's tokens or a
network's class activation maps.

``tokenmix`` (TokenMix, Liu et al., ECCV 2022) pastes the partner on blocks of whole patch tokens;
``sample_tokenmix`` returns its plan, a :class:`jaxmix.Plan` (registered: ``jaxmix.choose`` takes
``"tokenmix"``), and ``tokenmix_labels`` weights the labels with a teacher's activation on each
source's tokens. TransMix's attention-weighted labels are :func:`jaxmix.losses.transmix_labels`.
"""

from jaxmix._src.methods.tokenmix import sample_tokenmix
from jaxmix._src.methods.tokenmix import tokenmix
from jaxmix._src.methods.tokenmix import tokenmix_labels

__all__ = [
  "sample_tokenmix",
  "tokenmix",
  "tokenmix_labels",
]
