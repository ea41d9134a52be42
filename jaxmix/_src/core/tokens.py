"""Token grids of vision transformers: per-token weights read against a plan's pixels.

Shared by the label rules that re-weight a plan's labels with a per-token map
after (or beside) the forward pass: TransMix's CLS attention and TokenMix's
teacher activation.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix._src.core import validation


def token_grid(num_tokens: int, grid: Any, name: str = "attention") -> tuple[int, int]:
  """(h, w) of `num_tokens` patch tokens: `grid` when given (h·w must be `num_tokens`), else a square."""
  if num_tokens == 0:
    raise ValueError(f"{name} has no patch tokens (N = 0); pass the CLS token's attention to the patches.")
  if grid is None:
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
      hint = (
        f" It looks like the CLS token is included: pass {name}[..., 1:], the patch tokens only."
        if num_tokens > 1 and math.isqrt(num_tokens - 1) ** 2 == num_tokens - 1
        else ""
      )
      raise ValueError(
        f"{name} has {num_tokens} tokens, not a square grid; pass token_grid=(h, w) with h·w = "
        f"{num_tokens}.{hint}"
      )
    return side, side
  try:
    parsed = tuple(int(s) for s in grid)
  except TypeError:
    parsed = ()
  if len(parsed) != 2 or min(parsed) < 1 or parsed[0] * parsed[1] != num_tokens:
    raise ValueError(
      f"token_grid must be (h, w) with h·w = {num_tokens}, the number of patch tokens in {name}; "
      f"got {grid!r}."
    )
  return parsed[0], parsed[1]


def own_at_tokens(own: jax.Array, grid: tuple[int, int]) -> jax.Array:
  """float32 `[B, h·w]`: the own-content weight `[B, H, W]` (or `[B, 1, 1]`) read at pixel
  ``(⌊i·H/h⌋, ⌊j·W/w⌋)`` for token ``(i, j)``: PyTorch's nearest ``nn.Upsample``, as TransMix's code."""
  b, height, width = own.shape
  gh, gw = grid
  if height == width == 1:
    return jnp.broadcast_to(own.reshape(b, 1), (b, gh * gw))
  if height % gh == 0 and width % gw == 0:  # a patch grid that divides the image: a strided slice
    return own[:, :: height // gh, :: width // gw].reshape(b, gh * gw)
  rows = np.arange(gh) * height // gh
  cols = np.arange(gw) * width // gw
  return own[:, rows][:, :, cols].reshape(b, gh * gw)


def check_token_weights(name: str, values: Any, batch_size: int, expected: str, rank: set[int]) -> None:
  """A ValueError/TypeError naming `name` unless `values` is a float array of a rank in `rank` with B
  rows and (when known while tracing) no negative entry."""
  validation.check_array(name, values, expected=expected, dtype=jnp.floating)
  validation.check_array(name, values, expected=expected, rank=rank, batch_size=batch_size)
  concrete = validation.concrete_values(values)
  if concrete is not None and concrete.size and np.nanmin(concrete) < 0:
    raise ValueError(f"{name} must be non-negative weights, got a minimum of {np.nanmin(concrete)!r}.")


def weighted_share(weights: jax.Array, own: jax.Array) -> jax.Array:
  """float32 `[B]`: ``Σ_t weights·own / Σ_t weights`` per row, `weights` `[B, N]` ≥ 0 and `own` `[B, N]`.

  A row whose weights sum to 0 is read as uniform. Written from the row's largest own weight down,
  so a constant own weight (MixUp's λ) comes back exactly.
  """
  total = weights.sum(-1, keepdims=True)
  weights = jnp.where(total > 0, weights, 1.0)
  top = own.max(-1, keepdims=True)
  share = top - (weights * (top - own)).sum(-1, keepdims=True) / weights.sum(-1, keepdims=True)
  return share[:, 0]
