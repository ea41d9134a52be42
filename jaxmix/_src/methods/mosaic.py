"""Mosaic (Bochkovskiy et al. 2020, YOLOv4; Ultralytics YOLOv5 ``load_mosaic``).

Four images — the sample itself and three partners — tile a 2×2 grid around
a random centre and the result is cropped back to the image size. YOLOv5
pastes four s×s images into a 2s×2s canvas with their inner corners at a
centre drawn uniformly in ``[s/2, 3s/2]`` and (with no further affine
jitter) keeps the central s×s crop; in crop coordinates that is a split
point ``(cy, cx)`` uniform over the whole image, which is the default
``center_range=(0, 1)`` here. The quadrants are:

====  ==================  ==========================
slot  output region       source
====  ==================  ==========================
0     rows < cy, cols < cx  the sample itself (top left)
1     rows < cy, cols ≥ cx  partner 1 (top right)
2     rows ≥ cy, cols < cx  partner 2 (bottom left)
3     rows ≥ cy, cols ≥ cx  partner 3 (bottom right)
====  ==================  ==========================

Each source keeps its inner corner at the centre, so output pixel (r, c) of
slot k shows source pixel ``((r − cy) mod H, (c − cx) mod W)`` — the same
shift for all four slots. jaxmix therefore selects the slot per pixel in
source coordinates (iota comparisons) and rolls the result once per sample
(one gather of whole rows): no data-dependent shapes, no canvas.

Boxes are translated by the same shift, clipped to their slot, and dropped
(``valid=False``) when less than `min_visibility` of their area survives or
the crop cut them to less than `min_size` pixels wide or high (YOLOv5's
``box_candidates``: 10% and 2 px; unlike YOLOv5, a tiny box the crop left
whole is kept, as in :func:`jaxmix.detection.mix_boxes`). Output boxes are
`[B, 4N, ...]`, slot by slot.
"""

from __future__ import annotations

import typing

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import plan as plan_lib
from jaxmix._src.core import sampling
from jaxmix._src.core import validation

MOSAIC_PAIRINGS = ("roll", "permute")


@struct.dataclass
class MosaicPlan(plan_lib.PlanLike):
  """A four-source 2×2 mosaic.

  Attributes:
    lam: float32 `[B]`, the sample's own share: the area of every slot whose source is the
      sample itself (slot 0, and any other slot that drew it) over H·W.
    index: int32 `[B, 4]`, the source of each slot (column 0 is the sample).
    center: int32 `[B, 2]`, the split point (cy, cx) in ``[0, H] × [0, W]``.
    pairing: ``"roll"`` (sources i, i−1, i−2, i−3: slices) or ``"permute"``
      (three random permutations: gathers). Static.
    spatial_shape: (H, W) of the output (static).
  """

  lam: jax.Array
  index: jax.Array
  center: jax.Array
  pairing: str = struct.field(pytree_node=False, default="roll")
  spatial_shape: tuple[int, int] | None = struct.field(pytree_node=False, default=None)

  # Every output pixel is a copy of one source pixel, so integer leaves
  # (label maps) come through exactly.
  selects_pixels = True

  def shares(self) -> jax.Array:
    """float32 `[B, 4]`: each slot's share of the output pixels."""
    assert self.spatial_shape is not None  # sample_mosaic always sets it
    h, w = self.spatial_shape
    cy = self.center[:, 0].astype(jnp.float32)
    cx = self.center[:, 1].astype(jnp.float32)
    area = jnp.stack([cy * cx, cy * (w - cx), (h - cy) * cx, (h - cy) * (w - cx)], axis=1)
    return area / (h * w)

  def source(self, x: jax.Array, slot: int) -> jax.Array:
    """The batch `x` reordered so row i holds slot `slot`'s source of sample i."""
    return pairing_lib.take_slot(x, self.pairing, self.index[:, slot], slot)

  def mix_leaf(self, x: jax.Array, data_format: str) -> jax.Array:
    assert self.spatial_shape is not None  # sample_mosaic always sets it
    return mix_slots(self.center, self.spatial_shape, [self.source(x, k) for k in range(4)], data_format)

  def mix_labels(self, y: jax.Array) -> jax.Array:
    shares = self.shares()
    return typing.cast(jax.Array, sum(shares[:, k, None] * self.source(y, k) for k in range(4)))


