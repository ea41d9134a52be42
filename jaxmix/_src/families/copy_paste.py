"""Simple Copy-Paste for detection and instance segmentation (Ghiasi et al., CVPR 2021).

Ghiasi, Cui, Srinivas, Qian, Lin, Cubuk, Le and Zoph, "Simple Copy-Paste is a
Strong Data Augmentation Method for Instance Segmentation" (CVPR 2021,
arXiv:2012.07177): a random subset of the instances of one image is pasted,
pixels and annotations, onto another image of the same size; the instances it
covers are updated. Each sample here pastes from one partner of the batch
(``pairing``), with no rescaling or jitter of the partner (the paper's
large-scale jittering is a separate step, before the paste).

Instance masks. ``masks`` is an int map `[B, H, W]` of instance ids: 0 is the
background and k (1 ≤ k ≤ N) the instance of box row k − 1, so a pixel
belongs to at most one instance. Ids of rows that are not valid are read as
background; ids outside [0, N] are a ValueError when their values are known
while tracing, and read as background under ``jit``. The output map has ids in
[0, 2N]: k for own row k − 1 and N + k for the partner's row k − 1, pasted
(row N + k − 1 of the output boxes); the pixels of dropped instances are 0.
Without ``masks`` each instance is its box: a pasted instance covers every
pixel its box overlaps (columns ``floor(x1) .. ceil(x2) − 1``, rows likewise, with
edges within 0.001 px of an integer read as that integer).

The rule, per sample with its partner:

1. *Selection* (``rule``):

   * ``"mmdet"`` (default), mmdetection's ``CopyPaste``
     (``mmdet/datasets/transforms/transforms.py``, defaults
     ``max_num_pasted=100, bbox_occluded_thr=10, mask_occluded_thr=300,
     selected=True``): a count ``k`` uniform in ``{0, …, min(n, max_num_pasted − 1)}``
     (mmdetection's ``randint(0, min(n + 1, max_num_pasted))``, n the
     partner's valid instances), then ``k`` of them at random, without
     replacement. ``selected=False`` pastes all of them.
   * ``"yolov5"``, YOLOv5's ``copy_paste`` (``utils/augmentations.py``):
     ``round(paste_fraction · n)`` instances at random (YOLOv5's ``p``), each
     kept only if its box covers less than ``ioa_thr`` (0.30) of the area of
     every own box and of every partner box already accepted (intersection
     over the existing box's area, "allow 30% obscuration of existing
     labels"). jaxmix accepts in row order; YOLOv5 goes through its random
     sample in order. YOLOv5 pastes from the image's own left-right flip;
     here the source is the partner, as in mmdetection and the paper.

2. *Paste*: the chosen instances' pixels (their mask, or their box) are
   copied from the partner, in every leaf of ``images`` and in the leaf's
   own dtype (a select, so uint8 stays exact).
3. *Own instances* lose the covered pixels. An instance that lost some gets
   the tight box of its visible pixels (with masks: of its remaining mask
   pixels, as mmdetection's ``get_bboxes`` on the updated masks; without:
   of the visible part of its box); one that lost none keeps its box. It
   is kept when it still has a visible pixel and either every coordinate of
   that box moved by at most ``bbox_occluded_thr`` pixels or more than
   ``mask_occluded_thr`` pixels are visible (mmdetection's rule; both
   thresholds apply to the ``"yolov5"`` rule too, where YOLOv5 itself
   leaves covered labels unchanged: so that every box matches its pixels).
   mmdetection can keep an occluded instance with an empty mask (its box
   becomes 0 and a small box near the origin passes the distance test);
   here an instance with no visible pixel is always dropped.
4. *Pasted instances* are never covered (they are pasted last). Their box is
   the partner's box, or with masks the tight box of their mask pixels
   (mmdetection keeps the source box; the two agree when boxes and masks
   do). A partner row with no mask pixel is never pasted.

Every kept row has weight 1 (its pixels are a copy, not a blend).
Malformed boxes are defined as in :func:`jaxmix.detection.mix_boxes`: a NaN,
infinite or inverted row is an invalid row of zeros, and boxes are clipped
to the image.
"""

from __future__ import annotations

from typing import Any
from typing import overload

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import regions
from jaxmix._src.core import sampling
from jaxmix._src.core import validation
from jaxmix._src.families import boxes as boxes_lib
from jaxmix._src.families import detection

RULES = ("mmdet", "yolov5")
ArrayLike = jax.typing.ArrayLike


