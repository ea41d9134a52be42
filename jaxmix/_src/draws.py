"""Random draws shared by the samplers: λ, the mixing gate, per-mode layout."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmix._src import pairing as pairing_lib
from jaxmix._src import validation


def beta(
  key: jax.Array,
  alpha: jax.typing.ArrayLike,
  shape: tuple[int, ...],
  beta_: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  """λ ~ Beta(α, β) (β = α by default); α ≤ 0 gives λ = 1 (timm: the method is off).

  `alpha` may be traced; it is never used as a Python branch.
  """
  alpha = jnp.asarray(alpha, jnp.float32)
  b = alpha if beta_ is None else jnp.asarray(beta_, jnp.float32)
  on = (alpha > 0) & (b > 0)
  safe_a = jnp.where(on, alpha, 1.0)
  safe_b = jnp.where(on, b, 1.0)
  lam = jax.random.beta(key, safe_a, safe_b, shape, jnp.float32)
  return jnp.where(on, lam, 1.0)


def gate(key: jax.Array, prob: jax.typing.ArrayLike, shape: tuple[int, ...]) -> jax.Array:
  """bool: whether mixing happens, True with probability `prob` (traced)."""
  return jax.random.uniform(key, shape) < jnp.asarray(prob, jnp.float32)


def num_draws(mode: str, batch_size: int) -> int:
  """How many independent draws a mode needs: 1 per batch, else 1 per sample."""
  validation.check_choice("mode", mode, validation.MODES)
  return 1 if mode == "batch" else batch_size


def per_sample(values: jax.Array, mode: str, index: jax.Array, pairing: str | None = None) -> jax.Array:
  """Lays draws of shape `[n, ...]` out per sample, `[B, ...]`.

  batch: the one draw is broadcast. pair: both members of a pair take the
  draw of the lower index, so the pair shares λ and box (timm's pair mode).
  elem: one draw per sample as it is.

  Pass the plan's `pairing` so that pair mode with flip reads the partner's
  draw with a slice (no gather); without it the partner's draw is gathered
  through `index`.
  """
  batch_size = index.shape[0]
  if mode == "batch":
    return jnp.broadcast_to(values, (batch_size,) + values.shape[1:])
  if mode == "pair":
    lower = jnp.arange(batch_size, dtype=index.dtype) <= index
    lower = lower.reshape((batch_size,) + (1,) * (values.ndim - 1))
    return jnp.where(lower, values, pairing_lib.take_partner(values, pairing, index))
  return values
