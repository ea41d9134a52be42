"""Detection targets under two-source mixing: MixUp for detection, CutMix/FMix with boxes.

:func:`mix_boxes` carries padded boxes through any two-source plan (MixUp,
CutMix, FMix, ClassMix, the MixUp/CutMix switch, …). The output holds the
sample's own boxes, then its partner's: `[B, 2N, ...]`.

The rule, for a plan whose own-content weight at pixel (h, w) is ``w``:

* a box's *presence* is ``w`` for own boxes and ``1 − w`` for the partner's;
  a pixel shows the box's source where its presence is > 0;
* a box is kept (``valid``) when it was valid, the share of its area that
  shows its source is at least ``min_visibility``, and, if the mix cut it
  (its tight box below differs from the input box), that tight box is still
  at least ``min_size`` pixels wide and high — a tiny box the mix left
  whole stays;
* the output box is that tight bounding box (a partner box pasted by CutMix
  is thus clipped to the pasted rectangle; an own box that loses a whole
  side shrinks; an own box with a hole keeps its extent);
* its weight is the mean presence over its visible pixels: λ and 1 − λ
  under MixUp, 1 for binary masks (CutMix, FMix);
* a sample that is its own partner (odd batch under ``flip``) never gets its
  boxes twice: the partner copy is invalid;
* malformed rows are defined first (:func:`jaxmix._src.families.boxes.sanitize_boxes`):
  a row with a NaN or infinite coordinate, or inverted (x2 < x1 or
  y2 < y1), comes back as (0, 0, 0, 0), invalid, weight 0; boxes are
  clipped to the image, and one with no area inside it is invalid.

Plans without a region or mask (MixUp) skip the per-pixel work: boxes pass
unchanged with weights λ and 1 − λ (Zhang et al. 2019, "Bag of Freebies for
Training Object Detection Neural Networks", which blends with
λ ~ Beta(1.5, 1.5) and weights each box's loss by its image's share).
The visibility threshold follows YOLOv5's ``box_candidates`` (a box must keep
10% of its area and be wider and higher than 2 px).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import validation
from jaxmix._src.families import boxes as boxes_lib
from jaxmix._src.families import segmentation
from jaxmix._src.methods import cutmix as cutmix_lib
from jaxmix._src.methods import mixup as mixup_lib
from jaxmix._src.methods import mosaic as mosaic_lib
from jaxmix._src.methods import multiway
from jaxmix._src.methods import resizemix

# Box edges within this many pixels of an integer are read as that integer when pixels are counted.
SNAP = 1e-3


def _overlaps(lo: jax.Array, hi: jax.Array, size: int) -> jax.Array:
  """`[B, N, size]`: how much of each unit pixel [i, i+1) lies in [lo, hi)."""
  i = jnp.arange(size, dtype=jnp.float32)
  return jnp.clip(jnp.minimum(hi[..., None], i + 1) - jnp.maximum(lo[..., None], i), 0.0, 1.0)


def _tight(
  xyxy: jax.Array,
  ox: jax.Array,
  oy: jax.Array,
  col_shown: jax.Array,
  row_shown: jax.Array,
  weighted: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Tight boxes of the visible part, visible fraction and mean presence.

  Args:
    xyxy: pixel boxes `[B, N, 4]`, already clipped to the image.
    ox, oy: `[B, N, W]` / `[B, N, H]` overlap of each box with each column / row.
    col_shown: `[B, N, W]` visible height of each box in each column.
    row_shown: `[B, N, H]` visible width of each box in each row.
    weighted: `[B, N]` presence integrated over each box.
  """
  h, w = oy.shape[-1], ox.shape[-1]
  x1, y1, x2, y2 = (xyxy[..., i] for i in range(4))
  shown_area = jnp.sum(col_shown * ox, axis=-1)
  area = boxes_lib.box_area(xyxy)
  fraction = shown_area / jnp.maximum(area, 1e-12)
  weight = weighted / jnp.maximum(shown_area, 1e-12)
  # A column or row counts when more than SNAP of a pixel shows, so that float noise in the box edges
  # (2.9999998 for 3 after a format round trip) neither adds nor drops one.
  cols = (col_shown > SNAP) & (ox > SNAP)
  rows = (row_shown > SNAP) & (oy > SNAP)
  first_col = jnp.argmax(cols, axis=-1).astype(jnp.float32)
  last_col = (w - jnp.argmax(cols[..., ::-1], axis=-1)).astype(jnp.float32)
  first_row = jnp.argmax(rows, axis=-1).astype(jnp.float32)
  last_row = (h - jnp.argmax(rows[..., ::-1], axis=-1)).astype(jnp.float32)
  tight = jnp.stack(
    [
      jnp.maximum(x1, first_col),
      jnp.maximum(y1, first_row),
      jnp.minimum(x2, last_col),
      jnp.minimum(y2, last_row),
    ],
    axis=-1,
  )
  return tight, fraction, weight