def _random_subset(key: jax.Array, candidates: jax.Array, count: jax.Array) -> jax.Array:
  """bool `[B, N]`: `count[b]` of the True entries of `candidates[b]`, uniformly without replacement."""
  scores = jnp.where(candidates, jax.random.uniform(key, candidates.shape), 2.0)
  rank = jnp.argsort(jnp.argsort(scores, axis=1), axis=1)
  return candidates & (rank < count[:, None])


def _ioa(a: jax.Array, b: jax.Array) -> jax.Array:
  """`[B, N, M]`: the intersection of box `a[:, n]` and box `b[:, m]` over the area of `b[:, m]`."""
  lo = jnp.maximum(a[:, :, None, :2], b[:, None, :, :2])
  hi = jnp.minimum(a[:, :, None, 2:], b[:, None, :, 2:])
  inter = jnp.prod(jnp.maximum(hi - lo, 0.0), axis=-1)
  return inter / jnp.maximum(boxes_lib.box_area(b), 1e-12)[:, None, :]


def _ioa_filter(
  chosen: jax.Array, cand_xyxy: jax.Array, own_xyxy: jax.Array, own_valid: jax.Array, thr: jax.Array
) -> jax.Array:
  """YOLOv5's test, row by row: a chosen box is accepted when it covers less than `thr` of the area
  of every own box and of every box accepted before it."""
  own_ok = jnp.all(~own_valid[:, None, :] | (_ioa(cand_xyxy, own_xyxy) < thr), axis=-1)
  pasted = _ioa(cand_xyxy, cand_xyxy)
  ok = chosen & own_ok

  def accept(j: jax.Array, accepted: jax.Array) -> jax.Array:
    row = jax.lax.dynamic_index_in_dim(pasted, j, axis=1, keepdims=False)  # [B, N]
    clear = jnp.all(~accepted | (row < thr), axis=-1)
    now = jax.lax.dynamic_index_in_dim(ok, j, axis=1, keepdims=False) & clear
    return jax.lax.dynamic_update_index_in_dim(accepted, now, j, axis=1)

  return jax.lax.fori_loop(0, chosen.shape[1], accept, jnp.zeros_like(chosen))


def _box_pixels(xyxy: jax.Array, chosen: jax.Array, spatial_shape: tuple[int, int]) -> jax.Array:
  """bool `[B, H, W]`: the pixels any chosen box overlaps, from a 2-D difference array (O(B·(N + H·W))).

  A pixel counts when the box covers more than `detection.SNAP` of a pixel along each axis, so that the
  noise of normalised or converted boxes (an edge at 2.9999998 for 3) does not add a row or column.
  """
  h, w = spatial_shape
  b = chosen.shape[0]
  x1 = jnp.clip(jnp.floor(xyxy[..., 0] + detection.SNAP), 0, w).astype(jnp.int32)
  y1 = jnp.clip(jnp.floor(xyxy[..., 1] + detection.SNAP), 0, h).astype(jnp.int32)
  x2 = jnp.clip(jnp.ceil(xyxy[..., 2] - detection.SNAP), 0, w).astype(jnp.int32)
  y2 = jnp.clip(jnp.ceil(xyxy[..., 3] - detection.SNAP), 0, h).astype(jnp.int32)
  one = chosen.astype(jnp.int32)
  bi = jnp.arange(b)[:, None]
  diff = jnp.zeros((b, h + 1, w + 1), jnp.int32)
  diff = diff.at[bi, y1, x1].add(one).at[bi, y1, x2].add(-one)
  diff = diff.at[bi, y2, x1].add(-one).at[bi, y2, x2].add(one)
  return jnp.cumsum(jnp.cumsum(diff, axis=1), axis=2)[:, :h, :w] > 0


