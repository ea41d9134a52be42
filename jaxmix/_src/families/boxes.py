"""Bounding boxes as fixed-size padded arrays, and their formats.

Detection targets in jaxmix are three arrays with a static box count `N`
(padded), so every op jits:

* ``boxes``: float `[B, N, 4]` in one of the formats below;
* ``classes``: int `[B, N]` class ids;
* ``valid``: bool `[B, N]`, False for padding (or None: then
  ``classes >= 0`` marks the real boxes, i.e. padding uses class -1).

Formats (``box_format``), x along the width axis and y along the height axis:

* ``"xyxy"``: (x1, y1, x2, y2), the corners (Pascal VOC after
  :func:`jaxmix.detection.read_voc`, torchvision);
* ``"xywh"``: (x1, y1, w, h), the top-left corner and size (COCO);
* ``"cxcywh"``: (cx, cy, w, h), the centre and size (YOLO).

Coordinates are pixels (a box covering columns 0..9 has x1 = 0, x2 = 10) or,
with ``normalized=True``, fractions of the image width (x) and height (y),
as YOLO label files store them.

Malformed values are defined, not passed on (:func:`sanitize_boxes`, used by
:func:`jaxmix.detection.mix_boxes` and :func:`jaxmix.detection.mosaic_boxes`): a row with a NaN
or infinite coordinate, or an inverted one (x2 < x1 or y2 < y1), is not a
box: it comes back as (0, 0, 0, 0) with ``valid`` False and weight 0, so no
NaN reaches a loss even through a zero weight. Boxes are clipped to the
image, and a box with no area left inside it is invalid.
"""

from __future__ import annotations

from typing import Any
from typing import overload

import jax
import jax.numpy as jnp
from flax import struct

from jaxmix._src.core import validation

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


@struct.dataclass
class BoxTargets:
  """Mixed detection targets, padded to a static box count.

  Attributes:
    boxes: float32 `[B, M, 4]`, in the format and normalisation of the input.
    classes: int32 `[B, M]` class ids (kept for invalid boxes too).
    valid: bool `[B, M]`, which rows are real boxes.
    weights: float32 `[B, M]`, each box's share in the mixed image (λ for
      own boxes and 1 − λ for the partner's under MixUp, 1 for pasted or
      kept boxes); 0 where `valid` is False. A detection loss can multiply
      each box's term by it (Zhang et al. 2019).
  """

  boxes: jax.Array
  classes: jax.Array
  valid: jax.Array
  weights: jax.Array


def _check_format(box_format: str) -> None:
  if box_format not in BOX_FORMATS:
    raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}.")


def _check_last_axis(boxes: Any) -> None:
  validation.check_array(
    "boxes",
    boxes,
    has_axis=0,
    axes={-1: 4},
    message="boxes must have a last axis of size 4, got shape {shape}.",
  )


def convert_boxes(boxes: jax.typing.ArrayLike, src: str, dst: str) -> jax.Array:
  """Converts boxes between ``"xyxy"``, ``"xywh"`` and ``"cxcywh"``.

  Works on any leading shape and on pixel or normalised coordinates alike.

  Args:
    boxes: float `[..., 4]`.
    src: the format of `boxes`.
    dst: the format wanted.

  Returns:
    float `[..., 4]` in `dst` (float32 unless `boxes` is a wider float).

  Example:
    >>> jaxmix.detection.convert_boxes(jnp.array([[10., 20., 30., 60.]]), "xyxy", "cxcywh")
    Array([[20., 40., 20., 40.]], dtype=float32)
  """
  _check_format(src)
  _check_format(dst)
  _check_last_axis(boxes)
  b = jnp.asarray(boxes)
  if not jnp.issubdtype(b.dtype, jnp.floating):
    b = b.astype(jnp.float32)
  return from_xyxy(to_xyxy(b, src), dst)


def to_xyxy(boxes: jax.typing.ArrayLike, box_format: str) -> jax.Array:
  """Boxes `[..., 4]` in `box_format` to ``"xyxy"``."""
  _check_format(box_format)
  _check_last_axis(boxes)
  b = jnp.asarray(boxes)
  a0, a1, a2, a3 = (b[..., i] for i in range(4))
  if box_format == "xyxy":
    return b
  if box_format == "xywh":
    return jnp.stack([a0, a1, a0 + a2, a1 + a3], axis=-1)
  return jnp.stack([a0 - a2 / 2, a1 - a3 / 2, a0 + a2 / 2, a1 + a3 / 2], axis=-1)