def mix_slots(
  center: jax.Array, spatial_shape: tuple[int, int], sources: list[jax.Array], data_format: str
) -> jax.Array:
  """The 2×2 mosaic of four batches `sources` (slot order) split at `center` `[B, 2]` (cy, cx)."""
  h, w = spatial_shape
  x = sources[0]
  h_axis, w_axis = validation.spatial_axes(x.ndim, data_format)
  cy, cx = center[:, 0], center[:, 1]

  def expand(m: jax.Array, axis: int) -> jax.Array:
    shape = [1] * x.ndim
    shape[0], shape[axis] = m.shape
    return m.reshape(shape)

  # Slot of each source pixel, in source coordinates: slot 0/1 rows are
  # those that land above cy after the roll, i.e. r' >= H - cy.
  top = expand(jnp.arange(h, dtype=jnp.int32)[None, :] >= (h - cy)[:, None], h_axis)
  left = expand(jnp.arange(w, dtype=jnp.int32)[None, :] >= (w - cx)[:, None], w_axis)
  s = sources
  tiled = jnp.where(top, jnp.where(left, s[0], s[1]), jnp.where(left, s[2], s[3]))
  return _roll_per_sample(tiled, cy, cx, h_axis)


def _roll_per_sample(x: jax.Array, shift_h: jax.Array, shift_w: jax.Array, h_axis: int) -> jax.Array:
  """``jnp.roll`` of each sample by its own (shift_h, shift_w) over axes (h_axis, h_axis + 1).

  One row gather: `x` is viewed as rows ``[P·H, W·C']`` (P = the axes before
  H, C' = those after W), each row doubled along W so that a rolled row is
  one contiguous slice of it; output row (p, h) is the slice of doubled row
  ``(p, (h − shift_h) mod H)`` starting at ``((W − shift_w) mod W)·C'``. A
  vmapped ``jnp.roll`` with traced shifts gathers the whole image twice and
  is about twice as slow on the CPU.
  """
  shape = x.shape
  b, h, w = shape[0], shape[h_axis], shape[h_axis + 1]
  per_sample = int(np.prod(shape[1:h_axis], dtype=np.int64))  # C for NCHW, 1 otherwise
  unit = int(np.prod(shape[h_axis + 2 :], dtype=np.int64))  # C for NHWC, 1 otherwise
  rows = x.reshape(b * per_sample * h, w * unit)
  doubled = jnp.concatenate([rows, rows], axis=1)
  shift_h = jnp.repeat(shift_h.astype(jnp.int32), per_sample)  # per row block p
  shift_w = jnp.repeat(shift_w.astype(jnp.int32), per_sample)
  block = jnp.arange(b * per_sample, dtype=jnp.int32)[:, None]
  row = block * h + (jnp.arange(h, dtype=jnp.int32)[None, :] - shift_h[:, None]) % h
  col = jnp.broadcast_to(((w - shift_w) % w * unit)[:, None], row.shape)
  starts = jnp.stack([row.reshape(-1), col.reshape(-1)], axis=-1)
  dims = jax.lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0, 1))
  out = jax.lax.gather(doubled, starts, dims, slice_sizes=(1, w * unit), mode="promise_in_bounds")
  return out.reshape(shape)


