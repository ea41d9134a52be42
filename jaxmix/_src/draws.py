"""Random draws shared by the samplers: λ, the mixing gate, per-mode layout."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmix._src import pairing as pairing_lib
from jaxmix._src import validation

# Candidates drawn at once per Gamma variate. Marsaglia–Tsang accepts each with
# probability >= 0.95 for shape >= 1, so four all fail with probability < 6e-6
# (about 1% of batches of 2048 draws); only then does the exact loop
# (jax.random.loggamma) run, under a lax.cond.
_TRIES = 4


def log_gamma(key: jax.Array, a: jax.Array, shape: tuple[int, ...], tries: int = _TRIES) -> jax.Array:
  """log of Gamma(a, 1) draws, `a > 0` (traced, broadcast to `shape`).

  Marsaglia & Tsang (2000), "A simple method for generating gamma variables",
  with their boost ``Gamma(a) = Gamma(a + 1) · U^(1/a)`` for ``a < 1``, done in
  log space so small shapes do not underflow. `tries` candidates are drawn
  at once and the first accepted one is kept, which is the rejection
  sampler's own output; where all are rejected an exact draw from
  ``jax.random.loggamma`` replaces it (conditional on the first `tries`
  rejections the rest of the sequence is again an exact draw). This avoids
  ``jax.random.gamma``'s per-element while loop, which dominates the cost of
  per-sample λ for small images on the CPU. All uniforms come from one call
  (the normals by the inverse CDF, as ``jax.random.normal`` makes them).
  """
  a = jnp.broadcast_to(jnp.asarray(a, jnp.float32), shape)
  k_unif, k_exact = jax.random.split(key)
  boost = a < 1
  d = jnp.where(boost, a + 1.0, a) - 1.0 / 3.0
  c = jax.lax.rsqrt(9.0 * d)
  uniforms = jax.random.uniform(k_unif, (2 * tries + 1,) + shape, jnp.float32)
  # A uniform of exactly 0 gives x = -inf, v = -inf: rejected by v > 0.
  x = jnp.sqrt(2.0) * jax.lax.erf_inv(2.0 * uniforms[:tries] - 1.0)
  u = uniforms[tries : 2 * tries]
  v = (1.0 + c * x) ** 3
  log_v = jnp.log(jnp.where(v > 0, v, 1.0))
  ok = (v > 0) & (jnp.log(u) < 0.5 * x * x + d - d * v + d * log_v)
  first = jnp.argmax(ok, axis=0)
  log_g = jnp.log(d) + jnp.take_along_axis(log_v, first[None], axis=0)[0]
  # The boost's U in (0, 1]: 1 - uniform[0, 1).
  log_g = log_g + jnp.where(boost, jnp.log1p(-uniforms[-1]) / a, 0.0)
  accepted = jnp.any(ok, axis=0)
  exact = jax.lax.cond(
    jnp.all(accepted), lambda: jnp.zeros(shape), lambda: jax.random.loggamma(k_exact, a, shape)
  )
  return jnp.where(accepted, log_g, exact)


def beta(
  key: jax.Array,
  alpha: jax.typing.ArrayLike,
  shape: tuple[int, ...],
  beta_: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  """λ ~ Beta(α, β) (β = α by default); α ≤ 0 gives λ = 1 (timm: the method is off).

  `alpha` may be traced; it is never used as a Python branch. λ is
  ``G_a / (G_a + G_b)`` for independent Gamma draws (:func:`log_gamma`).
  """
  alpha = jnp.asarray(alpha, jnp.float32)
  b = alpha if beta_ is None else jnp.asarray(beta_, jnp.float32)
  on = (alpha > 0) & (b > 0)
  safe_a = jnp.where(on, alpha, 1.0)
  safe_b = jnp.where(on, b, 1.0)
  shapes = jnp.stack([jnp.broadcast_to(safe_a, shape), jnp.broadcast_to(safe_b, shape)])
  log_ga, log_gb = log_gamma(key, shapes, (2,) + tuple(shape))
  top = jnp.maximum(log_ga, log_gb)
  ga, gb = jnp.exp(log_ga - top), jnp.exp(log_gb - top)
  return jnp.where(on, ga / (ga + gb), 1.0)


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