def from_xyxy(boxes: jax.typing.ArrayLike, box_format: str) -> jax.Array:
  """Boxes `[..., 4]` in ``"xyxy"`` to `box_format`."""
  _check_format(box_format)
  _check_last_axis(boxes)
  b = jnp.asarray(boxes)
  x1, y1, x2, y2 = (b[..., i] for i in range(4))
  if box_format == "xyxy":
    return b
  if box_format == "xywh":
    return jnp.stack([x1, y1, x2 - x1, y2 - y1], axis=-1)
  return jnp.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def _scale(spatial_shape: tuple[int, int]) -> jax.Array:
  h, w = spatial_shape
  return jnp.array([w, h, w, h], jnp.float32)


def normalize_boxes(boxes: jax.typing.ArrayLike, spatial_shape: tuple[int, int]) -> jax.Array:
  """Pixel boxes to fractions of the image: x / W, y / H (any of the formats).

  Args:
    boxes: float `[..., 4]` in pixels.
    spatial_shape: the image's (H, W).

  Returns:
    float32 `[..., 4]` normalised to [0, 1].
  """
  _check_last_axis(boxes)
  return jnp.asarray(boxes, jnp.float32) / _scale(validation.check_spatial_shape(spatial_shape))


def denormalize_boxes(boxes: jax.typing.ArrayLike, spatial_shape: tuple[int, int]) -> jax.Array:
  """Normalised boxes to pixels: x · W, y · H (any of the formats).

  Args:
    boxes: `[..., 4]` boxes with coordinates in [0, 1].
    spatial_shape: the image's (H, W).

  Returns:
    float32 boxes of the same shape in pixels.
  """
  _check_last_axis(boxes)
  return jnp.asarray(boxes, jnp.float32) * _scale(validation.check_spatial_shape(spatial_shape))


def clip_boxes(boxes: jax.typing.ArrayLike, spatial_shape: tuple[int, int]) -> jax.Array:
  """Clips pixel ``"xyxy"`` boxes `[..., 4]` to the image ``[0, W] × [0, H]``.

  Args:
    boxes: `[..., 4]` pixel boxes in ``"xyxy"`` format.
    spatial_shape: the image's (H, W).

  Returns:
    float32 boxes of the same shape, each coordinate clipped to the image.
  """
  _check_last_axis(boxes)
  h, w = validation.check_spatial_shape(spatial_shape)
  b = jnp.asarray(boxes, jnp.float32)
  hi = jnp.array([w, h, w, h], jnp.float32)
  return jnp.clip(b, 0.0, hi)


def box_area(boxes: jax.typing.ArrayLike) -> jax.Array:
  """Areas of ``"xyxy"`` boxes `[..., 4]` (0 for empty or inverted boxes).

  Args:
    boxes: `[..., 4]` boxes in ``"xyxy"`` format (pixels or normalised).

  Returns:
    `[...]` areas, in the units of `boxes` squared.
  """
  b = jnp.asarray(boxes)
  return jnp.maximum(b[..., 2] - b[..., 0], 0) * jnp.maximum(b[..., 3] - b[..., 1], 0)


