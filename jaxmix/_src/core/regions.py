"""Regions of an image a plan refers to: boxes as iota masks, centred boxes."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def box_mask(box: jax.Array, spatial_shape: tuple[int, int]) -> jax.Array:
  """bool `[B, H, W]`: True inside each half-open box, from iota comparisons."""
  h, w = spatial_shape
  rows = jnp.arange(h, dtype=jnp.int32)[None, :, None]
  cols = jnp.arange(w, dtype=jnp.int32)[None, None, :]
  top, bottom, left, right = (box[:, i, None, None] for i in range(4))
  return (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)


def centered_box(
  cy: jax.Array,
  cx: jax.Array,
  cut_h: jax.Array,
  cut_w: jax.Array,
  spatial_shape: tuple[int, int],
) -> tuple[jax.Array, jax.Array]:
  """A box of about ``cut_h × cut_w`` centred at (cy, cx), clipped to the image.

  As in the CutMix/SaliencyMix/ResizeMix reference code, the box spans
  ``[c - cut//2, c + cut//2)`` on each axis before clipping.

  Returns:
    ``(box, lam)``: int32 `[n, 4]` (top, bottom, left, right) and float32
    `[n]`, the exact share of pixels outside the box.
  """
  h, w = spatial_shape
  top, bottom = jnp.clip(cy - cut_h // 2, 0, h), jnp.clip(cy + cut_h // 2, 0, h)
  left, right = jnp.clip(cx - cut_w // 2, 0, w), jnp.clip(cx + cut_w // 2, 0, w)
  box = jnp.stack([top, bottom, left, right], axis=-1).astype(jnp.int32)
  area = (bottom - top) * (right - left)
  return box, 1.0 - area.astype(jnp.float32) / (h * w)


def expand_spatial(weight: jax.Array, ndim: int, data_format: str) -> jax.Array:
  """Reshapes a `[B, H, W]` map so it broadcasts against a leaf of rank `ndim`."""
  if ndim == 3:
    return weight
  if data_format == "NHWC":
    return weight[..., None]
  return weight[:, None]
