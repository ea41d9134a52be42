"""SnapMix (Huang, Wang, Tao 2021, "SnapMix: Semantically Proportional Mixing for Augmenting
Fine-grained Data", AAAI 2021).

A box of the partner, of its own size, is resized (bilinear) into a box of the
sample; the label weights are the shares of each image's class activation map
(CAM) that end up in the mixed image, so they need not sum to 1.

The official code (github.com/Shaoli-Huang/SnapMix, ``utils/mixmethod.py``,
``snapmix`` and ``get_spm``), which jaxmix transcribes:

* the semantic percent map (``get_spm``): the CAM of each sample's own class
  (ReLU'd last feature map × the classifier's weights, the bias a constant),
  upsampled bilinearly to the image (``align_corners=False``), minus its
  minimum, divided by its sum (sum 1) — on the unmixed images, without
  gradient;
* two boxes with sides ``int(H·√(1−λ))``, ``int(W·√(1−λ))`` from two
  independent ``λ, λ₁ ~ Beta(β, β)`` and uniform centres, clipped: box A in
  the sample receives the partner's box B resized with ``F.interpolate(...,
  mode='bilinear', align_corners=True)``; one pair of boxes per batch, a
  random permutation as partners;
* ``λ_a = 1 − Σ_A S_a / Σ S_a`` (the own map's mass outside box A) and
  ``λ_b = Σ_B S_b / Σ S_b`` (the partner's map's mass inside box B); the loss
  is ``λ_a·CE(y_a) + λ_b·CE(y_b)`` (:func:`snapmix_labels` gives the soft
  labels ``λ_a·y_a + λ_b·y_b``, the same loss under cross-entropy);
* degenerate cases: no mixing when either box is empty (λ_a = 1, λ_b = 0);
  when the two labels are equal both weights become ``λ_a + λ_b``; a map
  that is constant (its sum 0 after the minimum is taken off: NaN there)
  gives the area weights instead, ``λ_a = 1 − |A|/(H·W)``, ``λ_b = |A|/(H·W)``;
* defaults: ``prob=1``, ``β=5`` ("we used the hyperparameter values
  (prob=1., beta=5) for SnapMix in most of the experiments", the README; the
  argparse default β is 1; ``prob=0.5`` when training from scratch).

Differences: boxes follow jaxmix's one box rule (``regions.centered_box``,
exactly ``cut_h × cut_w`` before clipping; the official ``rand_bbox`` ends
at ``c + cut//2``); partners are flip by default (``pairing="permute"`` is
the official random permutation); a pair or per-sample draw is available
(``mode``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import regions
from jaxmix._src.core import resample
from jaxmix._src.core import sampling
from jaxmix._src.core import validation

INTERPOLATIONS = ("bilinear", "nearest")


def _source_coords(
  start: jax.Array, stop: jax.Array, src_start: jax.Array, src_stop: jax.Array, size: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Where output position ``i`` of ``[start, stop)`` samples ``[src_start, src_stop)``: torch's
  ``align_corners=True`` bilinear, ``src = src_start + (i − start)·(n_src − 1)/(n − 1)`` (0 for n = 1).

  Returns ``(i0, i1, frac)``, int32/int32/float32 `[B, size]`, indices inside the source range
  (and the axis); positions outside the box get valid, unused values.
  """
  n = jnp.maximum(stop - start, 1).astype(jnp.float32)[:, None]
  n_src = jnp.maximum(src_stop - src_start, 1).astype(jnp.float32)[:, None]
  scale = jnp.where(n > 1, (n_src - 1) / jnp.maximum(n - 1, 1), 0.0)
  k = (jnp.arange(size, dtype=jnp.int32)[None, :] - start[:, None]).astype(jnp.float32)
  src = jnp.maximum(k, 0.0) * scale
  base = jnp.floor(src)
  frac = src - base
  last = (src_stop - 1)[:, None]
  i0 = jnp.clip(src_start[:, None] + base.astype(jnp.int32), 0, size - 1)
  i0 = jnp.clip(jnp.minimum(i0, last), 0, size - 1)
  i1 = jnp.clip(jnp.minimum(i0 + 1, last), 0, size - 1)
  frac = jnp.where(i1 == i0, 0.0, frac)
  return i0, i1, frac


