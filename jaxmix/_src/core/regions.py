"""Regions of an image a plan refers to: boxes as iota masks, and the one rule that draws boxes."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax


def region_mask(region: jax.Array, spatial_shape: tuple[int, ...]) -> jax.Array:
  """bool `[B, *spatial_shape]`: True inside each half-open region, from iota comparisons.

  A region of a k-D plan is int `[B, 2k]`: (start, stop) for each axis in
  order, so (top, bottom, left, right) for images `[B, H, W]` and
  (front, back, top, bottom, left, right) for cuboids `[B, D, H, W]`.
  """
  k = len(spatial_shape)
  inside = None
  for axis, size in enumerate(spatial_shape):
    shape = [1] * (k + 1)
    shape[axis + 1] = size
    pos = jnp.arange(size, dtype=jnp.int32).reshape(shape)
    # lax.index_in_dim is a slice on every jax version; `region[:, i, None, None]`
    # lowers to a gather on jax 0.8.1.
    start, stop = (lax.index_in_dim(region, 2 * axis + j, axis=1).reshape((-1,) + (1,) * k) for j in (0, 1))
    on_axis = (pos >= start) & (pos < stop)
    inside = on_axis if inside is None else inside & on_axis
  assert inside is not None
  return inside


def scaled_sides(ratio: jax.Array, spatial_shape: tuple[int, int]) -> tuple[jax.Array, jax.Array]:
  """int32 box sides ``(int(H·ratio), int(W·ratio))``, floored as Python's ``int`` does.

  CutMix and SaliencyMix pass ``ratio = √(1 - λ)`` (timm's ``rand_bbox``,
  the CutMix and SaliencyMix code); ResizeMix passes its side ratio τ.
  """
  h, w = spatial_shape
  ratio = jnp.asarray(ratio, jnp.float32)
  return jnp.floor(h * ratio).astype(jnp.int32), jnp.floor(w * ratio).astype(jnp.int32)


def centered_box(
  cy: jax.Array,
  cx: jax.Array,
  cut_h: jax.Array,
  cut_w: jax.Array,
  spatial_shape: tuple[int, int],
) -> tuple[jax.Array, jax.Array]:
  """The one box rule of jaxmix: a ``cut_h × cut_w`` box around (cy, cx), clipped to the image.

  Rows ``[cy - cut_h//2, cy - cut_h//2 + cut_h)``, i.e. up to
  ``cy + (cut_h + 1)//2``, and likewise columns, then clipped to
  ``[0, H)`` and ``[0, W)``. Before clipping the box is exactly
  ``cut_h × cut_w``: this is timm's current ``rand_bbox`` (timm 1.0.31,
  ``data/mixup.py``). The CutMix paper's code, older timm releases, the
  SaliencyMix code and OpenMixup end the box at ``c + cut//2``, which drops
  the last row (column) of every odd side, so the box is smaller than drawn
  and λ is biased upwards (at 32 × 32, α = 1: mean λ about 0.701 against 0.689).
  Every box-drawing method in jaxmix (CutMix and timm's switch, SaliencyMix,
  ResizeMix, and ``cutmix_detection`` through CutMix) draws its box here, so
  one rule holds everywhere. A box placed wholly inside the image is the
  case ``cut_h//2 <= cy <= H - (cut_h + 1)//2``.

  Args:
    cy, cx: int `[n]` centres (any integer; clipping handles the borders).
    cut_h, cut_w: int `[n]` unclipped sides, >= 0.
    spatial_shape: (H, W).

  Returns:
    ``(box, lam)``: int32 `[n, 4]` (top, bottom, left, right), half-open,
    and float32 `[n]`, the exact share of pixels outside the clipped box
    (timm's ``correct_lam``: ``1 - clipped area / (H·W)``).
  """
  h, w = spatial_shape
  cy, cx = jnp.asarray(cy, jnp.int32), jnp.asarray(cx, jnp.int32)
  cut_h, cut_w = jnp.asarray(cut_h, jnp.int32), jnp.asarray(cut_w, jnp.int32)
  top, left = cy - cut_h // 2, cx - cut_w // 2
  bottom, right = top + cut_h, left + cut_w
  top, bottom = jnp.clip(top, 0, h), jnp.clip(bottom, 0, h)
  left, right = jnp.clip(left, 0, w), jnp.clip(right, 0, w)
  box = jnp.stack([top, bottom, left, right], axis=-1)
  area = (bottom - top) * (right - left)
  return box, 1.0 - area.astype(jnp.float32) / (h * w)


def expand_spatial(weight: jax.Array, ndim: int, data_format: str) -> jax.Array:
  """Reshapes a `[B, H, W]` map so it broadcasts against a leaf of rank `ndim`."""
  if ndim == 3:
    return weight
  if data_format == "NHWC":
    return weight[..., None]
  return weight[:, None]


def expand_to_axes(weight: jax.Array, ndim: int, axes: tuple[int, ...]) -> jax.Array:
  """Reshapes a `[B, *S]` (or `[1, *S]`) map of k spatial dims so that it broadcasts against a leaf of rank
  `ndim` whose spatial axes are `axes` (increasing): S lands on those axes, 1 on every other.

  A 2-D map on `[B, T, H, W, C]` with axes (2, 3) is `[B, 1, H, W, 1]`: the same
  map over every frame, a tube. No copy is made; XLA fuses the broadcast.
  """
  sizes = [1] * ndim
  sizes[0] = weight.shape[0]
  for axis, size in zip(axes, weight.shape[1:], strict=True):
    sizes[axis] = size
  return weight.reshape(sizes)


def scaled_sides_nd(ratio: jax.Array, spatial_shape: tuple[int, ...]) -> tuple[jax.Array, ...]:
  """int32 sides ``int(S_i·ratio)`` for every axis, floored as Python's ``int`` does (k-D
  :func:`scaled_sides`)."""
  ratio = jnp.asarray(ratio, jnp.float32)
  return tuple(jnp.floor(size * ratio).astype(jnp.int32) for size in spatial_shape)


def side_ratio(lam: jax.Array, k: int) -> jax.Array:
  """CutMix's side ratio carried to k axes: ``(1 - λ)^(1/k)`` (``√`` for 2, ``∛`` for 3), so a box of
  sides ``int(S_i·ratio)`` holds about ``1 - λ`` of the pixels (voxels)."""
  if k == 2:
    return jnp.sqrt(1.0 - lam)
  return jnp.cbrt(1.0 - lam) if k == 3 else jnp.power(1.0 - lam, 1.0 / k)


def centered_cuboid(
  centres: tuple[jax.Array, ...], cuts: tuple[jax.Array, ...], spatial_shape: tuple[int, ...]
) -> tuple[jax.Array, jax.Array]:
  """:func:`centered_box` on k axes: on each axis ``[c - cut//2, c - cut//2 + cut)`` clipped to ``[0, S)``.

  Returns:
    ``(region, lam)``: int32 `[n, 2k]` (start, stop per axis) and float32 `[n]`,
    the exact share of voxels outside the clipped cuboid.
  """
  bounds = []
  volume = None
  for c, cut, size in zip(centres, cuts, spatial_shape, strict=True):
    c, cut = jnp.asarray(c, jnp.int32), jnp.asarray(cut, jnp.int32)
    start = c - cut // 2
    stop = start + cut
    start, stop = jnp.clip(start, 0, size), jnp.clip(stop, 0, size)
    bounds += [start, stop]
    volume = stop - start if volume is None else volume * (stop - start)
  assert volume is not None
  total = 1
  for size in spatial_shape:
    total *= size
  return jnp.stack(bounds, axis=-1), 1.0 - volume.astype(jnp.float32) / total


def paste_rows(
  x: jax.Array,
  region: jax.Array,
  keep: jax.Array,
  take_partner: Callable[[jax.Array], jax.Array],
  axes: tuple[int, int],
  band: int | None = None,
) -> jax.Array:
  """`x` with each sample's `region` `[B, 4]` copied from its partner, visiting only the region's rows.

  The rows from the smallest top to the largest bottom are visited in bands
  of `band` rows (the last band moved up to stay inside the image; rows an
  earlier band wrote are kept); by default as many rows as fit in 256 KiB,
  at least one, so that a band stays in cache (one-row bands measured
  fastest on the 2-core CPU: benchmarks/results/cutmix-inplace-cpu-2core.md).
  Each band is read once, its partner rows are taken from it by
  `take_partner` (a function of a `[B, ...]` slice), and it is written back
  with ``lax.dynamic_update_slice``: under a jit whose input buffer is
  donated, XLA writes the band in place and the pixels outside the region's
  rows are never touched. Samples with `keep`
  `[B]` set (their own partner) stay as they are. `axes` are the leaf's
  (row, column) axes. The result equals ``where(region_mask, partner, x)``
  for any regions; it pays off when they share their rows (one box per
  batch).
  """
  b, h, w = x.shape[0], x.shape[axes[0]], x.shape[axes[1]]
  if band is None:
    row_bytes = x.size // h * x.dtype.itemsize
    band = max(1, (256 * 1024) // max(row_bytes, 1))
  band = min(band, h)
  per_sample = (b,) + (1,) * (x.ndim - 1)
  top, bottom, left, right = (region[:, i].reshape(per_sample) for i in range(4))
  empty = keep.reshape(per_sample) | (bottom <= top) | (right <= left)
  lo = jnp.min(jnp.where(empty, h, top), initial=h)
  hi = jnp.max(jnp.where(empty, 0, bottom), initial=0)
  bands = (jnp.maximum(hi - lo, 0) + band - 1) // band

  def along(axis: int, size: int) -> jax.Array:
    shape = [1] * x.ndim
    shape[axis] = size
    return jnp.arange(size, dtype=jnp.int32).reshape(shape)

  cols = (along(axes[1], w) >= left) & (along(axes[1], w) < right) & ~empty
  rows = along(axes[0], band)

  def paste(i: jax.Array, out: jax.Array) -> jax.Array:
    first = lo + i * band  # rows before `first` were written by earlier bands
    start = jnp.minimum(first, h - band)
    block = lax.dynamic_slice_in_dim(out, start, band, axis=axes[0])
    row = start + rows
    inside = (row >= first) & (row >= top) & (row < bottom) & cols
    return lax.dynamic_update_slice_in_dim(out, jnp.where(inside, take_partner(block), block), start, axes[0])

  return lax.fori_loop(0, bands, paste, x)