def _visible(
  xyxy: jax.Array, presence: jax.Array, spatial_shape: tuple[int, int]
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """:func:`_tight` for any presence map `[B, H, W]` (masks): O(B·N·H·W)."""
  h, w = spatial_shape
  ox = _overlaps(xyxy[..., 0], xyxy[..., 2], w)  # [B, N, W]
  oy = _overlaps(xyxy[..., 1], xyxy[..., 3], h)  # [B, N, H]
  shows = (presence > 0).astype(jnp.float32)
  col_shown = jnp.einsum("bhw,bnh->bnw", shows, oy)  # visible height per column
  row_shown = jnp.einsum("bhw,bnw->bnh", shows, ox)  # visible width per row
  weighted = jnp.sum(jnp.einsum("bhw,bnh->bnw", presence, oy) * ox, axis=-1)
  return _tight(xyxy, ox, oy, col_shown, row_shown, weighted)


def _visible_in_box_plan(
  xyxy: jax.Array,
  outside: jax.Array,
  inside: jax.Array,
  rows_in: jax.Array,
  cols_in: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """:func:`_tight` for a presence that is `outside` off a rectangle and `inside` on it.

  A box plan's presence is ``outside + (inside − outside) · r[h] · c[w]``
  with `r`, `c` the rectangle's row and column indicators, so every sum
  over the image splits into sums over rows and over columns: O(B·N·(H+W))
  instead of a pass over the image per box.

  Args:
    xyxy: pixel boxes `[B, N, 4]`, already clipped to the image.
    outside, inside: `[B]` presence off and on the rectangle.
    rows_in, cols_in: float `[B, H]`, `[B, W]` rectangle indicators.
  """
  h, w = rows_in.shape[-1], cols_in.shape[-1]
  ox = _overlaps(xyxy[..., 0], xyxy[..., 2], w)  # [B, N, W]
  oy = _overlaps(xyxy[..., 1], xyxy[..., 3], h)  # [B, N, H]
  len_x, len_y = jnp.sum(ox, axis=-1), jnp.sum(oy, axis=-1)  # [B, N]
  in_x = jnp.sum(ox * cols_in[:, None, :], axis=-1)  # the box's width inside the rectangle
  in_y = jnp.sum(oy * rows_in[:, None, :], axis=-1)
  out_on = (outside > 0).astype(jnp.float32)[:, None, None]
  step = (inside > 0).astype(jnp.float32)[:, None, None] - out_on
  # When a box lies within the rectangle's band, len == in exactly (same sum), so a hidden column is 0.
  col_shown = out_on * len_y[..., None] + step * cols_in[:, None, :] * in_y[..., None]
  row_shown = out_on * len_x[..., None] + step * rows_in[:, None, :] * in_x[..., None]
  weighted = outside[:, None] * len_y * len_x + (inside - outside)[:, None] * in_y * in_x
  return _tight(xyxy, ox, oy, col_shown, row_shown, weighted)


def _keep(tight: jax.Array, xyxy: jax.Array, min_size: jax.typing.ArrayLike) -> jax.Array:
  """Boxes that kept their extent, or are still at least `min_size` wide and high."""
  min_size = jnp.asarray(min_size, jnp.float32) - SNAP  # a side within SNAP of min_size is min_size
  unchanged = jnp.all(jnp.abs(tight - xyxy) <= SNAP, axis=-1)  # within SNAP, as in _tight
  big = ((tight[..., 2] - tight[..., 0]) >= min_size) & ((tight[..., 3] - tight[..., 1]) >= min_size)
  return unchanged | big


def _check_plan(plan: Any) -> None:
  """A :class:`jaxmix.Plan`, or a TypeError that says what was passed and what to use."""
  if isinstance(plan, plan_lib.Plan):
    return
  if isinstance(plan, mosaic_lib.MosaicPlan):
    raise TypeError(
      "mix_boxes takes a two-source jaxmix.Plan; for a MosaicPlan use jaxmix.detection.mosaic_boxes."
    )
  if isinstance(plan, multiway.MultiPlan):
    raise TypeError("mix_boxes takes a two-source jaxmix.Plan; a MultiPlan blends k sources (not supported).")
  if isinstance(plan, resizemix.ResizeMixPlan):
    raise TypeError(
      "mix_boxes takes a two-source jaxmix.Plan; a ResizeMixPlan shrinks the partner into its box, "
      "which the partner's boxes would not follow (not supported)."
    )
  raise TypeError(
    "plan must be a jaxmix.Plan (from sample_mixup, sample_cutmix, sample_mixup_cutmix, sample_fmix, "
    f"sample_classmix, ...), got {type(plan).__name__}."
  )


def mix_boxes(
  plan: Any,
  boxes: jax.typing.ArrayLike,
  classes: jax.typing.ArrayLike,
  valid: jax.typing.ArrayLike | None = None,
  *,
  spatial_shape: tuple[int, int] | None = None,
  box_format: str = "xyxy",
  normalized: bool = False,
  min_visibility: jax.typing.ArrayLike = 0.1,
  min_size: jax.typing.ArrayLike = 2.0,
) -> boxes_lib.BoxTargets:
  """Boxes for an image batch mixed by a two-source plan (see the module rule).

  Shapes, dtypes and the plan's type are checked at trace time (ValueError
  or TypeError naming the argument); malformed values are defined at run
  time: a NaN, infinite or inverted box is an invalid row of zeros, boxes
  are clipped to the image (module docstring).

  Args:
    plan: a :class:`jaxmix.Plan` (MixUp, CutMix, FMix, ClassMix, …) used on
      the images; plans with a region or mask need their ``spatial_shape``.
      Other types (None, a dict, a MosaicPlan: use :func:`jaxmix.detection.mosaic_boxes`)
      raise a TypeError.
    boxes: float `[B, N, 4]` in `box_format`.
    classes: int `[B, N]`.
    valid: bool `[B, N]`, or None for ``classes >= 0``.
    spatial_shape: the images' (H, W); taken from the plan when it has one.
      Needed for normalised boxes and for clipping: a pure blend (MixUp)
      without it carries the boxes unclipped, in their own units.
    box_format: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"`` (static).
    normalized: coordinates are fractions of W and H (static).
    min_visibility: smallest share of a box's area that must still show its
      source (YOLOv5 uses 0.1). Traced.
    min_size: smallest width and height in pixels of a box the mix cut
      (YOLOv5: 2); boxes left whole are kept whatever their size. Traced.

  Returns:
    :class:`jaxmix.detection.BoxTargets` with `M = 2N` boxes: own ones, then the
    partner's, in the input's format and normalisation.

  Example:
    >>> plan = jaxmix.sample_cutmix(key, 8, (32, 32))
    >>> images = jaxmix.apply(plan, images)
    >>> targets = jaxmix.detection.mix_boxes(plan, boxes, classes, valid)
    >>> boxes.shape, targets.boxes.shape      # own boxes, then the partner's
    ((8, 3, 4), (8, 6, 4))
  """
  _check_plan(plan)
  validation.check_unit_interval("min_visibility", min_visibility)
  validation.check_nonnegative("min_size", min_size)
  boxes, classes, valid = boxes_lib.check_box_targets(boxes, classes, valid, plan.batch_size, "the plan has")
  plan_spatial = plan.spatial_shape
  if spatial_shape is not None:
    spatial_shape = validation.check_spatial_shape(spatial_shape)
    if plan_spatial is not None and tuple(plan_spatial) != spatial_shape:
      raise ValueError(f"spatial_shape {spatial_shape} differs from the plan's {tuple(plan_spatial)}.")
  else:
    spatial_shape = None if plan_spatial is None else tuple(plan_spatial)
  pure_blend = segmentation._is_pure_blend(plan)
  if not pure_blend and spatial_shape is None:
    raise ValueError(
      "mix_boxes needs spatial_shape (H, W) for a plan with a region or mask; this plan has none. "
      "Pass spatial_shape=(H, W)."
    )
  if plan.mask is not None and tuple(plan.mask.shape[1:]) != spatial_shape:
    raise ValueError(f"the plan's mask {plan.mask.shape} does not match spatial_shape {spatial_shape}.")
  if pure_blend and spatial_shape is None:
    # Nothing moves and the image size is unknown: carry the boxes in their own units.
    normalized = False
    xyxy = boxes_lib.to_xyxy(boxes, box_format)
  else:
    xyxy = boxes_lib.to_pixel_xyxy(boxes, box_format, normalized, spatial_shape)
  xyxy, valid = boxes_lib.sanitize_boxes(xyxy, valid, spatial_shape)
  b = plan.batch_size
  self_pair = pairing_lib.self_pairs(plan.index)
  p_xyxy = pairing_lib.take_partner(xyxy, plan.pairing, plan.index)
  p_classes = pairing_lib.take_partner(classes, plan.pairing, plan.index)
  p_valid = pairing_lib.take_partner(valid, plan.pairing, plan.index) & ~self_pair[:, None]
  if pure_blend:
    own_w = jnp.broadcast_to(plan.blend[:, None], valid.shape)
    part_w = 1.0 - own_w
    own_valid = valid & (own_w > 0)
    part_valid = p_valid & (part_w > 0)
    own_box, part_box = xyxy, p_xyxy
  else:
    assert spatial_shape is not None  # a plan with a region or mask without it was refused above
    min_visibility = jnp.asarray(min_visibility, jnp.float32)
    if plan.mask is None:
      # A pasted region (CutMix, the MixUp/CutMix switch): own weight `blend` off it, 0 on it.
      h, w = spatial_shape
      top, bottom, left, right = (plan.region[:, i, None] for i in range(4))
      rows_in = ((jnp.arange(h) >= top) & (jnp.arange(h) < bottom)).astype(jnp.float32)
      cols_in = ((jnp.arange(w) >= left) & (jnp.arange(w) < right)).astype(jnp.float32)
      outside = jnp.where(self_pair, 1.0, plan.blend).astype(jnp.float32)
      inside = jnp.where(self_pair, 1.0, 0.0)
      own_box, own_frac, own_w = _visible_in_box_plan(xyxy, outside, inside, rows_in, cols_in)
      part_box, part_frac, part_w = _visible_in_box_plan(
        p_xyxy, 1.0 - outside, 1.0 - inside, rows_in, cols_in
      )
    else:
      own = jnp.broadcast_to(plan.own_weight(), (b,) + spatial_shape)
      own_box, own_frac, own_w = _visible(xyxy, own, spatial_shape)
      part_box, part_frac, part_w = _visible(p_xyxy, 1.0 - own, spatial_shape)
    own_valid = valid & (own_frac >= min_visibility) & _keep(own_box, xyxy, min_size)
    part_valid = p_valid & (part_frac >= min_visibility) & _keep(part_box, p_xyxy, min_size)
    # Invalid rows keep their input box, so nothing nonsensical is left behind.
    own_box = jnp.where(own_valid[..., None], own_box, xyxy)
    part_box = jnp.where(part_valid[..., None], part_box, p_xyxy)
  out_box = jnp.concatenate([own_box, part_box], axis=1)
  out_valid = jnp.concatenate([own_valid, part_valid], axis=1)
  out_w = jnp.concatenate([own_w, part_w], axis=1)
  return boxes_lib.BoxTargets(
    boxes=boxes_lib.from_pixel_xyxy(out_box, box_format, normalized, spatial_shape),
    classes=jnp.concatenate([classes, p_classes], axis=1),
    valid=out_valid,
    weights=jnp.where(out_valid, out_w, 0.0).astype(jnp.float32),
  )


def mixup_detection(
  key: jax.Array,
  images: Any,
  boxes: jax.typing.ArrayLike,
  classes: jax.typing.ArrayLike,
  valid: jax.typing.ArrayLike | None = None,
  *,
  alpha: jax.typing.ArrayLike = 1.5,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "elem",
  pairing: str = "flip",
  box_format: str = "xyxy",
  normalized: bool = False,
  data_format: str = "NHWC",
) -> tuple[Any, boxes_lib.BoxTargets]:
  """MixUp for detection (Zhang et al. 2019, "Bag of Freebies").

  Images are blended ``λ x + (1 − λ) x_partner`` with λ ~ Beta(1.5, 1.5)
  (the paper's choice); both box sets are kept, `[B, 2N, ...]`, weighted λ
  (own) and 1 − λ (partner) so the loss can scale each box's term. One λ
  per sample (``mode="elem"``), as GluonCV's ``MixupDetection`` draws one
  per image pair. A sample that is its own partner keeps its boxes once.

  Args:
    key: PRNG key.
    images: `[B, H, W, C]` (or a pytree of such) to blend.
    boxes: float `[B, N, 4]` in `box_format`, clipped to the image; NaN,
      infinite or inverted rows come back invalid (see :func:`mix_boxes`).
    classes: int `[B, N]`.
    valid: bool `[B, N]`, or None for ``classes >= 0``.
    alpha: Beta concentration (1.5 in the paper; 0 turns mixing off). Traced.
      Edges as in :func:`jaxmix.sample_mixup` (≤ 0 or NaN: off; +inf:
      λ = 0.5).
    prob: probability that a sample is mixed at all. Traced.
    mode: ``"batch"``, ``"pair"`` or ``"elem"`` (static).
    pairing: ``"flip"``, ``"roll"`` or ``"permute"`` (static).
    box_format: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"`` (static).
    normalized: coordinates are fractions of W and H (static).
    data_format: ``"NHWC"`` (default) or ``"NCHW"``.

  Returns:
    ``(mixed_images, BoxTargets)`` with `2N` boxes per image.

  Example:
    >>> images, t = jaxmix.detection.mixup(key, images, boxes, classes, valid)
    >>> t.boxes.shape, t.weights.shape
    ((8, 6, 4), (8, 6))
    >>> per_box_loss = jnp.ones(t.weights.shape)    # a stand-in for the detector's loss of each box
    >>> loss = (t.weights * per_box_loss).sum()
  """
  batch_size = validation.batch_size_of(images, "images")
  spatial = validation.spatial_shape_of(images, data_format, "images", nonempty=True)
  boxes_lib.check_box_targets(boxes, classes, valid, batch_size)
  plan = mixup_lib.sample_mixup(key, batch_size, alpha=alpha, prob=prob, mode=mode, pairing=pairing)
  targets = mix_boxes(
    plan, boxes, classes, valid, spatial_shape=spatial, box_format=box_format, normalized=normalized
  )
  return plan_lib.apply(plan, images, data_format=data_format), targets


def cutmix_detection(
  key: jax.Array,
  images: Any,
  boxes: jax.typing.ArrayLike,
  classes: jax.typing.ArrayLike,
  valid: jax.typing.ArrayLike | None = None,
  *,
  alpha: jax.typing.ArrayLike = 1.0,
  prob: jax.typing.ArrayLike = 1.0,
  mode: str = "elem",
  pairing: str = "flip",
  min_visibility: jax.typing.ArrayLike = 0.1,
  min_size: jax.typing.ArrayLike = 2.0,
  box_format: str = "xyxy",
  normalized: bool = False,
  data_format: str = "NHWC",
) -> tuple[Any, boxes_lib.BoxTargets]:
  """CutMix with boxes: paste a box of the partner, carry both box sets.

  The partner's boxes inside the pasted rectangle are added, clipped to it;
  own boxes left with less than `min_visibility` of their area are dropped
  (rule in :mod:`jaxmix._src.families.detection`). For FMix or any other mask plan,
  call :func:`mix_boxes` with that plan.

  The pasted rectangle is :func:`jaxmix.sample_cutmix`'s box (jaxmix's one box
  rule, timm 1.0.31's ``rand_bbox``: exactly ``int(H·√(1-λ))`` ×
  ``int(W·√(1-λ))`` before clipping). Ultralytics' ``CutMix`` ends its box at
  ``c + cut//2`` (one pixel short on odd sides) and keeps, out of
  ``num_areas`` candidate boxes, one that covers no object; jaxmix does not
  search for an empty area.

  Args:
    key: PRNG key.
    images: `[B, H, W, C]` (or a pytree sharing batch and spatial axes).
    boxes, classes, valid: padded targets, see :func:`mix_boxes` (boxes are
      clipped to the image; NaN, infinite or inverted rows come back invalid).
    alpha, prob, mode, pairing: as in :func:`jaxmix.sample_cutmix`; one box
      per sample by default.
    min_visibility, min_size: see :func:`mix_boxes`. Traced.
    box_format, normalized: the box layout (static).
    data_format: ``"NHWC"`` (default) or ``"NCHW"``.

  Returns:
    ``(mixed_images, BoxTargets)`` with `2N` boxes per image.

  Example:
    >>> images, t = jaxmix.detection.cutmix(key, images, boxes, classes, valid)
    >>> t.boxes.shape, t.valid.dtype
    ((8, 6, 4), dtype('bool'))
  """
  batch_size = validation.batch_size_of(images, "images")
  spatial = validation.spatial_shape_of(images, data_format, "images", nonempty=True)
  boxes_lib.check_box_targets(boxes, classes, valid, batch_size)
  plan = cutmix_lib.sample_cutmix(
    key, batch_size, spatial, alpha=alpha, prob=prob, mode=mode, pairing=pairing
  )
  targets = mix_boxes(
    plan,
    boxes,
    classes,
    valid,
    box_format=box_format,
    normalized=normalized,
    min_visibility=min_visibility,
    min_size=min_size,
  )
  return plan_lib.apply(plan, images, data_format=data_format), targets
