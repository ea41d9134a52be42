"""Per-pixel targets: label maps under any plan, ClassMix, paired targets.

Label maps need their own rule. :func:`jaxmix.apply` blends every leaf and
rounds integer leaves back, which is right for uint8 images and wrong for
class ids under a soft weight (blending class 3 and class 7 at λ = 0.5 gives
class 5, which is in neither source). :func:`mix_label_maps` gives each pixel
the label of the source that dominates it, or per-pixel soft labels.

Paired targets (restoration, depth, multi-view) need nothing special: every
leaf of a pytree gets the same λ and partners, so one call mixes both::

    (clean, noisy), _ = jaxmix.mixup(key, (clean, noisy), alpha=0.4)

and the model still learns ``noisy -> clean`` on the mixed pair, since both
are the same convex combination of the same two samples. The same holds for
CutMix/FMix plans (the same region is pasted in both) and for an image with
its depth map.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import sampling
from jaxmix._src.core import validation


def _check_ignore_index(ignore_index: Any) -> None:
  if ignore_index is not None and not isinstance(ignore_index, (int, np.integer)):
    raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}.")


def _is_pure_blend(plan: Any) -> bool:
  return isinstance(plan, plan_lib.Plan) and plan.region is None and plan.mask is None


def _one_hot(maps: jax.Array, num_classes: int, ignore_index: int | None) -> jax.Array:
  hot = jax.nn.one_hot(maps, num_classes, dtype=jnp.float32)  # out-of-range ids give zeros
  if ignore_index is not None:
    hot = jnp.where((maps == ignore_index)[..., None], 0.0, hot)
  return hot


def mix_label_maps(
  plan: Any,
  maps: jax.typing.ArrayLike,
  *,
  num_classes: int | None = None,
  soft: bool = False,
  ignore_index: int | None = None,
  dominant: bool = False,
) -> jax.Array:
  """Mixes per-pixel label maps with the plan that mixed the images.

  Rules:

  * int maps `[B, H, W]`, ``soft=False``: each pixel takes the label of the
    source that dominates it: its own label where its own weight is
    ≥ 0.5 (ties go to the own sample), else the partner's. For binary-mask
    plans (CutMix, FMix, ClassMix, their boxes and masks) this is exactly the
    source whose pixel the image shows, so the map follows the image mask
    pixel for pixel and never holds a value absent from both sources.
    Ignored pixels (``ignore_index``) are copied like any label.
  * Plans that blend every pixel (MixUp, which has neither box nor mask)
    have no dominant source worth the name, so a hard map raises unless
    ``dominant=True`` asks for the rule above anyway; prefer ``soft=True``.
    For plans with soft masks (SmoothMix), and for the MixUp samples of
    timm's switch (:func:`jaxmix.sample_mixup_cutmix`, whose plan has a box
    field), the rule above is applied as stated; ``soft=True`` gives the
    exact mixture.
  * int maps with ``soft=True``: float32 `[B, H, W, K]`,
    ``w·onehot(own) + (1 − w)·onehot(partner)``. Ignored pixels add no
    mass, so each pixel's row sums to the weight of its labelled sources
    (use the sum as a per-pixel loss weight).
  * float maps `[B, H, W, K]` (soft labels, logits of a teacher): mixed with
    the pixel weights as :func:`jaxmix.apply` would, dtype kept.

  Plans that only select pixels (Mosaic) copy labels exactly for any rule.

  Args:
    plan: the plan used on the images (its spatial shape must be (H, W)).
    maps: int `[B, H, W]` or float `[B, H, W, K]`.
    num_classes: K, required for ``soft=True`` with int maps (static).
    soft: return per-pixel soft labels for int maps.
    ignore_index: the label of unlabelled pixels (e.g. 255), or None.
    dominant: allow a hard map from a plan that blends every pixel.

  Returns:
    int `[B, H, W]` (same dtype as `maps`) or float32 `[B, H, W, K]`.

  Example:
    >>> plan = jaxmix.sample_cutmix(key, 8, (32, 32))
    >>> images = jaxmix.apply(plan, images)
    >>> hard = jaxmix.segmentation.mix_label_maps(plan, seg)
    >>> soft = jaxmix.segmentation.mix_label_maps(plan, seg, num_classes=21, soft=True, ignore_index=255)
    >>> hard.shape, hard.dtype, soft.shape
    ((8, 32, 32), dtype('int32'), (8, 32, 32, 21))
  """
  plan_lib.check_plan(plan)
  _check_ignore_index(ignore_index)
  num_classes = validation.check_num_classes(num_classes)
  maps = jnp.asarray(maps)
  shape, dtype = maps.shape, maps.dtype
  is_int = jnp.issubdtype(dtype, jnp.integer)
  if is_int and len(shape) != 3:
    raise ValueError(f"integer label maps must be [B, H, W], got shape {shape}.")
  if not is_int and not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"maps must be integer ids [B, H, W] or float [B, H, W, K], got dtype {dtype}.")
  if not is_int and len(shape) != 4:
    raise ValueError(f"float label maps must be [B, H, W, K], got shape {shape}.")
  if shape[0] != plan.batch_size:
    raise ValueError(f"maps have batch size {shape[0]} but the plan was sampled for {plan.batch_size}.")
  spatial = plan.spatial_shape
  if spatial is not None and tuple(shape[1:3]) != tuple(spatial):
    raise ValueError(f"maps have spatial shape {shape[1:3]} but the plan was sampled for {tuple(spatial)}.")
  if not is_int:
    return plan_lib.apply(plan, maps, data_format="NHWC")
  if soft:
    if num_classes is None:
      raise ValueError("num_classes is required for soft=True with integer label maps.")
    hot = _one_hot(maps, validation.check_num_classes(num_classes, required=True), ignore_index)
    return plan_lib.apply(plan, hot, data_format="NHWC")
  if plan.selects_pixels:
    return plan_lib.apply(plan, maps)
  if _is_pure_blend(plan) and not dominant:
    raise ValueError(
      "This plan blends every pixel (MixUp), so a hard label map is ambiguous. Pass soft=True "
      "(with num_classes) for per-pixel soft labels, or dominant=True to take the source with "
      "weight >= 0.5."
    )
  w = plan.own_weight()
  partner = pairing_lib.take_partner(maps, plan.pairing, plan.index)
  return jnp.where(w >= 0.5, maps, partner).astype(dtype)


def sample_classmix(
  key: jax.Array,
  label_maps: jax.typing.ArrayLike,
  *,
  num_classes: int,
  ignore_index: int | None = None,
  prob: jax.typing.ArrayLike = 1.0,
  pairing: str = "flip",
) -> plan_lib.Plan:
  """Samples a ClassMix plan (Olsson et al. 2021, "ClassMix: Segmentation-Based Data Augmentation").

  Each sample gets the pixels of its partner whose class lies in a random
  half of the classes present in the partner's map: ``ceil(n / 2)`` of the
  ``n`` present classes, as in the official code (WilhelmT/ClassMix). The
  choice is jittable: presence is a `[B, K]` histogram and the half is the
  present classes with the lowest uniform scores, so no shape depends on
  the data.

  ``ignore_index`` pixels (and any id outside ``[0, K)``) are no class:
  they never count towards ``n`` and are never pasted, so the sample's own
  pixel shows there. A sample's own ignored pixels stay ignored unless a
  pasted class covers them. The plan's ``mask`` is binary, so images and
  label maps mixed with it stay aligned (:func:`mix_label_maps`).

  Args:
    key: PRNG key.
    label_maps: int `[B, H, W]`, the maps whose classes are chosen (ground
      truth, or pseudo-labels in semi-supervised training).
    num_classes: K (static).
    ignore_index: label of unlabelled pixels (e.g. 255), or None.
    prob: probability that a sample is mixed at all. Traced.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"`` (static).

  Returns:
    A :class:`jaxmix.Plan` with a binary float32 ``mask`` `[B, H, W]` (1
    where the sample keeps its own pixel) and ``lam`` its exact share.

  Example:
    >>> plan = jaxmix.segmentation.sample_classmix(key, seg, num_classes=21, ignore_index=255)
    >>> images = jaxmix.apply(plan, images)
    >>> seg = jaxmix.segmentation.mix_label_maps(plan, seg)
    >>> plan.mask.shape, seg.shape
    ((8, 32, 32), (8, 32, 32))
  """
  validation.check_key(key)
  validation.check_unit_interval("prob", prob)
  num_classes = validation.check_num_classes(num_classes, required=True)
  _check_ignore_index(ignore_index)
  validation.check_array("label_maps", label_maps, expected="int class ids [B, H, W]", rank=3)
  maps = jnp.asarray(label_maps)
  if not jnp.issubdtype(maps.dtype, jnp.integer):
    raise ValueError(f"label_maps must be int class ids [B, H, W], got dtype {maps.dtype}.")
  b, h, w = maps.shape
  if min(h, w) < 1:
    raise ValueError(f"label_maps must be int class ids [B, H, W] with H, W >= 1, got shape {maps.shape}.")
  k_pair, k_score, k_gate = jax.random.split(key, 3)
  index = sampling.partner_index(k_pair, b, pairing)
  ids = maps.astype(jnp.int32)
  is_class = (ids >= 0) & (ids < num_classes)
  if ignore_index is not None:
    is_class &= ids != ignore_index
  ids = jnp.where(is_class, ids, num_classes)  # bucket K: not a class
  flat = (ids + jnp.arange(b, dtype=jnp.int32)[:, None, None] * (num_classes + 1)).reshape(-1)
  counts = jnp.bincount(flat, length=b * (num_classes + 1)).reshape(b, num_classes + 1)
  present = counts[:, :num_classes] > 0
  n_pick = (present.sum(axis=1) + 1) // 2
  scores = jnp.where(present, jax.random.uniform(k_score, (b, num_classes)), 2.0)
  rank = jnp.argsort(jnp.argsort(scores, axis=1), axis=1)
  chosen = present & (rank < n_pick[:, None])
  chosen = jnp.concatenate([chosen, jnp.zeros((b, 1), bool)], axis=1)
  pasted_from_self = jnp.take_along_axis(chosen, ids.reshape(b, h * w), axis=1).reshape(b, h, w)
  pasted = pairing_lib.take_partner(pasted_from_self, pairing, index)
  on = sampling.gate(k_gate, prob, (b,))
  on &= ~pairing_lib.self_pairs(index)
  mask = jnp.where(on[:, None, None] & pasted, 0.0, 1.0).astype(jnp.float32)
  lam = mask.mean(axis=(1, 2))
  return plan_lib.Plan(
    lam=lam,
    index=index,
    blend=jnp.ones((b,), jnp.float32),
    mask=mask,
    pairing=pairing,
    spatial_shape=(h, w),
    selects_pixels=True,
  )


def classmix(
  key: jax.Array,
  inputs: Any,
  label_maps: jax.typing.ArrayLike,
  *,
  num_classes: int,
  ignore_index: int | None = None,
  prob: jax.typing.ArrayLike = 1.0,
  pairing: str = "flip",
  soft: bool = False,
  data_format: str = "NHWC",
) -> tuple[Any, jax.Array]:
  """ClassMix: paste the pixels of half the partner's classes, images and maps alike.

  Olsson et al. 2021 (WACV). See :func:`sample_classmix` for the rule.

  Args:
    key: PRNG key.
    inputs: images (or a pytree) sharing batch and spatial axes with
      `label_maps`.
    label_maps: int `[B, H, W]`.
    num_classes, ignore_index, prob, pairing: as in :func:`sample_classmix`.
    soft: return per-pixel soft labels `[B, H, W, K]` instead of a hard map.
    data_format: ``"NHWC"`` (default) or ``"NCHW"``.

  Returns:
    ``(mixed_inputs, mixed_label_maps)``.

  Example:
    >>> images, seg = jaxmix.segmentation.classmix(key, images, seg, num_classes=21, ignore_index=255)
    >>> seg.shape, seg.dtype
    ((8, 32, 32), dtype('int32'))
  """
  plan = sample_classmix(
    key, label_maps, num_classes=num_classes, ignore_index=ignore_index, prob=prob, pairing=pairing
  )
  mixed = plan_lib.apply(plan, inputs, data_format=data_format)
  maps = mix_label_maps(plan, label_maps, num_classes=num_classes, soft=soft, ignore_index=ignore_index)
  return mixed, maps
