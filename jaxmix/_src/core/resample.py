"""Per-sample resampling along one spatial axis with traced coordinates (a separable resize into a box
whose size is drawn: ResizeMix, SnapMix)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def take_along(x: jax.Array, index: jax.Array, axis: int) -> jax.Array:
  """Per-sample gather of `x` along `axis` with `index` `[B, n]`."""
  shape = [1] * x.ndim
  shape[0], shape[axis] = index.shape
  return jnp.take_along_axis(x, index.reshape(shape), axis=axis)


def two_taps(x: jax.Array, i0: jax.Array, i1: jax.Array, frac: jax.Array, axis: int) -> jax.Array:
  """Linear interpolation along `axis`: ``x[i0]·(1 − frac) + x[i1]·frac`` per sample (all `[B, n]`).
  The second tap is not read where its weight is 0 (an inf there must not give 0 · inf)."""
  shape = [1] * x.ndim
  shape[0], shape[axis] = frac.shape
  frac = frac.reshape(shape)
  first = take_along(x, i0, axis)
  return jnp.where(frac == 0, first, first * (1 - frac) + take_along(x, i1, axis) * frac)