def _resample(
  x: jax.Array, coords: tuple[jax.Array, jax.Array, jax.Array], axis: int, nearest: bool
) -> jax.Array:
  i0, i1, frac = coords
  if nearest:
    return resample.take_along(x, jnp.where(frac >= 0.5, i1, i0), axis)
  return resample.two_taps(x, i0, i1, frac, axis)


@struct.dataclass
class SnapMixPlan(plan_lib.PlanLike):
  """A SnapMix plan: the partner's box `source` resized into the sample's box `region`.

  Outside `region` a sample keeps its own pixels exactly; inside, pixel ``(h,
  w)`` interpolates the partner around row ``source_top + (h − top)·(source_h
  − 1)/(box_h − 1)`` (likewise columns), torch's bilinear with
  ``align_corners=True`` as the official code resizes.

  ``lam`` is the exact share of own pixels (``1 − |A|/(H·W)``), so
  :func:`jaxmix.mix_labels` gives area labels (the official ``as_cutmix``
  weights); SnapMix's own weights come from the CAMs, with
  :func:`snapmix_labels`.

  Attributes:
    lam: float32 `[B]`, the exact share of own pixels.
    index: int32 `[B]`, each sample's partner.
    region: int32 `[B, 4]` (top, bottom, left, right), half-open: box A, which
      receives the partner's content; empty when the sample is not mixed.
    source: int32 `[B, 4]`: box B, in the partner, that is resized into box A.
    pairing: "flip", "roll" or "permute" (static).
    spatial_shape: (H, W) (static).
    interpolation: ``"bilinear"`` (official) or ``"nearest"`` (the rounded
      source position; what integer leaves, e.g. label maps, are read with). Static.
  """

  lam: jax.Array
  index: jax.Array
  region: jax.Array
  source: jax.Array
  pairing: str = struct.field(pytree_node=False, default="flip")
  spatial_shape: tuple[int, int] | None = struct.field(pytree_node=False, default=None)
  interpolation: str = struct.field(pytree_node=False, default="bilinear")

  @property
  def selects_pixels(self) -> bool:
    """True for ``"nearest"``: every output pixel is a copy of one input pixel."""
    return self.interpolation == "nearest"

  def for_integer_leaves(self) -> SnapMixPlan:
    """The plan for label maps: nearest, never interpolated."""
    return self.replace(interpolation="nearest")

  def own_weight(self) -> jax.Array:
    """Own-content weight float32 `[B, H, W]`: 0 inside the region, 1 outside."""
    assert self.spatial_shape is not None  # sample_snapmix always sets it
    return 1.0 - regions.region_mask(self.region, self.spatial_shape).astype(jnp.float32)

  def mix_leaf(self, x: jax.Array, data_format: str) -> jax.Array:
    """Mixes one leaf (already in its compute dtype)."""
    assert self.spatial_shape is not None
    partner = pairing_lib.take_partner(x, self.pairing, self.index)
    h_axis, w_axis = validation.spatial_axes(x.ndim, data_format)
    h, w = self.spatial_shape
    a = [self.region[:, i] for i in range(4)]
    b = [self.source[:, i] for i in range(4)]
    nearest = self.interpolation == "nearest"
    rows = _source_coords(a[0], a[1], b[0], b[1], h)
    cols = _source_coords(a[2], a[3], b[2], b[3], w)
    resized = _resample(_resample(partner, rows, h_axis, nearest), cols, w_axis, nearest)
    inside = regions.expand_spatial(regions.region_mask(self.region, self.spatial_shape), x.ndim, data_format)
    return jnp.where(inside, resized, x)

  def mix_labels(self, y: jax.Array) -> jax.Array:
    return pairing_lib.blend_with_partner(y, self.lam, self.pairing, self.index)


def _draw_box(key: jax.Array, lam: jax.Array, spatial_shape: tuple[int, int]) -> tuple[jax.Array, jax.Array]:
  h, w = spatial_shape
  k_y, k_x = jax.random.split(key)
  cut_h, cut_w = regions.scaled_sides(jnp.sqrt(1.0 - lam), spatial_shape)
  cy = jax.random.randint(k_y, lam.shape, 0, h)
  cx = jax.random.randint(k_x, lam.shape, 0, w)
  return regions.centered_box(cy, cx, cut_h, cut_w, spatial_shape)


