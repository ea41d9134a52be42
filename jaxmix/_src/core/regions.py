"""Regions of an image a plan refers to: boxes as iota masks, and the one rule that draws boxes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def region_mask(region: jax.Array, spatial_shape: tuple[int, int]) -> jax.Array:
  """bool `[B, H, W]`: True inside each half-open region (top, bottom, left, right), from iota comparisons."""
  h, w = spatial_shape
  rows = jnp.arange(h, dtype=jnp.int32)[None, :, None]
  cols = jnp.arange(w, dtype=jnp.int32)[None, None, :]
  # lax.index_in_dim is a slice on every jax version; `region[:, i, None, None]`
  # lowers to a gather on jax 0.8.1.
  top, bottom, left, right = (lax.index_in_dim(region, i, axis=1).reshape(-1, 1, 1) for i in range(4))
  return (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)


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