def _instance_stats(ids: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
  """Pixel count `[B, N]` and tight pixel box `[B, N, 4]` (xyxy, 0 when empty) of ids 1..N in `[B, H, W]`."""
  b, h, w = ids.shape
  total = b * (n + 1)
  segments = (ids + (n + 1) * jnp.arange(b, dtype=jnp.int32)[:, None, None]).reshape(-1)
  rows = jnp.broadcast_to(jnp.arange(h, dtype=jnp.int32)[None, :, None], ids.shape).reshape(-1)
  cols = jnp.broadcast_to(jnp.arange(w, dtype=jnp.int32)[None, None, :], ids.shape).reshape(-1)
  count = jax.ops.segment_sum(jnp.ones_like(segments), segments, total)
  tight = jnp.stack(
    [
      jax.ops.segment_min(cols, segments, total),
      jax.ops.segment_min(rows, segments, total),
      jax.ops.segment_max(cols, segments, total) + 1,
      jax.ops.segment_max(rows, segments, total) + 1,
    ],
    axis=-1,
  )
  count = count.reshape(b, n + 1)[:, 1:]
  tight = tight.reshape(b, n + 1, 4)[:, 1:]
  return count, jnp.where(count[..., None] > 0, tight, 0).astype(jnp.float32)


def _at_ids(table: jax.Array, ids: jax.Array) -> jax.Array:
  """`table[b, id − 1]` at every pixel of the id map `ids` `[B, H, W]`, False (0) where id = 0."""
  b = ids.shape[0]
  padded = jnp.concatenate([jnp.zeros((b, 1), table.dtype), table], axis=1)
  return jnp.take_along_axis(padded, ids.reshape(b, -1), axis=1).reshape(ids.shape)


def _check_masks(masks: Any, batch_size: int, spatial: tuple[int, int], n: int) -> jax.Array:
  validation.check_array("masks", masks, rank=3, expected="int instance ids [B, H, W]")
  validation.check_array("masks", masks, dtype=jnp.integer, expected="int instance ids [B, H, W]")
  shape = tuple(np.shape(masks))
  if shape != (batch_size, *spatial):
    raise ValueError(
      f"masks must be int instance ids [B, H, W] = {(batch_size, *spatial)} (the images' batch and "
      f"spatial shape), got shape {shape}."
    )
  values = validation.concrete_values(masks)
  if values is not None and values.size and (values.min() < 0 or values.max() > n):
    bad = values[(values < 0) | (values > n)]
    raise ValueError(
      f"masks must hold instance ids in [0, N] = [0, {n}] (0 the background, k the box row k - 1), got "
      f"{bad.size} pixel(s) outside it, e.g. {bad.flat[0].item()!r} (min {values.min().item()!r}, max "
      f"{values.max().item()!r})."
    )
  ids = jnp.asarray(masks).astype(jnp.int32)
  return jnp.where((ids >= 0) & (ids <= n), ids, 0)


@overload
def copy_paste(
  key: jax.Array,
  images: Any,
  boxes: ArrayLike,
  classes: ArrayLike,
  valid: ArrayLike | None = ...,
  *,
  masks: None = ...,
  prob: ArrayLike = ...,
  rule: str = ...,
  max_num_pasted: ArrayLike = ...,
  selected: ArrayLike = ...,
  paste_fraction: ArrayLike = ...,
  ioa_thr: ArrayLike = ...,
  bbox_occluded_thr: ArrayLike = ...,
  mask_occluded_thr: ArrayLike = ...,
  pairing: str = ...,
  box_format: str = ...,
  normalized: bool = ...,
  data_format: str = ...,
) -> tuple[Any, boxes_lib.BoxTargets]: ...
@overload
def copy_paste(
  key: jax.Array,
  images: Any,
  boxes: ArrayLike,
  classes: ArrayLike,
  valid: ArrayLike | None = ...,
  *,
  masks: ArrayLike,
  prob: ArrayLike = ...,
  rule: str = ...,
  max_num_pasted: ArrayLike = ...,
  selected: ArrayLike = ...,
  paste_fraction: ArrayLike = ...,
  ioa_thr: ArrayLike = ...,
  bbox_occluded_thr: ArrayLike = ...,
  mask_occluded_thr: ArrayLike = ...,
  pairing: str = ...,
  box_format: str = ...,
  normalized: bool = ...,
  data_format: str = ...,
) -> tuple[Any, boxes_lib.BoxTargets, jax.Array]: ...
def copy_paste(
  key: jax.Array,
  images: Any,
  boxes: ArrayLike,
  classes: ArrayLike,
  valid: ArrayLike | None = None,
  *,
  masks: ArrayLike | None = None,
  prob: ArrayLike = 1.0,
  rule: str = "mmdet",
  max_num_pasted: ArrayLike = 100,
  selected: ArrayLike = True,
  paste_fraction: ArrayLike = 0.5,
  ioa_thr: ArrayLike = 0.3,
  bbox_occluded_thr: ArrayLike = 10.0,
  mask_occluded_thr: ArrayLike = 300.0,
  pairing: str = "roll",
  box_format: str = "xyxy",
  normalized: bool = False,
  data_format: str = "NHWC",
) -> tuple[Any, boxes_lib.BoxTargets] | tuple[Any, boxes_lib.BoxTargets, jax.Array]:
  """Simple Copy-Paste (Ghiasi et al. 2021): paste some of a partner's instances onto each image.

  The rule (selection, paste, occlusion of own instances, the instance-mask
  convention) is in :mod:`jaxmix._src.families.copy_paste`; the defaults are
  mmdetection's ``CopyPaste`` (``max_num_pasted=100``, ``bbox_occluded_thr=10``,
  ``mask_occluded_thr=300``, ``selected=True``), and ``rule="yolov5"`` is
  YOLOv5's ``copy_paste`` (``round(p · n)`` instances, IoA < 0.30 against
  existing boxes). Output boxes are `[B, 2N, ...]`: own rows (updated), then
  the partner's rows (valid where pasted), before any compaction
  (:func:`jaxmix.detection.compact_boxes` brings the axis back to a fixed size).

  Args:
    key: PRNG key.
    images: `[B, H, W, C]` (or a pytree of arrays sharing batch and spatial
      axes, e.g. an image with its depth map); every leaf takes the pasted
      pixels, in its own dtype.
    boxes: float `[B, N, 4]` in `box_format`; NaN, infinite or inverted rows
      come back invalid (see :func:`jaxmix.detection.mix_boxes`).
    classes: int `[B, N]`; pasted rows carry the partner's classes.
    valid: bool `[B, N]`, or None for ``classes >= 0``.
    masks: int instance ids `[B, H, W]` (0 background, k the instance of row
      k − 1; see the module), or None to paste box rectangles. With masks the
      updated ids `[B, H, W]` (in [0, 2N], int32) come back too.
    prob: probability that a sample receives a paste at all. Traced.
    rule: ``"mmdet"`` (default) or ``"yolov5"``: how the pasted instances are
      chosen (static).
    max_num_pasted: ``"mmdet"``: the count is drawn below it (100). Traced.
    selected: ``"mmdet"``: False pastes every valid partner instance (True).
      Traced.
    paste_fraction: ``"yolov5"``: the share of the partner's instances tried
      (YOLOv5's ``p``, 0.5). Traced.
    ioa_thr: ``"yolov5"``: a pasted box must cover less than this share of
      every existing box (0.30). Traced.
    bbox_occluded_thr: an own instance whose box moved by at most this many
      pixels on every side is kept (10). Traced.
    mask_occluded_thr: an own instance with more visible pixels than this is
      kept (300). Traced.
    pairing: who pastes onto whom, ``"roll"`` (default: sample i takes from
      i − 1, never itself for B > 1), ``"flip"`` or ``"permute"`` (static). A
      sample that is its own partner is left unchanged.
    box_format, normalized: the box layout (static).
    data_format: ``"NHWC"`` (default) or ``"NCHW"``.

  Returns:
    ``(images, BoxTargets)`` with `2N` boxes per image, or
    ``(images, BoxTargets, masks)`` when `masks` is given.

  Example:
    >>> out, t = jaxmix.detection.copy_paste(key, images, boxes, classes, valid)
    >>> out.shape, t.boxes.shape                 # own boxes, then the partner's
    ((8, 32, 32, 3), (8, 6, 4))
    >>> ids = jnp.zeros((8, 32, 32), jnp.int32).at[:, 4:12, 4:12].set(1)
    >>> out, t, ids = jaxmix.detection.copy_paste(key, images, boxes, classes, valid, masks=ids)
    >>> ids.shape, int(ids.max()) <= 6
    ((8, 32, 32), True)
  """
  validation.check_key(key)
  validation.check_choice("rule", rule, RULES)
  validation.check_choice("pairing", pairing, validation.PAIRINGS)
  validation.check_unit_interval("prob", prob)
  validation.check_unit_interval("paste_fraction", paste_fraction)
  for name, value in (
    ("max_num_pasted", max_num_pasted),
    ("ioa_thr", ioa_thr),
    ("bbox_occluded_thr", bbox_occluded_thr),
    ("mask_occluded_thr", mask_occluded_thr),
  ):
    validation.check_nonnegative(name, value)
  batch_size = validation.batch_size_of(images, "images")
  spatial = validation.spatial_shape_of(images, data_format, "images", nonempty=True)
  boxes, classes, valid = boxes_lib.check_box_targets(boxes, classes, valid, batch_size)
  n = classes.shape[1]
  ids = None if masks is None else _check_masks(masks, batch_size, spatial, n)
  xyxy, valid = boxes_lib.sanitize_boxes(
    boxes_lib.to_pixel_xyxy(boxes, box_format, normalized, spatial), valid, spatial
  )

  key_pair, key_gate, key_count, key_subset = jax.random.split(key, 4)
  index = sampling.partner_index(key_pair, batch_size, pairing)
  take = lambda x: pairing_lib.take_partner(x, pairing, index)
  gate = sampling.gate(key_gate, prob, (batch_size,)) & ~pairing_lib.self_pairs(index)
  p_xyxy, p_classes, p_valid = take(xyxy), take(classes), take(valid)

  if ids is not None:
    ids = jnp.where(_at_ids(valid, ids), ids, 0)  # rows that are not boxes are background
    own_count, own_tight = _instance_stats(ids, n)
    p_ids, p_count, p_tight = take(ids), take(own_count), take(own_tight)
    candidates = p_valid & (p_count > 0)
  else:
    candidates = p_valid

  # 1. Which of the partner's instances are pasted.
  n_cand = jnp.sum(candidates, axis=1)
  if rule == "mmdet":
    limit = jnp.minimum(n_cand + 1, jnp.asarray(max_num_pasted, jnp.float32))
    count = jnp.floor(jax.random.uniform(key_count, (batch_size,)) * limit).astype(jnp.int32)
    count = jnp.where(jnp.asarray(selected, bool), count, n_cand)
  else:
    count = jnp.round(jnp.asarray(paste_fraction, jnp.float32) * n_cand).astype(jnp.int32)
  chosen = _random_subset(key_subset, candidates, count) & gate[:, None]
  if rule == "yolov5":
    chosen = _ioa_filter(chosen, p_xyxy, xyxy, valid, jnp.asarray(ioa_thr, jnp.float32))

  # 2. The pasted pixels, copied in every leaf.
  if ids is not None:
    pasted = _at_ids(chosen, p_ids)
  else:
    pasted = _box_pixels(p_xyxy, chosen, spatial)

  def paste(x: jax.Array) -> jax.Array:
    x = jnp.asarray(x)
    where = regions.expand_spatial(pasted, x.ndim, data_format)
    return jnp.where(where, take(x), x)

  out_images = jax.tree_util.tree_map(paste, images)

  # 3. Own instances lose the covered pixels.
  if ids is not None:
    visible_ids = jnp.where(pasted, 0, ids)
    shown, tight = _instance_stats(visible_ids, n)
    own_box = jnp.where((shown < own_count)[..., None], tight, xyxy)
    shown = shown.astype(jnp.float32)
  else:
    uncovered = (~pasted).astype(jnp.float32)
    own_box, _, _ = detection._visible(xyxy, uncovered, spatial)
    # The visible area itself (not the fraction times the area), so integer boxes count whole pixels.
    ox = detection._overlaps(xyxy[..., 0], xyxy[..., 2], spatial[1])
    oy = detection._overlaps(xyxy[..., 1], xyxy[..., 3], spatial[0])
    shown = jnp.einsum("bhw,bnh,bnw->bn", uncovered, oy, ox)
  bbox_thr = jnp.asarray(bbox_occluded_thr, jnp.float32)
  mask_thr = jnp.asarray(mask_occluded_thr, jnp.float32)
  near = jnp.all(jnp.abs(own_box - xyxy) <= bbox_thr, axis=-1)
  own_valid = valid & (shown > 0) & (near | (shown > mask_thr))
  own_box = jnp.where(own_valid[..., None], own_box, xyxy)

  # 4. Pasted instances: the partner's rows, valid where pasted.
  part_box = p_xyxy if ids is None else jnp.where(chosen[..., None], p_tight, p_xyxy)
  out_valid = jnp.concatenate([own_valid, chosen], axis=1)
  targets = boxes_lib.BoxTargets(
    boxes=boxes_lib.from_pixel_xyxy(
      jnp.concatenate([own_box, part_box], axis=1), box_format, normalized, spatial
    ),
    classes=jnp.concatenate([classes, p_classes], axis=1),
    valid=out_valid,
    weights=out_valid.astype(jnp.float32),
  )
  if ids is None:
    return out_images, targets
  own_ids = jnp.where(_at_ids(own_valid, visible_ids), visible_ids, 0)
  return out_images, targets, jnp.where(pasted, p_ids + n, own_ids)