def sample_snapmix(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, int] | None = None,
  *,
  alpha: jax.typing.ArrayLike = 5.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  interpolation: str = "bilinear",
) -> SnapMixPlan:
  """Samples a SnapMix plan: two boxes of independent sizes, the partner's resized into the sample's.

  Huang, Wang, Tao, AAAI 2021; official code github.com/Shaoli-Huang/SnapMix
  (the rule and its defaults are in the module docstring). The boxes do not
  need the model; the label weights do: :func:`snapmix_labels`. Not in
  ``jaxmix.SAMPLERS``: chosen by name, its labels would be the area's, not SnapMix's.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: (H, W) (static).
    alpha: β of the two ``Beta(β, β)`` draws of box sizes; 5 (the README's
      setting). Traced.
    prob: probability that a batch (or sample) is mixed; 1 (official). Traced.
    mode: ``"batch"`` (one pair of boxes, official), ``"pair"`` or ``"elem"``. Static.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"`` (the official random
      permutation). Static.
    interpolation: ``"bilinear"`` (official, ``align_corners=True``) or
      ``"nearest"``. Static.

  Returns:
    A :class:`SnapMixPlan`.

  Example:
    >>> plan = jaxmix.guided.sample_snapmix(key, 8, (32, 32))
    >>> images = jaxmix.apply(plan, images)
    >>> plan.region.shape, plan.source.shape
    ((8, 4), (8, 4))
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  validation.check_nonnegative("alpha", alpha)
  validation.check_unit_interval("prob", prob)
  validation.check_choice("mode", mode, validation.MODES)
  validation.check_choice("pairing", pairing, validation.PAIRINGS)
  validation.check_choice("interpolation", interpolation, INTERPOLATIONS)
  spatial_shape = validation.check_spatial_shape(spatial_shape)
  n = sampling.num_draws(mode, batch_size)
  k_pair, k_lam, k_a, k_b, k_gate = jax.random.split(key, 5)
  index = sampling.partner_index(k_pair, batch_size, pairing, involution=mode == "pair")
  lams = sampling.beta(k_lam, alpha, (2, n))
  box_a, lam = _draw_box(k_a, lams[0], spatial_shape)
  box_b, lam_b = _draw_box(k_b, lams[1], spatial_shape)
  # Official: nothing is mixed unless both boxes hold a pixel.
  on = sampling.gate(k_gate, prob, (n,)) & (lam < 1) & (lam_b < 1)
  box_a = sampling.per_sample(jnp.where(on[:, None], box_a, 0), mode, index, pairing)
  box_b = sampling.per_sample(jnp.where(on[:, None], box_b, 0), mode, index, pairing)
  lam = sampling.per_sample(jnp.where(on, lam, 1.0), mode, index, pairing)
  own = pairing_lib.self_pairs(index)
  return SnapMixPlan(
    lam=jnp.where(own, 1.0, lam),
    index=index,
    region=jnp.where(own[:, None], 0, box_a),
    source=jnp.where(own[:, None], 0, box_b),
    pairing=pairing,
    spatial_shape=spatial_shape,
    interpolation=interpolation,
  )


def class_activation_map(
  features: jax.typing.ArrayLike,
  kernel: jax.typing.ArrayLike,
  labels: jax.typing.ArrayLike,
) -> jax.Array:
  """Each sample's class activation map for its own class: ``ReLU(features) · kernel[:, label]``.

  As SnapMix's ``get_spm`` computes it (Zhou et al.'s CAM): the last feature
  map before global average pooling, ReLU'd, through the classifier's weights
  of the sample's class. The classifier's bias is a constant over the map, so
  it does not change the semantic percent map and is not taken.

  Args:
    features: float `[B, h, w, C]`, the feature map (channels last, as Flax's).
    kernel: float `[C, K]`, the classifier's weights (a Flax ``nn.Dense`` kernel).
    labels: int class ids `[B]` in ``[0, K)``.

  Returns:
    float32 `[B, h, w]`.

  Example:
    >>> features = jax.random.normal(key, (8, 4, 4, 16))
    >>> kernel = jax.random.normal(key, (16, 10))
    >>> jaxmix.guided.class_activation_map(features, kernel, labels).shape
    (8, 4, 4)
  """
  validation.check_array("features", features, expected="a feature map [B, h, w, C]", dtype=jnp.floating)
  validation.check_array("features", features, expected="a feature map [B, h, w, C]", rank={4})
  b, _, _, c = jnp.shape(features)
  validation.check_array("kernel", kernel, expected=f"classifier weights [C, K] with C = {c}", rank={2})
  if jnp.shape(kernel)[0] != c:
    raise ValueError(f"kernel must be [C, K] with C = {c} (the features' channels), got {jnp.shape(kernel)}.")
  labels = validation.numbers_as_array(labels)
  validation.check_array("labels", labels, expected=f"int class ids [B] with B = {b}", dtype=jnp.integer)
  validation.check_array("labels", labels, expected=f"int class ids [B] with B = {b}", rank={1}, batch_size=b)
  validation.check_class_ids("labels", labels, jnp.shape(kernel)[1])
  weights = jnp.take(jnp.asarray(kernel, jnp.float32), jnp.asarray(labels), axis=1)  # [C, B]
  relu = jax.nn.relu(jnp.asarray(features, jnp.float32))
  return jax.lax.stop_gradient(jnp.einsum("bhwc,cb->bhw", relu, weights))


def semantic_percent_map(cam: jax.Array, spatial_shape: tuple[int, int]) -> tuple[jax.Array, jax.Array]:
  """`[B, H, W]`: the CAM upsampled bilinearly (half-pixel centres), minus its minimum, over its sum; and
  bool `[B]`, True where the sum is 0 (the official map is NaN there)."""
  b = cam.shape[0]
  up = jax.image.resize(cam, (b, *spatial_shape), method="linear", antialias=False)
  up = up - up.min(axis=(1, 2), keepdims=True)
  total = up.sum(axis=(1, 2), keepdims=True)
  flat = total[:, 0, 0] <= 0
  return up / jnp.where(total > 0, total, 1.0), flat


def snapmix_labels(
  plan: SnapMixPlan,
  cam: jax.typing.ArrayLike,
  labels: Any,
  *,
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
) -> Any:
  """SnapMix's soft labels: each source weighted by the share of its CAM in the mixed image.

  With ``S`` the semantic percent maps (each sample's CAM of its own class on
  the unmixed images, upsampled to (H, W), minimum taken off, sum 1), box A
  (``plan.region``) and box B (``plan.source``)::

      λ_a = 1 − Σ_A S_b / (Σ S_b + 1e−8)            (the own map outside box A)
      λ_b = Σ_B S_p / (Σ S_p + 1e−8)                (the partner's map inside box B)
      label = λ_a · y_b + λ_b · y_partner

  as the official code (github.com/Shaoli-Huang/SnapMix, ``snapmix``). The
  weights do not sum to 1, so neither does a row. Official degenerate cases:
  a sample whose label equals its partner's (equal rows of the smoothed
  labels) gets ``λ_a + λ_b`` for both weights (its loss ``λ_a·CE + λ_b·CE``
  with both targets the same: so the row's mass is ``2(λ_a + λ_b)``); a
  constant map gives the area weights ``lam``, ``1 − lam``; an unmixed sample
  keeps its label. Smoothing is applied to each label before weighting.

  Args:
    plan: the :class:`SnapMixPlan` that mixed the images.
    cam: float `[B, h, w]`: each sample's class activation map for its own
      class, from the unmixed images (:func:`class_activation_map`), at any
      resolution; read through ``stop_gradient``.
    labels: int class ids `[B]` (with `num_classes`) or float `[B, K]`, or a
      pytree of them.
    num_classes: K for integer labels (static).
    label_smoothing: applied to each label before weighting. Traced.

  Returns:
    float32 soft labels `[B, K]` (a pytree of them for a pytree of labels).

  Example:
    >>> plan = jaxmix.guided.sample_snapmix(key, 8, (32, 32))
    >>> cam = jax.random.uniform(key, (8, 4, 4))      # e.g. class_activation_map(features, kernel, labels)
    >>> images = jaxmix.apply(plan, images)
    >>> targets = jaxmix.guided.snapmix_labels(plan, cam, labels, num_classes=10)
    >>> targets.shape
    (8, 10)
  """
  if not isinstance(plan, SnapMixPlan):
    raise TypeError(f"plan must be a SnapMixPlan (from sample_snapmix), got {type(plan).__name__}.")
  b = plan.batch_size
  expected = f"each sample's class activation map [B, h, w] with B = {b}"
  validation.check_array("cam", cam, expected=expected, dtype=jnp.floating)
  validation.check_array("cam", cam, expected=expected, rank={3}, batch_size=b)
  if b and min(jnp.shape(cam)[1:]) < 1:
    raise ValueError(f"cam must have at least one position, got shape {jnp.shape(cam)}.")
  assert plan.spatial_shape is not None
  spm, flat = semantic_percent_map(jax.lax.stop_gradient(jnp.asarray(cam, jnp.float32)), plan.spatial_shape)
  in_a = regions.region_mask(plan.region, plan.spatial_shape)
  in_b = regions.region_mask(plan.source, plan.spatial_shape)
  total = spm.sum(axis=(1, 2))
  spm_p = pairing_lib.take_partner(spm, plan.pairing, plan.index)
  total_p = pairing_lib.take_partner(total, plan.pairing, plan.index)
  flat_p = pairing_lib.take_partner(flat, plan.pairing, plan.index)
  lam_a = 1.0 - jnp.where(in_a, spm, 0.0).sum(axis=(1, 2)) / (total + 1e-8)
  lam_b = jnp.where(in_b, spm_p, 0.0).sum(axis=(1, 2)) / (total_p + 1e-8)
  mixed = plan.lam < 1

  def weigh(y: jax.Array) -> jax.Array:
    partner = pairing_lib.take_partner(y, plan.pairing, plan.index)
    same = jnp.all(y == partner, axis=-1)
    a = jnp.where(same, lam_a + lam_b, lam_a)
    p = jnp.where(same, lam_a + lam_b, lam_b)
    # The official NaN of a flat map reaches both weights through the same-label sum.
    a = jnp.where(flat | (same & flat_p), plan.lam, a)
    p = jnp.where(flat_p | (same & flat), 1.0 - plan.lam, p)
    a, p = jnp.where(mixed, a, 1.0), jnp.where(mixed, p, 0.0)
    return pairing_lib.weigh_with_partner(y, a, p, plan.pairing, plan.index)

  return plan_lib.map_soft_labels(weigh, b, labels, num_classes=num_classes, label_smoothing=label_smoothing)


def snapmix(
  key: jax.Array,
  inputs: Any,
  labels: jax.typing.ArrayLike | None = None,
  *,
  cam: jax.typing.ArrayLike,
  alpha: jax.typing.ArrayLike = 5.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "batch",
  pairing: str = "flip",
  interpolation: str = "bilinear",
  num_classes: int | None = None,
  label_smoothing: jax.typing.ArrayLike = 0.0,
  data_format: str = "NHWC",
) -> tuple[Any, Any]:
  """SnapMix: the partner's box resized into the sample's box; labels by the CAM mass each keeps.

  Huang, Wang, Tao, AAAI 2021 (github.com/Shaoli-Huang/SnapMix): sample
  (:func:`sample_snapmix`), apply, and :func:`snapmix_labels`. The CAM comes
  from the model being trained, on the unmixed batch: an extra forward pass
  without gradient, e.g. ``cam = class_activation_map(features, kernel, labels)``.

  Args:
    key: PRNG key.
    inputs: an array or pytree of arrays sharing batch and spatial axes.
    labels: int ids `[B]` (with `num_classes`), float `[B, K]`, or None.
    cam: float `[B, h, w]`, each sample's class activation map for its own class.
    alpha, prob, mode, pairing, interpolation: as in :func:`sample_snapmix`.
    num_classes: K for integer labels (static).
    label_smoothing: applied before weighting. Traced.
    data_format: ``"NHWC"`` (default) or ``"NCHW"``.

  Returns:
    ``(mixed_inputs, soft_labels)``; a row's mass is ``λ_a + λ_b``, not 1.

  Example:
    >>> cam = jax.random.uniform(key, (8, 4, 4))
    >>> images, targets = jaxmix.guided.snapmix(key, images, labels, cam=cam, num_classes=10)
    >>> targets.shape
    (8, 10)
  """
  batch_size = validation.batch_size_of(inputs)
  shape = validation.spatial_shape_of(inputs, data_format, nonempty=True)
  plan = sample_snapmix(
    key, batch_size, shape, alpha=alpha, prob=prob, mode=mode, pairing=pairing, interpolation=interpolation
  )
  targets = None
  if labels is not None:
    targets = snapmix_labels(plan, cam, labels, num_classes=num_classes, label_smoothing=label_smoothing)
  return plan_lib.apply(plan, inputs, data_format=data_format), targets
