"""Detection MixUp as the YOLO trainers run it: YOLOX's and ultralytics' presets.

* :func:`yolox_mixup` follows YOLOX's ``MosaicDetection.mixup``
  (Megvii-BaseDetection/YOLOX, ``yolox/data/datasets/mosaicdetection.py``; Ge et
  al. 2021, "YOLOX: Exceeding YOLO Series in 2021", arXiv:2107.08430). Per
  sample, with probability ``prob`` (YOLOX's ``mixup_prob``, 1.0 in its base
  Exp): the partner is scaled by a jitter ``j ~ U(mixup_scale)`` (0.5, 1.5) to
  ``int(H·j) × int(W·j)``, flipped left-right with probability 0.5, put in the
  top-left corner of a canvas of ``max(int(H·j), H) × max(int(W·j), W)``
  filled with ``fill_value`` (YOLOX's ``padded_img`` is ``np.zeros``; its
  114 grey only fills the letterbox margin of a partner of another aspect
  ratio, which a batch of equal-size images does not have), cropped back to
  ``H × W`` at a random offset (YOLOX's ``randint(0, pad − size − 1)``), and
  blended with a fixed weight of 0.5. The partner's boxes are scaled by
  ``j``, clipped to the scaled image, flipped, shifted by the offset, clipped
  to the output and filtered by YOLOX's ``box_candidates`` (wider and higher
  than ``min_size`` = 5 px, at least ``min_area_ratio`` = 0.2 of the area
  before the crop, aspect ratio below ``max_aspect`` = 20). As in YOLOX a
  sample whose partner keeps no box is not mixed at all.
* :func:`ultralytics_mixup` is ultralytics' ``MixUp`` (``ultralytics/data/augment.py``,
  also YOLOv5's ``utils/augmentations.py`` ``mixup``): ``λ ~ Beta(32, 32)``
  (about 0.5 ± 0.06), both box sets concatenated; that is
  :func:`jaxmix.detection.mixup` with ``alpha=32``.

Differences from the reference code: the blend is rounded to uint8 (jaxmix's
rule for integer images) where YOLOX and ultralytics truncate with
``astype(np.uint8)``; YOLOX redraws a partner until it has a box, here a
sample paired with a box-less partner is left unmixed; partners come from the
batch (``pairing``), or from a :class:`jaxmix.detection.PartnerCache` where
the batch is small. Boxes come back `[B, 2N]`, own then the partner's, with
weights equal to each box's share of its pixels: 0.5 under YOLOX's blend (1
for samples left unmixed), λ and 1 − λ under ultralytics'. YOLOX and
ultralytics train every kept box with weight 1: use ``valid`` for parity.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import sampling
from jaxmix._src.core import validation
from jaxmix._src.families import boxes as boxes_lib
from jaxmix._src.families import detection
from jaxmix._src.families import partner_cache

ArrayLike = jax.typing.ArrayLike
RESAMPLE_METHODS = ("linear", "nearest")


def _source_coords(dst: jax.Array, size: int, scaled: jax.Array, method: str) -> tuple[jax.Array, ...]:
  """Two source indices and the weight of the second, per output index of a resize `size` -> `scaled`.

  `dst` `[B, n]` are indices into the resized axis; linear follows OpenCV's
  ``INTER_LINEAR`` (half-pixel centres, edges clamped), nearest takes the pixel
  whose centre maps closest.
  """
  ratio = size / scaled.astype(jnp.float32)[:, None]
  if method == "nearest":
    i0 = jnp.clip(jnp.floor((dst + 0.5) * ratio), 0, size - 1).astype(jnp.int32)
    return i0, i0, jnp.zeros(dst.shape, jnp.float32)
  src = jnp.clip((dst + 0.5) * ratio - 0.5, 0.0, size - 1.0)
  i0 = jnp.floor(src).astype(jnp.int32)
  i1 = jnp.minimum(i0 + 1, size - 1)
  return i0, i1, (src - i0).astype(jnp.float32)


def _gather(x: jax.Array, idx: jax.Array, axis: int) -> jax.Array:
  shape = [1] * x.ndim
  shape[0], shape[axis] = idx.shape
  return jnp.take_along_axis(x, idx.reshape(shape), axis=axis)


def _lerp(x: jax.Array, coords: tuple[jax.Array, ...], axis: int) -> jax.Array:
  i0, i1, f = coords
  shape = [1] * x.ndim
  shape[0], shape[axis] = f.shape
  f = f.reshape(shape)
  return _gather(x, i0, axis) * (1 - f) + _gather(x, i1, axis) * f


def _yolox_leaf(
  x: jax.Array,
  partner: jax.Array,
  rows: tuple[jax.Array, ...],
  cols: tuple[jax.Array, ...],
  inside: jax.Array,
  applied: jax.Array,
  fill_value: jax.Array,
  data_format: str,
) -> jax.Array:
  x = jnp.asarray(x)
  dtype = x.dtype
  h_axis, w_axis = validation.spatial_axes(x.ndim, data_format)
  p = partner.astype(jnp.float32)
  canvas = _lerp(_lerp(p, rows, h_axis), cols, w_axis)
  shape = [1] * x.ndim
  shape[0], shape[h_axis], shape[w_axis] = inside.shape
  canvas = jnp.where(inside.reshape(shape), canvas, fill_value)
  mixed = 0.5 * x.astype(jnp.float32) + 0.5 * canvas
  if jnp.issubdtype(dtype, jnp.integer):
    info = jnp.iinfo(dtype)
    mixed = jnp.clip(jnp.round(mixed), info.min, info.max)
  mixed = mixed.astype(dtype)
  return jnp.where(applied.reshape((-1,) + (1,) * (x.ndim - 1)), mixed, x)


def yolox_mixup(
  key: jax.Array,
  images: Any,
  boxes: ArrayLike,
  classes: ArrayLike,
  valid: ArrayLike | None = None,
  *,
  mixup_scale: tuple[ArrayLike, ArrayLike] = (0.5, 1.5),
  flip_prob: ArrayLike = 0.5,
  prob: ArrayLike = 1.0,
  fill_value: ArrayLike = 0.0,
  min_size: ArrayLike = 5.0,
  min_area_ratio: ArrayLike = 0.2,
  max_aspect: ArrayLike = 20.0,
  pairing: str = "flip",
  method: str = "linear",
  box_format: str = "xyxy",
  normalized: bool = False,
  data_format: str = "NHWC",
  partners: tuple[Any, ...] | None = None,
) -> tuple[Any, boxes_lib.BoxTargets]:
  """YOLOX MixUp: a scale-jittered, maybe flipped partner blended at 0.5 (module docstring).

  Args:
    key: PRNG key.
    images: `[B, H, W, C]` (or a pytree of leaves sharing batch and spatial
      axes); uint8 is rounded back to uint8, floats keep their dtype.
    boxes: float `[B, N, 4]` in `box_format`.
    classes: int `[B, N]`.
    valid: bool `[B, N]`, or None for ``classes >= 0``.
    mixup_scale: (low, high) of the partner's scale jitter (YOLOX: (0.5, 1.5)). Traced.
    flip_prob: probability of a left-right flip of the partner (YOLOX: 0.5). Traced.
    prob: probability that a sample is mixed (YOLOX's ``mixup_prob``, 1.0). Traced.
    fill_value: the canvas beyond the scaled partner (YOLOX: 0). Traced.
    min_size, min_area_ratio, max_aspect: YOLOX's ``box_candidates`` for the
      partner's boxes (5 px, 0.2, 20). Traced.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"`` (static); a sample that
      is its own partner is left unmixed.
    method: ``"linear"`` (OpenCV's ``INTER_LINEAR``, YOLOX's resize) or
      ``"nearest"`` (static).
    box_format, normalized: the box layout (static).
    data_format: ``"NHWC"`` (default) or ``"NCHW"``.
    partners: explicit partners instead of the batch's `pairing`: the
      ``(images, targets, source)`` that :func:`jaxmix.detection.draw_partners`
      returns (a :class:`jaxmix.detection.PartnerCache`), or ``(images,
      targets)`` shaped like the batch, `targets` a
      :class:`jaxmix.detection.BoxTargets` in the same box layout.

  Returns:
    ``(mixed_images, BoxTargets)`` with `2N` boxes per image: own, then the
    partner's (valid only where the sample was mixed), weights 0.5 where
    mixed and 1 for own boxes of unmixed samples.

  Example:
    >>> images, t = jaxmix.detection.yolox_mixup(key, images, boxes, classes, valid)
    >>> images.shape, t.boxes.shape
    ((8, 32, 32, 3), (8, 6, 4))
  """
  validation.check_choice("method", method, RESAMPLE_METHODS)
  validation.check_unit_interval("flip_prob", flip_prob)
  validation.check_unit_interval("prob", prob)
  validation.check_unit_interval("min_area_ratio", min_area_ratio)
  validation.check_nonnegative("min_size", min_size)
  if not isinstance(mixup_scale, (tuple, list)) or len(mixup_scale) != 2:
    raise ValueError(f"mixup_scale must be a pair (low, high), got {mixup_scale!r}.")
  validation.check_nonnegative("mixup_scale", mixup_scale[0])
  batch_size = validation.batch_size_of(images, "images")
  h, w = validation.spatial_shape_of(images, data_format, "images", nonempty=True)
  boxes, classes, valid = boxes_lib.check_box_targets(boxes, classes, valid, batch_size)
  xyxy, valid = boxes_lib.sanitize_boxes(
    boxes_lib.to_pixel_xyxy(boxes, box_format, normalized, (h, w)), valid, (h, w)
  )
  k_pair, k_scale, k_flip, k_gate, k_y, k_x = jax.random.split(key, 6)
  index = sampling.partner_index(k_pair, batch_size, pairing)
  if partners is None:
    take = lambda x: pairing_lib.take_partner(jnp.asarray(x), pairing, index)
    p_images = jax.tree_util.tree_map(take, images)
    p_xyxy = pairing_lib.take_partner(xyxy, pairing, index)
    p_classes = pairing_lib.take_partner(classes, pairing, index)
    p_valid = pairing_lib.take_partner(valid, pairing, index)
    alone = pairing_lib.self_pairs(index)
  else:
    p_images, p_targets = partner_cache.check_partners(partners, images, batch_size, classes.shape[1])
    p_xyxy, p_valid = boxes_lib.sanitize_boxes(
      boxes_lib.to_pixel_xyxy(p_targets.boxes, box_format, normalized, (h, w)), p_targets.valid, (h, w)
    )
    p_classes = p_targets.classes
    alone = jnp.zeros((batch_size,), bool)
  lo = jnp.asarray(mixup_scale[0], jnp.float32)
  hi = jnp.asarray(mixup_scale[1], jnp.float32)
  jitter = lo + (hi - lo) * jax.random.uniform(k_scale, (batch_size,))
  flip = sampling.gate(k_flip, flip_prob, (batch_size,))
  gate = sampling.gate(k_gate, prob, (batch_size,))
  # The scaled partner's size (int(H·j), int(W·j), at least one pixel) and the crop offset, drawn as
  # YOLOX's randint(0, pad − size − 1) when the padded canvas is larger than the output.
  hs = jnp.maximum(jnp.floor(h * jitter), 1.0).astype(jnp.int32)
  ws = jnp.maximum(jnp.floor(w * jitter), 1.0).astype(jnp.int32)
  oy = jnp.floor(jax.random.uniform(k_y, (batch_size,)) * jnp.maximum(hs - h, 0)).astype(jnp.int32)
  ox = jnp.floor(jax.random.uniform(k_x, (batch_size,)) * jnp.maximum(ws - w, 0)).astype(jnp.int32)

  # Boxes: scale, clip to the scaled image, flip, shift, clip to the output, box_candidates.
  hs_f, ws_f = hs.astype(jnp.float32)[:, None], ws.astype(jnp.float32)[:, None]
  p_xyxy = p_xyxy * jitter[:, None, None]
  x1 = jnp.clip(p_xyxy[..., 0], 0.0, ws_f)
  x2 = jnp.clip(p_xyxy[..., 2], 0.0, ws_f)
  y1 = jnp.clip(p_xyxy[..., 1], 0.0, hs_f)
  y2 = jnp.clip(p_xyxy[..., 3], 0.0, hs_f)
  f = flip[:, None]
  x1, x2 = jnp.where(f, ws_f - x2, x1), jnp.where(f, ws_f - x1, x2)
  before = jnp.stack([x1, y1, x2, y2], axis=-1)
  oxf, oyf = ox.astype(jnp.float32)[:, None], oy.astype(jnp.float32)[:, None]
  after = jnp.stack(
    [
      jnp.clip(x1 - oxf, 0.0, w),
      jnp.clip(y1 - oyf, 0.0, h),
      jnp.clip(x2 - oxf, 0.0, w),
      jnp.clip(y2 - oyf, 0.0, h),
    ],
    axis=-1,
  )
  bw, bh = after[..., 2] - after[..., 0], after[..., 3] - after[..., 1]
  aspect = jnp.maximum(bw / (bh + 1e-16), bh / (bw + 1e-16))
  min_size = jnp.asarray(min_size, jnp.float32)
  keep = p_valid & (bw > min_size) & (bh > min_size) & (aspect < jnp.asarray(max_aspect, jnp.float32))
  keep &= boxes_lib.box_area(after) / (boxes_lib.box_area(before) + 1e-16) > jnp.asarray(
    min_area_ratio, jnp.float32
  )
  applied = gate & ~alone & jnp.any(keep, axis=1)
  part_valid = keep & applied[:, None]

  # Pixels: output (y, x) reads the padded canvas at (y + oy, x + ox), the scaled partner inside it.
  py = jnp.arange(h, dtype=jnp.int32)[None, :] + oy[:, None]
  px = jnp.arange(w, dtype=jnp.int32)[None, :] + ox[:, None]
  inside = (py < hs[:, None])[:, :, None] & (px < ws[:, None])[:, None, :]
  qx = jnp.where(flip[:, None], ws[:, None] - 1 - px, px)
  rows = _source_coords(py.astype(jnp.float32), h, hs, method)
  cols = _source_coords(qx.astype(jnp.float32), w, ws, method)
  fill = jnp.asarray(fill_value, jnp.float32)

  def mix(x: jax.Array, partner: jax.Array) -> jax.Array:
    return _yolox_leaf(x, partner, rows, cols, inside, applied, fill, data_format)

  mixed = jax.tree_util.tree_map(mix, images, p_images)
  own_w = jnp.where(applied, 0.5, 1.0)[:, None]
  out_box = jnp.concatenate([xyxy, jnp.where(part_valid[..., None], after, 0.0)], axis=1)
  out_valid = jnp.concatenate([valid, part_valid], axis=1)
  weights = jnp.concatenate(
    [jnp.where(valid, own_w, 0.0), jnp.where(part_valid, 0.5, 0.0)], axis=1
  ).astype(jnp.float32)
  targets = boxes_lib.BoxTargets(
    boxes=boxes_lib.from_pixel_xyxy(out_box, box_format, normalized, (h, w)),
    classes=jnp.concatenate([classes, p_classes], axis=1),
    valid=out_valid,
    weights=weights,
  )
  return mixed, targets


def ultralytics_mixup(
  key: jax.Array,
  images: Any,
  boxes: ArrayLike,
  classes: ArrayLike,
  valid: ArrayLike | None = None,
  *,
  alpha: ArrayLike = 32.0,
  prob: ArrayLike = 1.0,
  pairing: str = "flip",
  box_format: str = "xyxy",
  normalized: bool = False,
  data_format: str = "NHWC",
  partners: tuple[Any, ...] | None = None,
) -> tuple[Any, boxes_lib.BoxTargets]:
  """Ultralytics (YOLOv5/YOLOv8) MixUp: ``λ ~ Beta(32, 32)`` per sample, both box sets kept.

  ultralytics' ``MixUp._mix_transform`` (``ultralytics/data/augment.py``) and
  YOLOv5's ``mixup``: ``img · r + img2 · (1 − r)``, ``r ~ Beta(32, 32)``, the
  partner's instances concatenated, applied with probability ``p`` (the
  ``mixup`` hyperparameter, 0.0 in ultralytics' ``default.yaml``: pass it as
  `prob`). It is :func:`jaxmix.detection.mixup` with ``alpha=32`` and one λ
  per sample.

  Args:
    key: PRNG key.
    images: `[B, H, W, C]` (or a pytree sharing batch and spatial axes).
    boxes, classes, valid: padded targets, see :func:`jaxmix.detection.mix_boxes`.
    alpha: the Beta concentration (ultralytics: 32). Traced.
    prob: probability that a sample is mixed (ultralytics' hyp ``mixup``). Traced.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"`` (static).
    box_format, normalized: the box layout (static).
    data_format: ``"NHWC"`` (default) or ``"NCHW"``.
    partners: explicit partners, as in :func:`yolox_mixup`. The batch and
      its partners go through :func:`jaxmix.detection.mixup` as one batch of
      `2B` paired by ``flip`` (a slice, no gather), and the first `B` come back.

  Returns:
    ``(mixed_images, BoxTargets)`` with `2N` boxes per image, weights λ and 1 − λ.

  Example:
    >>> images, t = jaxmix.detection.ultralytics_mixup(key, images, boxes, classes, valid, prob=0.5)
    >>> t.boxes.shape
    (8, 6, 4)
  """
  if partners is not None:
    batch_size = validation.batch_size_of(images, "images")
    boxes, classes, valid = boxes_lib.check_box_targets(boxes, classes, valid, batch_size)
    p_images, p_t = partner_cache.check_partners(partners, images, batch_size, classes.shape[1])
    # Sample i of [batch, reversed partners] has partner 2B − 1 − i under flip: partner i.
    cat = lambda x, p: jnp.concatenate([jnp.asarray(x), jnp.flip(jnp.asarray(p), 0)], axis=0)
    mixed, t = detection.mixup_detection(
      key,
      jax.tree_util.tree_map(cat, images, p_images),
      cat(boxes, p_t.boxes),
      cat(classes, p_t.classes),
      cat(valid, p_t.valid),
      alpha=alpha,
      prob=prob,
      mode="elem",
      pairing="flip",
      box_format=box_format,
      normalized=normalized,
      data_format=data_format,
    )
    first = lambda x: x[:batch_size]
    return jax.tree_util.tree_map(first, mixed), jax.tree_util.tree_map(first, t)
  return detection.mixup_detection(
    key,
    images,
    boxes,
    classes,
    valid,
    alpha=alpha,
    prob=prob,
    mode="elem",
    pairing=pairing,
    box_format=box_format,
    normalized=normalized,
    data_format=data_format,
  )