def check_center_range(center_range: typing.Any) -> tuple[typing.Any, typing.Any]:
  """``(lo, hi)`` of `center_range`, in [0, 1] with lo ≤ hi where static; a ValueError naming it otherwise."""
  if len(tuple(center_range)) != 2:
    raise ValueError(f"center_range must be (lo, hi), got {center_range!r}.")
  lo, hi = center_range
  validation.check_unit_interval("center_range[0]", lo)
  validation.check_unit_interval("center_range[1]", hi)
  # lo and hi are real here: check_unit_interval compared them with 0 and 1.
  if validation.is_static_number(lo) and validation.is_static_number(hi) and lo > hi:
    raise ValueError(f"center_range must have lo <= hi, got {center_range!r}.")
  return lo, hi


def sample_mosaic(
  key: jax.Array,
  batch_size: int,
  spatial_shape: tuple[int, int] | None = None,
  *,
  center_range: tuple[jax.typing.ArrayLike, jax.typing.ArrayLike] = (0.0, 1.0),
  prob: jax.typing.ArrayLike = 1.0,
  pairing: str = "roll",
) -> MosaicPlan:
  """Samples a Mosaic plan.

  Args:
    key: PRNG key.
    batch_size: B (static).
    spatial_shape: (H, W) of the images (static); H ≠ W is fine.
    center_range: (lo, hi), the split point is ``floor(U(lo, hi)·H)`` rows
      and ``floor(U(lo, hi)·W)`` columns, drawn independently. (0, 1) is
      YOLOv5's ``mosaic_border = -s/2``. Traced.
    prob: probability that a sample is a mosaic; otherwise it is returned
      unchanged (YOLOv5's ``mosaic`` hyperparameter, 1.0 by default). Traced.
    pairing: ``"roll"`` (partners i−1, i−2, i−3; slices) or ``"permute"``
      (three random permutations, as YOLOv5's random picks; gathers, and a
      source may repeat or be the sample itself). Static.

  Returns:
    A :class:`MosaicPlan`; use it with :func:`jaxmix.apply`,
    :func:`jaxmix.mix_labels` (area-weighted soft labels),
    :func:`jaxmix.segmentation.mix_label_maps` and :func:`mosaic_boxes`.

  Example:
    >>> plan = jaxmix.sample_mosaic(key, 8, (32, 32))
    >>> images = jaxmix.apply(plan, images)
    >>> targets = jaxmix.mix_labels(plan, labels, num_classes=80)
    >>> images.shape, targets.shape
    ((8, 32, 32, 3), (8, 80))
  """
  validation.check_key(key)
  batch_size = validation.check_batch_size(batch_size)
  validation.check_unit_interval("prob", prob)
  validation.check_choice("pairing", pairing, MOSAIC_PAIRINGS)
  lo, hi = check_center_range(center_range)
  spatial_shape = validation.check_spatial_shape(spatial_shape)
  h, w = spatial_shape
  k_c, k_gate, k_perm = jax.random.split(key, 3)
  u = jax.random.uniform(k_c, (batch_size, 2), minval=jnp.asarray(lo, jnp.float32), maxval=hi)
  size = jnp.array([h, w], jnp.float32)
  center = jnp.clip(jnp.floor(u * size), 0, size).astype(jnp.int32)
  on = sampling.gate(k_gate, prob, (batch_size,))
  center = jnp.where(on[:, None], center, jnp.array([h, w], jnp.int32))
  ar = jnp.arange(batch_size, dtype=jnp.int32)
  if pairing == "roll":
    index = jnp.stack([(ar - k) % batch_size for k in range(4)], axis=1)
  else:
    perms = [jax.random.permutation(k, batch_size).astype(jnp.int32) for k in jax.random.split(k_perm, 3)]
    index = jnp.stack([ar] + perms, axis=1)
  plan = MosaicPlan(
    lam=jnp.zeros((batch_size,)), index=index, center=center, pairing=pairing, spatial_shape=spatial_shape
  )
  # λ is the share of every slot whose source is the sample itself: permute can draw it for
  # slots 1-3 too (so can roll for B < 4).
  own = index == ar[:, None]
  return plan.replace(lam=jnp.sum(jnp.where(own, plan.shares(), 0.0), axis=1))
