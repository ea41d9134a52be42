"""The one name → method table.

Every image/spectrogram method of jaxmix is one :class:`Method` here: its plan
sampler, with the one signature ``sample_<m>(key, batch_size, spatial_shape=None,
*, ...)``, and its one-call form ``<m>(key, inputs, labels=None, *, ...)``.
:func:`jaxmix.choose`, :func:`jaxmix.mix_batches`, :func:`jaxmix.remix`, the
examples, the benchmarks, the notebooks and the contract test suite
(``tests/test_contract.py``) all read this table, so a method registered here is
usable by name and tested against the whole contract with no other change.

Family methods whose second argument is not a batch size (ClassMix takes label
maps, sequence MixUp a padding mask) and the Flax-side Manifold Mixup live in
their namespaces and are not registered. A registered method may also live in a
namespace (:attr:`Method.namespace`): C-Mixup is :mod:`jaxmix.regression`'s, TokenMix
:mod:`jaxmix.guided`'s. Methods whose plans or labels need a model's output at sampling time stay out:
TransMix's and TokenMix's teacher labels are label rules applied to any plan
(:func:`jaxmix.losses.transmix_labels`, :func:`jaxmix.guided.tokenmix_labels`), and SnapMix
(:func:`jaxmix.guided.sample_snapmix`) is not registered: its boxes need no model, but its labels are
the model's class activation maps' (:func:`jaxmix.guided.snapmix_labels`), so chosen by name it would
be area-weighted CutMix with a resize, not SnapMix.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import validation
from jaxmix._src.methods import attentive
from jaxmix._src.methods import audio
from jaxmix._src.methods import c_mixup
from jaxmix._src.methods import cutmix
from jaxmix._src.methods import fmix
from jaxmix._src.methods import gridmix
from jaxmix._src.methods import mixup
from jaxmix._src.methods import mosaic
from jaxmix._src.methods import multiway
from jaxmix._src.methods import resizemix
from jaxmix._src.methods import saliencymix
from jaxmix._src.methods import smoothmix
from jaxmix._src.methods import tokenmix


@dataclasses.dataclass(frozen=True)
class Method:
  """One registered method.

  Attributes:
    name: the registry key, also the one-call function's public name.
    sample: ``sample(key, batch_size, spatial_shape=None, *, ...) -> plan``.
    mix: the one-call form ``mix(key, inputs, labels=None, *, ...)``, or None
      when the method's one-call form takes other data than class labels
      (Mosaic's carries boxes: :func:`jaxmix.detection.mosaic`; C-Mixup's mixes
      regression targets: :func:`jaxmix.regression.c_mixup`).
    plan_type: the class of the plans ``sample`` returns. Only methods whose plans
      are two-source :class:`jaxmix.Plan` can be chosen between by
      :func:`jaxmix.choose` or used across batches by :func:`jaxmix.mix_batches`.
    spatial: True when ``sample`` needs ``spatial_shape``.
    modes: the ``mode`` values ``sample`` accepts; ``()`` when it takes no mode.
    requires: keyword options without a default (data the plan is drawn from,
      such as Attentive CutMix's ``features``).
    citation: the paper (and official code) the method follows.
    namespace: the public namespace that exports ``sample`` (and the one-call
      form), e.g. ``"regression"`` for :mod:`jaxmix.regression`; ``""`` for the
      top-level ``jaxmix``.
    volumes: how the method mixes rank-5 videos and volumes ``[B, T, H, W, C]``:
      the numbers of spatial dims its plans may have there, ``2`` for a 2-D
      plan on every frame (a tube), ``3`` for a cuboid (a 3-D
      ``spatial_shape``); ``()``: images only. The one-call form of a spatial
      method takes ``spatial_axes=`` exactly when this is not empty (MixUp
      has no regions: it mixes leaves of any rank and takes no axes).
  """

  name: str
  sample: Callable[..., Any]
  mix: Callable[..., Any] | None
  plan_type: type
  spatial: bool
  modes: tuple[str, ...]
  requires: tuple[str, ...] = ()
  citation: str = ""
  namespace: str = ""
  volumes: tuple[int, ...] = ()

  @property
  def two_source(self) -> bool:
    """True when the plans are two-source :class:`jaxmix.Plan` (choose, cross-batch, Remix)."""
    return self.plan_type is plan_lib.Plan


_ALL_MODES = validation.MODES
_METHODS = (
  Method(
    "mixup", mixup.sample_mixup, mixup.mixup, plan_lib.Plan, False, _ALL_MODES,
    citation="Zhang et al., mixup: Beyond Empirical Risk Minimization, ICLR 2018",
    volumes=(2, 3),
  ),
  Method(
    "cutmix", cutmix.sample_cutmix, cutmix.cutmix, plan_lib.Plan, True, _ALL_MODES,
    citation="Yun et al., CutMix, ICCV 2019 (clovaai/CutMix-PyTorch; timm's rand_bbox)",
    volumes=(2, 3),
  ),
  Method(
    "mixup_cutmix", cutmix.sample_mixup_cutmix, cutmix.mixup_cutmix, plan_lib.Plan, True, _ALL_MODES,
    citation="timm's Mixup switch (DeiT recipe: mixup 0.8, cutmix 1.0, switch 0.5)",
    volumes=(2, 3),
  ),
  Method(
    "fmix", fmix.sample_fmix, fmix.fmix, plan_lib.Plan, True, _ALL_MODES,
    citation="Harris et al., FMix: Enhancing Mixed Sample Data Augmentation, 2020 (ecs-vlc/FMix)",
    volumes=(2, 3),
  ),
  Method(
    "gridmix", gridmix.sample_gridmix, gridmix.gridmix, plan_lib.Plan, True, _ALL_MODES,
    citation="Baek, Bang, Shim, GridMix, Pattern Recognition 2021",
    volumes=(2, 3),
  ),
  Method(
    "smoothmix", smoothmix.sample_smoothmix, smoothmix.smoothmix, plan_lib.Plan, True, _ALL_MODES,
    citation="Lee et al., SmoothMix, CVPR Workshops 2020",
    volumes=(2, 3),
  ),
  Method(
    "saliencymix", saliencymix.sample_saliencymix, saliencymix.saliencymix, plan_lib.Plan, True,
    _ALL_MODES, requires=("saliency",),
    citation="Uddin et al., SaliencyMix, ICLR 2021 (afm-shahab-uddin/SaliencyMix)",
    volumes=(2, 3),
  ),
  Method(
    "attentive_cutmix", attentive.sample_attentive_cutmix, attentive.attentive_cutmix, plan_lib.Plan,
    True, _ALL_MODES, requires=("features",),
    citation="Walawalkar et al., Attentive CutMix, ICASSP 2020",
    volumes=(2, 3),
  ),
  Method(
    "specmix", audio.sample_specmix, audio.specmix, plan_lib.Plan, True, _ALL_MODES,
    citation="Kim, Han, Ko, SpecMix, Interspeech 2021",
  ),
  Method(
    "resizemix", resizemix.sample_resizemix, resizemix.resizemix, resizemix.ResizeMixPlan, True,
    _ALL_MODES, citation="Qin et al., ResizeMix, 2020 (OpenMixup)",
    volumes=(2, 3),
  ),
  Method(
    "multimix", multiway.sample_multimix, multiway.multimix, multiway.MultiPlan, False,
    multiway.MULTI_MODES,
    citation="k-way MixUp with Dirichlet weights (Shimada et al. 2019; Venkataramanan et al. 2022)",
  ),
  Method(
    "c_mixup", c_mixup.sample_c_mixup, None, plan_lib.Plan, False, c_mixup.C_MIXUP_MODES,
    requires=("targets",), namespace="regression",
    citation="Yao et al., C-Mixup: Improving Generalization in Regression, NeurIPS 2022 (huaxiuyao/C-Mixup)",
  ),
  Method(
    "tokenmix", tokenmix.sample_tokenmix, tokenmix.tokenmix, plan_lib.Plan, True, _ALL_MODES,
    namespace="guided",
    citation="Liu et al., TokenMix: Rethinking Image Mixing for Data Augmentation in Vision Transformers, "
    "ECCV 2022 (Sense-X/TokenMix)",
  ),
  Method(
    "mosaic", mosaic.sample_mosaic, None, mosaic.MosaicPlan, True, (),
    citation="Bochkovskiy et al., YOLOv4, 2020 (2x2 Mosaic)",
  ),
)

SAMPLERS: Mapping[str, Method] = types.MappingProxyType({m.name: m for m in _METHODS})


def lookup(name: str, *, argument: str = "methods", two_source: bool = False) -> Method:
  """The registered method called `name`; a ValueError naming `argument` otherwise.

  Args:
    name: a registry key such as ``"cutmix"``.
    argument: the caller's argument name, for the error message.
    two_source: only accept methods whose plans are two-source :class:`jaxmix.Plan`.

  Returns:
    The :class:`Method`.
  """
  names = tuple(n for n, m in SAMPLERS.items() if m.two_source or not two_source)
  if not isinstance(name, str) or name not in names:
    raise ValueError(f"{argument}: unknown method {name!r}; registered methods are {', '.join(names)}.")
  return SAMPLERS[name]
