"""Mosaic for detection: the images of a :class:`MosaicPlan` with their boxes.

See :mod:`jaxmix._src.methods.mosaic` for the geometry. Boxes are translated
by the same shift as the pixels, clipped to their slot, and dropped
(``valid=False``) when less than `min_visibility` of their area survives or
the crop cut them to less than `min_size` pixels wide or high (YOLOv5's
``box_candidates``: 10% and 2 px; unlike YOLOv5, a tiny box the crop left
whole is kept, as in :func:`jaxmix.detection.mix_boxes`). Output boxes are
`[B, 4N, ...]`, slot by slot. Malformed rows are defined as in
:func:`jaxmix.detection.mix_boxes`: a NaN, infinite or inverted box becomes an invalid
row of zeros, and boxes are clipped to their image first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import validation
from jaxmix._src.families import affine_detection
from jaxmix._src.families import boxes as boxes_lib
from jaxmix._src.families import partner_cache
from jaxmix._src.methods import mosaic as mosaic_lib


def mosaic_boxes(
  plan: mosaic_lib.MosaicPlan,
  boxes: jax.typing.ArrayLike,
  classes: jax.typing.ArrayLike,
  valid: jax.typing.ArrayLike | None = None,
  *,
  box_format: str = "xyxy",
  normalized: bool = False,
  min_visibility: jax.typing.ArrayLike = 0.1,
  min_size: jax.typing.ArrayLike = 2.0,
) -> boxes_lib.BoxTargets:
  """Boxes after a mosaic: translated, clipped to their slot, filtered.

  Args:
    plan: a :class:`jaxmix.MosaicPlan` with its ``spatial_shape`` (as
      :func:`jaxmix.sample_mosaic` makes it); `boxes` refer to images of
      that size. Another type is a TypeError, a missing size a ValueError.
    boxes: float `[B, N, 4]` in `box_format`.
    classes: int `[B, N]`.
    valid: bool `[B, N]`, or None for ``classes >= 0``.
    box_format, normalized: the box layout (static).
    min_visibility: smallest share of a box's area (clipped to its image)
      that must survive the crop (YOLOv5: 0.1). Traced.
    min_size: smallest width and height in pixels of a box the crop cut
      (YOLOv5: 2); whole boxes are kept whatever their size. Traced.

  Returns:
    :class:`jaxmix.detection.BoxTargets` with `4N` boxes, slot by slot, weights 1 for
    valid boxes.
  """
  if not isinstance(plan, mosaic_lib.MosaicPlan):
    raise TypeError(
      f"mosaic_boxes needs a jaxmix.MosaicPlan (from jaxmix.sample_mosaic), got {type(plan).__name__}."
    )
  if plan.spatial_shape is None:
    raise ValueError(
      "mosaic_boxes needs the MosaicPlan's spatial_shape (H, W), and this plan has spatial_shape=None; "
      "make it with jaxmix.sample_mosaic(key, batch_size, (H, W)) or plan.replace(spatial_shape=(H, W))."
    )
  validation.check_unit_interval("min_visibility", min_visibility)
  validation.check_nonnegative("min_size", min_size)
  boxes, classes, valid = boxes_lib.check_box_targets(boxes, classes, valid, plan.batch_size, "the plan has")
  h, w = validation.check_spatial_shape(plan.spatial_shape)
  xyxy, valid = boxes_lib.sanitize_boxes(
    boxes_lib.to_pixel_xyxy(boxes, box_format, normalized, (h, w)), valid, (h, w)
  )
  slots = [(plan.source(xyxy, k), plan.source(valid, k), plan.source(classes, k)) for k in range(4)]
  return _crop_boxes(plan.center, (h, w), slots, min_visibility, min_size, box_format, normalized)


def _crop_boxes(
  center: jax.Array,
  spatial: tuple[int, int],
  slots: list[tuple[jax.Array, jax.Array, jax.Array]],
  min_visibility: Any,
  min_size: Any,
  box_format: str,
  normalized: bool,
) -> boxes_lib.BoxTargets:
  """The 2×2 crop's boxes: each slot's (pixel xyxy, valid, classes) of its source, moved and filtered."""
  h, w = spatial
  cy = center[:, 0].astype(jnp.float32)[:, None]
  cx = center[:, 1].astype(jnp.float32)[:, None]
  zero = jnp.zeros_like(cy)
  min_visibility = jnp.asarray(min_visibility, jnp.float32)
  min_size = jnp.asarray(min_size, jnp.float32)
  out_boxes, out_classes, out_valid = [], [], []
  for slot, (src, keep, cls) in enumerate(slots):
    top, left = slot < 2, slot % 2 == 0
    dy = cy - h if top else cy
    dx = cx - w if left else cx
    y_lo, y_hi = (zero, cy) if top else (cy, zero + h)
    x_lo, x_hi = (zero, cx) if left else (cx, zero + w)
    x1 = jnp.clip(src[..., 0] + dx, x_lo, x_hi)
    y1 = jnp.clip(src[..., 1] + dy, y_lo, y_hi)
    x2 = jnp.clip(src[..., 2] + dx, x_lo, x_hi)
    y2 = jnp.clip(src[..., 3] + dy, y_lo, y_hi)
    moved = jnp.stack([x1, y1, x2, y2], axis=-1)
    keep &= boxes_lib.box_area(moved) >= min_visibility * boxes_lib.box_area(src)
    keep &= boxes_lib.box_area(moved) > 0
    whole = jnp.all(moved == src + jnp.stack([dx, dy, dx, dy], axis=-1), axis=-1)
    keep &= whole | ((x2 - x1 >= min_size) & (y2 - y1 >= min_size))
    out_boxes.append(moved)
    out_classes.append(cls)
    out_valid.append(keep)
  kept = jnp.concatenate(out_valid, axis=1)
  return boxes_lib.BoxTargets(
    boxes=boxes_lib.from_pixel_xyxy(jnp.concatenate(out_boxes, axis=1), box_format, normalized, (h, w)),
    classes=jnp.concatenate(out_classes, axis=1),
    valid=kept,
    weights=kept.astype(jnp.float32),
  )


def _resize_leaf(x: jax.Array, size: tuple[int, int], data_format: str) -> jax.Array:
  x = jnp.asarray(x)
  h_axis, w_axis = validation.spatial_axes(x.ndim, data_format)
  shape = list(x.shape)
  shape[h_axis], shape[w_axis] = size
  if jnp.issubdtype(x.dtype, jnp.integer):
    if x.ndim == 3:  # label maps: nearest, so no new ids appear
      return jax.image.resize(x, shape, "nearest")
    info = jnp.iinfo(x.dtype)
    out = jnp.round(jax.image.resize(x.astype(jnp.float32), shape, "linear"))
    return jnp.clip(out, info.min, info.max).astype(x.dtype)
  return jax.image.resize(x, shape, "linear").astype(x.dtype)


def mosaic(
  key: jax.Array,
  images: Any,
  boxes: jax.typing.ArrayLike,
  classes: jax.typing.ArrayLike,
  valid: jax.typing.ArrayLike | None = None,
  *,
  output_size: tuple[int, int] | None = None,
  center_range: tuple[jax.typing.ArrayLike, jax.typing.ArrayLike] = (0.0, 1.0),
  prob: jax.typing.ArrayLike = 1.0,
  pairing: str = "roll",
  min_visibility: jax.typing.ArrayLike = 0.1,
  min_size: jax.typing.ArrayLike = 2.0,
  box_format: str = "xyxy",
  normalized: bool = False,
  data_format: str = "NHWC",
  tiles: int = 4,
  canvas_scale: float | None = None,
  affine: affine_detection.Affine | dict | None = None,
  max_aspect: jax.typing.ArrayLike = 100.0,
  interpolation: str = "bilinear",
  fill_value: Any = 114,
  partners: Sequence[tuple[Any, ...]] | None = None,
) -> tuple[Any, boxes_lib.BoxTargets]:
  """Mosaic for detection: four images in a 2×2 grid, boxes carried along.

  Two forms. The default crops a 2×2 mosaic at the input size (below). With
  `canvas_scale`, ``tiles=9`` or `affine` it is the YOLO Mosaic as
  ultralytics, YOLOv5 and YOLOX run it (see
  :mod:`jaxmix._src.families.affine_detection`): 4 tiles around a centre
  ~ U(s/2, 3s/2) on a 2s × 2s canvas filled with `fill_value` (114), or 9
  tiles (``_mosaic9``) cropped to 2s × 2s, then a random affine
  (:class:`jaxmix.detection.Affine`; ``affine=Affine()`` is ultralytics'
  defaults: translate 0.1, scale 0.5) back to s × s, computed as one inverse
  map from the output pixels to the source images, so the canvas is never
  built. Boxes go through their four corners, are clipped to the output and
  kept by ``box_candidates`` (width and height > `min_size`, area >
  `min_visibility` of the zoomed box, aspect < `max_aspect`); output boxes
  are `[B, tiles·N]`, slot by slot. ``affine=None`` with a canvas is the
  central s × s crop of the canvas. A sample left out by `prob` comes back
  unchanged, its own boxes too (unlike ultralytics, which still warps it).

  See the module docstring for the geometry. With `output_size` the images
  are first resized to it (``jax.image.resize``: linear for images, nearest
  for int `[B, H, W]` label maps) and the boxes scaled to match, so the
  mosaic is built at the output resolution. For classification targets use
  the plan: ``jaxmix.mix_labels(jaxmix.sample_mosaic(...), labels)`` gives
  area-weighted soft labels.

  Args:
    key: PRNG key.
    images: `[B, H, W, C]` (or a pytree sharing batch and spatial axes).
    boxes: float `[B, N, 4]` in `box_format`, relative to (H, W).
    classes: int `[B, N]`.
    valid: bool `[B, N]`, or None for ``classes >= 0``.
    output_size: (H', W') of the output, or None for (H, W). Static.
    center_range: (lo, hi) in [0, 1], where the mosaic's centre falls. Traced. The 2×2 crop: the
      split point is ``floor(U(lo, hi)·H)`` rows and ``floor(U(lo, hi)·W)`` columns (as
      :func:`sample_mosaic`). The YOLO form: the share of the range ultralytics draws from, per axis;
      with 4 tiles the canvas centre is ``s/2 + U(lo, hi)·(canvas − s)``, so the default (0, 1) is
      ultralytics' ``[s/2, 3s/2]`` on the 2s canvas (``mosaic_border = −s/2``; mmdetection's
      ``center_ratio_range`` (0.5, 1.5)), and on that canvas the same split as the crop form's;
      with 9 tiles the crop offset of the 3s grid is ``U(lo, hi)·(3s − canvas)`` (``_mosaic9``'s
      ``[0, s)`` for (0, 1)). A narrower range keeps the centre nearer the middle.
    prob, pairing: as in :func:`sample_mosaic`.
    min_visibility, min_size: as in :func:`mosaic_boxes`. Traced.
    box_format, normalized: the box layout (static).
    data_format: ``"NHWC"`` (default) or ``"NCHW"``.
    tiles: 4 or 9 (static; 9 is the YOLO form).
    canvas_scale: the canvas side over the image side for the YOLO form (static; 2 in every YOLO
      trainer, at most 3 for 9 tiles), or None for the 2×2 crop (unless ``tiles=9`` or `affine`
      asks for the YOLO form, which then uses 2).
    affine: the YOLO form's warp: an :class:`jaxmix.detection.Affine`, a dict of its fields, or None
      for none (the central crop). Its magnitudes are traced.
    max_aspect: ``box_candidates``' ``ar_thr`` (100), YOLO form only. Traced.
    interpolation: ``"bilinear"`` (OpenCV's, the default) or ``"nearest"`` (one gather instead of
      four), YOLO form only (static).
    fill_value: the canvas fill, YOLO form only (the crop form has none): one number for every leaf
      (114, the trainers' grey), or a pytree like `images` with one number per leaf, so a label map
      or instance mask carried beside the image gets its own, e.g. ``{"image": 114, "seg": 255}``
      (mmdetection's ``pad_val`` 114 and ``seg_pad_val`` 255; 0 for background in an instance-id
      mask). Integer leaves get it rounded and clipped to their dtype. Traced.
    partners: the other tiles from a :class:`jaxmix.detection.PartnerCache` (mmdetection's
      ``CachedMosaic``, as RTMDet uses it) instead of the batch's `pairing`: a list of ``tiles − 1``
      partner draws, each the ``(images, targets, source)`` that
      :func:`jaxmix.detection.draw_partners` returns (or ``(images, targets)`` shaped like the batch,
      same dtypes, targets in the same box layout); draw ``k`` fills slot ``k + 1`` (the slots of the
      module docstring, or ``_mosaic9``'s order for 9 tiles). Draws are independent, so two tiles may
      show the same partner, as in mmdetection. `pairing` is then unused. Both forms.

  Returns:
    ``(mosaic_images, BoxTargets)`` with `4N` (`9N`) boxes per image.

  Example:
    >>> yolo = jaxmix.detection.normalize_boxes(
    ...     jaxmix.detection.convert_boxes(boxes, "xyxy", "cxcywh"), (32, 32))
    >>> images, t = jaxmix.detection.mosaic(
    ...     key, images, yolo, classes, valid, box_format="cxcywh", normalized=True)
    >>> t.boxes.shape                         # 4 sources: 4 × 3 boxes per image
    (8, 12, 4)

    The YOLO form (ultralytics' defaults), 9 tiles:

    >>> affine = jaxmix.detection.Affine(degrees=0.0, translate=0.1, scale=0.5)
    >>> images9, t9 = jaxmix.detection.mosaic(key, images, boxes, classes, valid, tiles=9, affine=affine)
    >>> images9.shape, t9.boxes.shape
    ((8, 32, 32, 3), (8, 27, 4))

    Tiles from a partner cache (mmdetection's CachedMosaic), three draws for the three other tiles:

    >>> t = jaxmix.detection.BoxTargets(boxes, classes, valid, valid.astype(jnp.float32))
    >>> cache = jaxmix.detection.init_partner_cache(images, t, 40)
    >>> draws = [jaxmix.detection.draw_partners(k, cache, images, t) for k in jax.random.split(key, 3)]
    >>> cached, tc = jaxmix.detection.mosaic(
    ...     key, images, boxes, classes, valid, canvas_scale=2.0, partners=draws)
    >>> cached.shape, tc.boxes.shape
    ((8, 32, 32, 3), (8, 12, 4))
  """
  if isinstance(tiles, bool) or tiles not in affine_detection.TILES:
    raise ValueError(f"tiles must be 4 or 9 (static), got {tiles!r}.")
  yolo = canvas_scale is not None or tiles == 9 or affine is not None
  if yolo:
    canvas_scale = 2.0 if canvas_scale is None else canvas_scale
    if not validation.is_static_number(canvas_scale) or not 1 <= canvas_scale <= (3 if tiles == 9 else 4):
      raise ValueError(
        f"canvas_scale must be a static number in [1, {3 if tiles == 9 else 4}] for {tiles} tiles "
        f"(2 in the YOLO trainers), got {canvas_scale!r}."
      )
  batch_size = validation.batch_size_of(images, "images")
  spatial = validation.spatial_shape_of(images, data_format, "images", nonempty=True)
  affine_detection.leaf_fills(fill_value, images)
  drawn = None
  if partners is not None:
    boxes, classes, valid = boxes_lib.check_box_targets(boxes, classes, valid, batch_size)
    drawn = _check_mosaic_partners(partners, tiles, images, batch_size, classes.shape[1])
  if output_size is not None:
    output_size = validation.check_spatial_shape(output_size)
    if output_size != spatial:
      boxes_lib.check_box_targets(boxes, classes, valid, batch_size)
      resize = lambda tree: jax.tree_util.tree_map(lambda x: _resize_leaf(x, output_size, data_format), tree)
      scale = lambda b: _scale_boxes(b, spatial, output_size, box_format, normalized)
      boxes = scale(boxes)
      images = resize(images)
      if drawn is not None:
        drawn = [
          (resize(p_images), boxes_lib.BoxTargets(scale(p_t.boxes), p_t.classes, p_t.valid, p_t.weights))
          for p_images, p_t in drawn
        ]
      spatial = output_size
  if yolo:
    assert canvas_scale is not None
    return affine_detection.warp_detection(
      key,
      images,
      boxes,
      classes,
      valid,
      tiles=tiles,
      canvas_scale=float(canvas_scale),
      affine=affine,
      prob=prob,
      pairing=pairing,
      min_visibility=min_visibility,
      min_size=min_size,
      max_aspect=max_aspect,
      interpolation=interpolation,
      fill_value=fill_value,
      box_format=box_format,
      normalized=normalized,
      data_format=data_format,
      partners=drawn,
      center_range=mosaic_lib.check_center_range(center_range),
    )
  plan = mosaic_lib.sample_mosaic(
    key, batch_size, spatial, center_range=center_range, prob=prob, pairing=pairing
  )
  if drawn is not None:
    return _crop_with_partners(
      plan, images, boxes, classes, valid, drawn, min_visibility, min_size, box_format, normalized,
      data_format,
    )
  targets = mosaic_boxes(
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


def _scale_boxes(
  boxes: Any, spatial: tuple[int, int], size: tuple[int, int], box_format: str, normalized: bool
) -> jax.Array:
  """Boxes of images of `spatial` for the images resized to `size` (normalized boxes stay)."""
  if normalized:
    return jnp.asarray(boxes)
  scale = jnp.array([size[1] / spatial[1], size[0] / spatial[0]] * 2, jnp.float32)
  xyxy = boxes_lib.to_xyxy(jnp.asarray(boxes, jnp.float32), box_format)
  return boxes_lib.from_xyxy(xyxy * scale, box_format)


def _check_mosaic_partners(
  partners: Any, tiles: int, images: Any, batch_size: int, n: int
) -> list[tuple[Any, boxes_lib.BoxTargets]]:
  """`partners` as ``tiles − 1`` checked ``(images, targets)`` pairs; a ValueError naming it otherwise."""
  others = tiles - 1
  example = f"[draw_partners(k, cache, images, targets) for k in jax.random.split(key, {others})]"
  one_draw = isinstance(partners, tuple) and len(partners) in (2, 3)
  if one_draw and isinstance(partners[1], boxes_lib.BoxTargets):
    raise ValueError(
      f"partners must be a list of {others} partner draws for {tiles} tiles (one per other tile), "
      f"got a single draw; pass e.g. {example}."
    )
  if not isinstance(partners, (list, tuple)) or len(partners) != others:
    got = f"{len(partners)} draws" if isinstance(partners, (list, tuple)) else type(partners).__name__
    raise ValueError(
      f"partners must be a list of {others} partner draws for {tiles} tiles (one per other tile), "
      f"got {got}; pass e.g. {example}."
    )
  return [
    partner_cache.check_partners(p, images, batch_size, n, name=f"partners[{k}]", same_dtype=True)
    for k, p in enumerate(partners)
  ]


def _crop_with_partners(
  plan: mosaic_lib.MosaicPlan,
  images: Any,
  boxes: Any,
  classes: Any,
  valid: Any,
  drawn: list[tuple[Any, boxes_lib.BoxTargets]],
  min_visibility: Any,
  min_size: Any,
  box_format: str,
  normalized: bool,
  data_format: str,
) -> tuple[Any, boxes_lib.BoxTargets]:
  """The 2×2 crop of `plan` with slot k + 1 read from partner batch k (slot 0 the batch itself)."""
  assert plan.spatial_shape is not None
  h, w = plan.spatial_shape
  validation.check_unit_interval("min_visibility", min_visibility)
  validation.check_nonnegative("min_size", min_size)
  boxes, classes, valid = boxes_lib.check_box_targets(boxes, classes, valid, plan.batch_size)
  slots = []
  for b, c, v in [(boxes, classes, valid)] + [(t.boxes, t.classes, t.valid) for _, t in drawn]:
    pixel = boxes_lib.to_pixel_xyxy(jnp.asarray(b, jnp.float32), box_format, normalized, (h, w))
    xyxy, keep = boxes_lib.sanitize_boxes(pixel, jnp.asarray(v, bool), (h, w))
    slots.append((xyxy, keep, jnp.asarray(c).astype(classes.dtype)))
  targets = _crop_boxes(plan.center, (h, w), slots, min_visibility, min_size, box_format, normalized)

  def mix(x: Any, *partner_leaves: Any) -> jax.Array:
    sources = [jnp.asarray(x)] + [jnp.asarray(p) for p in partner_leaves]
    return mosaic_lib.mix_slots(plan.center, (h, w), sources, data_format)

  return jax.tree_util.tree_map(mix, images, *[p for p, _ in drawn]), targets