def check_box_targets(
  boxes: Any, classes: Any, valid: Any, batch_size: int | None = None, batch_of: str = "the images have"
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Checks padded detection targets and returns them as arrays.

  Args:
    boxes: float `[B, N, 4]`.
    classes: int `[B, N]`.
    valid: bool `[B, N]`, or None to take ``classes >= 0``.
    batch_size: the images' B, checked when given.
    batch_of: whose batch size `batch_size` is, for the message ("the plan has").

  Returns:
    ``(boxes float32, classes int32, valid bool)``.

  Raises:
    ValueError: on a wrong rank, a last axis other than 4, or a batch or
      box-count mismatch. TypeError on a wrong dtype.
  """
  validation.check_array("boxes", boxes, rank=3, axes={-1: 4}, expected="[B, N, 4] (padded per image)")
  validation.check_array("classes", classes, rank=2, expected="int [B, N]")
  validation.check_same_shape({"classes": classes, "boxes": boxes}, "[B, N]", prefix_len=2)
  validation.check_array("classes", classes, dtype=jnp.integer, expected="integer ids")
  validation.check_array("boxes", boxes, dtype=validation.REAL, expected="real numbers")
  if valid is None:
    valid = jnp.asarray(classes, jnp.int32) >= 0
  else:
    validation.check_same_shape({"valid": valid, "boxes": boxes}, "[B, N]", prefix_len=2)
    validation.check_array("valid", valid, rank=2, dtype=jnp.bool_, expected="a bool mask [B, N]")
    valid = jnp.asarray(valid)
  if batch_size is not None:
    validation.check_array(
      "boxes",
      boxes,
      batch_size=batch_size,
      message=f"boxes have batch size {{shape[0]}} but {batch_of} {batch_size}.",
    )
  classes = jnp.asarray(classes, jnp.int32)
  return jnp.asarray(boxes, jnp.float32), classes, valid


def sanitize_boxes(
  xyxy: jax.Array, valid: jax.Array, spatial_shape: tuple[int, int] | None
) -> tuple[jax.Array, jax.Array]:
  """Pixel ``"xyxy"`` boxes `[..., 4]` made safe to carry, and their validity.

  * A row with a NaN or infinite coordinate, or inverted (x2 < x1 or
    y2 < y1), is not a box: it becomes (0, 0, 0, 0) and invalid, whatever
    `valid` said (padding rows included, so no NaN is carried along).
  * With `spatial_shape` (H, W) known, boxes are clipped to ``[0, W] × [0, H]``
    and a box with no area left (outside the image, or of zero width or
    height) is invalid. Without it nothing is clipped, and only boxes of
    zero width or height are invalid.

  Args:
    xyxy: float pixel boxes `[..., 4]`.
    valid: bool `[...]`.
    spatial_shape: the image's (H, W), or None when unknown.

  Returns:
    ``(boxes float32 [..., 4], valid bool [...])``.
  """
  xyxy = jnp.asarray(xyxy, jnp.float32)
  finite = jnp.all(jnp.isfinite(xyxy), axis=-1)
  ordered = (xyxy[..., 2] >= xyxy[..., 0]) & (xyxy[..., 3] >= xyxy[..., 1])
  is_box = finite & ordered
  xyxy = jnp.where(is_box[..., None], xyxy, 0.0)
  if spatial_shape is not None:
    xyxy = clip_boxes(xyxy, spatial_shape)
  has_area = (xyxy[..., 2] > xyxy[..., 0]) & (xyxy[..., 3] > xyxy[..., 1])
  return xyxy, valid & is_box & has_area


def to_pixel_xyxy(
  boxes: jax.Array, box_format: str, normalized: bool, spatial_shape: tuple[int, int] | None
) -> jax.Array:
  """Any supported box layout to pixel ``"xyxy"`` (the internal layout)."""
  b = to_xyxy(boxes, box_format)
  if normalized:
    if spatial_shape is None:
      raise ValueError("normalized boxes need the image size (H, W).")
    b = denormalize_boxes(b, spatial_shape)
  return b


def from_pixel_xyxy(
  boxes: jax.Array, box_format: str, normalized: bool, spatial_shape: tuple[int, int] | None
) -> jax.Array:
  """Pixel ``"xyxy"`` back to the caller's layout."""
  if normalized:
    if spatial_shape is None:
      raise ValueError("normalized boxes need the image size (H, W).")
    boxes = normalize_boxes(boxes, spatial_shape)
  return from_xyxy(boxes, box_format)


@overload
def compact_boxes(
  targets: BoxTargets, max_boxes: int, *, box_format: str = ..., masks: None = ...
) -> BoxTargets: ...
@overload
def compact_boxes(
  targets: BoxTargets, max_boxes: int, *, box_format: str = ..., masks: jax.typing.ArrayLike
) -> tuple[BoxTargets, jax.Array]: ...
def compact_boxes(
  targets: BoxTargets,
  max_boxes: int,
  *,
  box_format: str = "xyxy",
  masks: jax.typing.ArrayLike | None = None,
) -> BoxTargets | tuple[BoxTargets, jax.Array]:
  """Keeps at most `max_boxes` valid boxes per image: the largest, in their original order.

  Each mix that carries boxes appends rows (MixUp, CutMix and Copy-Paste
  double the box axis, Mosaic quadruples it), so a chain such as
  Mosaic → MixUp → Copy-Paste grows `N` to `16N`. This brings the axis back
  to a fixed `max_boxes`:

  * the valid rows come first, in their original (stable) order, then the
    padding rows (zeros, class -1, ``valid`` False, weight 0);
  * when an image has more than `max_boxes` valid rows, the ones with the
    largest box area are kept (ties go to the earlier row). Boxes that came
    out of a mix are the tight boxes of their visible parts
    (:func:`jaxmix.detection.mix_boxes`), so this is their visible extent;
  * a `max_boxes` larger than the input's box count pads.

  Rows are gathered, so every field (boxes, classes, weights) keeps its
  values; only the order and the count change. Static shapes: the output has
  exactly `max_boxes` rows whatever the input, under ``jit`` too.

  Args:
    targets: a :class:`jaxmix.detection.BoxTargets` with `M` rows (as the
      detection functions return).
    max_boxes: the number of rows kept, a static int >= 1.
    box_format: the format of ``targets.boxes`` (static), to read each box's
      area; normalised boxes rank as pixel boxes do.
    masks: optional int instance masks `[B, H, W]` whose id k (1-based) is row
      k − 1 of `targets` and 0 the background, as
      :func:`jaxmix.detection.copy_paste` returns them. They come back with
      the ids of the kept rows renumbered and the pixels of dropped rows set
      to 0; ids outside [1, M] become 0.

  Returns:
    :class:`jaxmix.detection.BoxTargets` with `max_boxes` rows, or
    ``(targets, masks)`` when `masks` is given.

  Example:
    >>> images, t = jaxmix.detection.mosaic(key, images, boxes, classes, valid)
    >>> t.boxes.shape
    (8, 12, 4)
    >>> small = jaxmix.detection.compact_boxes(t, 4)
    >>> small.boxes.shape, bool((small.valid.sum(1) == jnp.minimum(t.valid.sum(1), 4)).all())
    ((8, 4, 4), True)
  """
  if not isinstance(targets, BoxTargets):
    raise TypeError(
      f"targets must be a jaxmix.detection.BoxTargets (as the detection functions return), "
      f"got {type(targets).__name__}."
    )
  max_boxes = validation.check_static_int("max_boxes", max_boxes, 1, "the box count kept")
  _check_format(box_format)
  boxes, classes, valid = check_box_targets(targets.boxes, targets.classes, targets.valid)
  validation.check_same_shape(
    {"targets.weights": targets.weights, "targets.boxes": boxes}, "[B, M]", prefix_len=2
  )
  b, m = classes.shape
  area = box_area(to_xyxy(boxes, box_format))
  score = jnp.where(valid & jnp.isfinite(area), area, -jnp.inf)
  # Rank by area, largest first; the stable sort gives ties to the earlier row.
  by_area = jnp.argsort(-score, axis=1, stable=True)
  rank = jnp.argsort(by_area, axis=1)
  keep = valid & (rank < max_boxes)
  # Kept rows first in their original order, then the others (read back as padding).
  rows = jnp.arange(m, dtype=jnp.int32)
  order = jnp.argsort(jnp.where(keep, rows, m + rows), axis=1, stable=True)[:, :max_boxes]
  kept = jnp.take_along_axis(keep, order, axis=1)
  if max_boxes > m:
    extra = max_boxes - m
    order = jnp.concatenate([order, jnp.zeros((b, extra), order.dtype)], axis=1)
    kept = jnp.concatenate([kept, jnp.zeros((b, extra), bool)], axis=1)
  take = lambda x: jnp.take_along_axis(x, order.reshape(order.shape + (1,) * (x.ndim - 2)), axis=1)
  out = BoxTargets(
    boxes=jnp.where(kept[..., None], take(boxes), 0.0).astype(jnp.float32),
    classes=jnp.where(kept, take(classes), -1),
    valid=kept,
    weights=jnp.where(kept, take(jnp.asarray(targets.weights, jnp.float32)), 0.0),
  )
  if masks is None:
    return out
  validation.check_array("masks", masks, rank=3, dtype=jnp.integer, expected="int instance ids [B, H, W]")
  validation.check_array(
    "masks", masks, batch_size=b, message=f"masks have batch size {{shape[0]}} but the targets have {b}."
  )
  # lookup[b, old id] = new id (0 for the background, dropped rows and ids outside [1, M]).
  new_ids = jnp.where(kept, jnp.arange(1, max_boxes + 1, dtype=jnp.int32), 0)
  lookup = jnp.zeros((b, m + 1), jnp.int32).at[jnp.arange(b)[:, None], order + 1].max(new_ids)
  ids = jnp.asarray(masks).astype(jnp.int32)
  ids = jnp.where((ids >= 1) & (ids <= m), ids, 0)
  renamed = jnp.take_along_axis(lookup, ids.reshape(b, -1), axis=1).reshape(ids.shape)
  return out, renamed
