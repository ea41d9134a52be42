"""Random draws shared by the samplers: λ, the mixing gate, per-mode layout.

Edges of the concentration α, the same for every method that draws λ (and
for :func:`dirichlet`), whatever α's value when traced:

* α ≤ 0, −∞ or NaN: no mixing, λ = 1 (timm's "α = 0 turns the method off").
* 0 < α < ``ALPHA_MIN`` (1e-20): drawn with α = ``ALPHA_MIN``, which is the
  two-point limit of α → 0: λ is 0 or 1 (to float32), each with probability
  1/2 for Beta(α, α).
* α > ``ALPHA_MAX`` (1e20), +∞ included: the point mass at the mean, λ = 0.5
  for Beta(α, α) (1/k each for a k-way Dirichlet). Beta(α, α) is already 0.5
  to float32 from α ≈ 1e15 on, so the clamp changes no draw.

The Gamma draws run a bounded number of rejection rounds, so no traced value
can make a call hang (a ``jax.random.beta`` loop never ends at α = +∞).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from jaxmix._src.core import pairing as pairing_lib
from jaxmix._src.core import validation

# Candidates drawn at once per Gamma variate. Marsaglia–Tsang accepts each with
# probability >= 0.95 for shape >= 1, so four all fail with probability < 6e-6
# (about 1% of batches of 2048 draws); only those draw again, in a while loop
# that otherwise runs no iteration.
_TRIES = 4
# At most this many further rounds: all 4 · 33 candidates of a valid element
# fail with probability < 0.05^132, so the bound never binds in practice; it
# only guarantees that the loop ends (e.g. for a NaN shape).
_MAX_ROUNDS = 32
# Concentrations are clamped into [ALPHA_MIN, ALPHA_MAX] before drawing (see
# the module docstring).
ALPHA_MIN = 1e-20
ALPHA_MAX = 1e20


def concentration(alpha: jax.typing.ArrayLike) -> tuple[jax.Array, jax.Array]:
  """``(on, safe)`` for a traced concentration: `on` is ``α > 0`` (False for NaN), and
  `safe` is α clamped into ``[ALPHA_MIN, ALPHA_MAX]`` where on, 1 elsewhere: finite,
  positive, fit to draw from."""
  alpha = jnp.asarray(alpha, jnp.float32)
  on = alpha > 0
  return on, jnp.where(on, jnp.clip(alpha, ALPHA_MIN, ALPHA_MAX), 1.0)


def _log1p_remainder(t: jax.Array) -> jax.Array:
  """``log1p(t) − t + t²/2 − t³/3`` without cancellation: its series for |t| < 0.1."""
  small = jnp.abs(t) < 0.1
  s = jnp.where(small, t, 0.0)
  # −t⁴/4 + t⁵/5 − … − t¹⁰/10 + t¹¹/11 by Horner; the first term left out is below 3e-9 relative.
  series = jnp.zeros_like(s)
  for n in range(11, 3, -1):
    series = series * s + (-1.0) ** (n + 1) / n
  series = series * s**4
  return jnp.where(small, series, jnp.log1p(t) - t + t * t / 2 - t * t * t / 3)


def _candidates(
  key: jax.Array, d: jax.Array, tries: int, extra: int = 0
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One round of `tries` Marsaglia–Tsang candidates per element.

  Returns ``(log v of the first accepted candidate, accepted, extra uniforms)``;
  where none is accepted the first output is meaningless. The normals come
  from uniforms by the inverse CDF, as ``jax.random.normal`` makes them, so
  one call draws everything; a uniform of exactly 0 gives x = −inf and is
  rejected by ``v > 0``.
  """
  shape = d.shape
  c = jax.lax.rsqrt(9.0 * d)
  uniforms = jax.random.uniform(key, (2 * tries + extra,) + shape, jnp.float32)
  x = jnp.sqrt(2.0) * jax.lax.erf_inv(2.0 * uniforms[:tries] - 1.0)
  u = uniforms[tries : 2 * tries]
  t = c * x
  v = (1.0 + t) ** 3
  log_v = jnp.log(jnp.where(v > 0, v, 1.0))
  # The test log u < x²/2 + d − d·v + d·log v, rewritten with t = c·x and
  # d·c² = 1/9 as log u < 3·d·(log1p(t) − t + t²/2 − t³/3): the same test
  # without the cancellation of d·v against d, which for d ≳ 1e7 left rounding
  # noise of size d·ulp and rejected about half of all candidates.
  ok = (v > 0) & (jnp.log(u) < 3.0 * d * _log1p_remainder(t))
  # The first accepted candidate, by selects (no gather).
  first = log_v[tries - 1]
  for i in reversed(range(tries - 1)):
    first = jnp.where(ok[i], log_v[i], first)
  return first, jnp.any(ok, axis=0), uniforms[2 * tries :]


# Jitted (shapes static) so that eager calls reuse one compiled program: the
# while loop's body is a fresh closure each trace, which eager mode would
# compile again on every call.
@functools.partial(jax.jit, static_argnames=("shape", "tries"))
def log_gamma(key: jax.Array, a: jax.Array, shape: tuple[int, ...], tries: int = _TRIES) -> jax.Array:
  """log of Gamma(a, 1) draws, `a > 0` (traced, broadcast to `shape`).

  Marsaglia & Tsang (2000), "A simple method for generating gamma variables",
  with their boost ``Gamma(a) = Gamma(a + 1) · U^(1/a)`` for ``a < 1``, done in
  log space so small shapes do not underflow. Candidates come in rounds of
  `tries` per element and each element keeps its first accepted one, which
  is exactly the rejection sampler's output; a ``lax.while_loop`` draws
  further rounds only while some element has none, at most ``_MAX_ROUNDS``
  of them, so it always ends; an element still without an accepted
  candidate then (never seen for a finite positive shape; always for a NaN or
  infinite one) takes v = 1, the proposal's centre. This avoids
  ``jax.random.gamma``'s per-element loop, which dominates the cost of
  per-sample λ for small images on the CPU. Pass finite positive shapes
  (:func:`concentration` makes them).
  """
  a = jnp.broadcast_to(jnp.asarray(a, jnp.float32), shape)
  boost = a < 1
  d = jnp.where(boost, a + 1.0, a) - 1.0 / 3.0
  k_first, k_more = jax.random.split(key)
  log_v, accepted, extra = _candidates(k_first, d, tries, extra=1)

  def again(state):
    log_v, accepted, i = state
    new_v, new_ok, _ = _candidates(jax.random.fold_in(k_more, i), d, tries)
    return jnp.where(accepted, log_v, new_v), accepted | new_ok, i + 1

  def more(state):
    return ~jnp.all(state[1]) & (state[2] < _MAX_ROUNDS)

  log_v, accepted, _ = jax.lax.while_loop(more, again, (log_v, accepted, 0))
  log_v = jnp.where(accepted, log_v, 0.0)
  # The boost's U in (0, 1]: 1 - uniform[0, 1).
  return jnp.log(d) + log_v + jnp.where(boost, jnp.log1p(-extra[0]) / a, 0.0)


@functools.partial(jax.jit, static_argnames=("shape",))
def beta(
  key: jax.Array,
  alpha: jax.typing.ArrayLike,
  shape: tuple[int, ...],
  beta_: jax.typing.ArrayLike | None = None,
) -> jax.Array:
  """λ ~ Beta(α, β) (β = α by default), for any traced α, β.

  Edges (module docstring): α ≤ 0 or β ≤ 0 or either NaN gives λ = 1 (timm:
  the method is off); values in (0, 1e-20) are drawn as 1e-20 (Beta(α, α) →
  λ ∈ {0, 1}); values above 1e20, +∞ included, as 1e20, and when both are
  there λ is the mean α / (α + β) exactly (0.5 for β = α). Always finite, in
  [0, 1], and always returns.

  `alpha` may be traced; it is never used as a Python branch. λ is
  ``G_a / (G_a + G_b)`` for independent Gamma draws (:func:`log_gamma`).
  """
  on_a, safe_a = concentration(alpha)
  on_b, safe_b = (on_a, safe_a) if beta_ is None else concentration(beta_)
  on = on_a & on_b
  shapes = jnp.stack([jnp.broadcast_to(safe_a, shape), jnp.broadcast_to(safe_b, shape)])
  log_ga, log_gb = log_gamma(key, shapes, (2,) + tuple(shape))
  top = jnp.maximum(log_ga, log_gb)
  ga, gb = jnp.exp(log_ga - top), jnp.exp(log_gb - top)
  lam = ga / (ga + gb)
  point_mass = (safe_a >= ALPHA_MAX) & (safe_b >= ALPHA_MAX)
  lam = jnp.where(point_mass, safe_a / (safe_a + safe_b), lam)
  return jnp.where(on, lam, 1.0)


def dirichlet(key: jax.Array, alpha: jax.typing.ArrayLike, shape: tuple[int, ...], k: int) -> jax.Array:
  """Weights ``[*shape, k]`` ~ Dirichlet(α, …, α), for a traced α.

  Edges as for :func:`beta`: α ≤ 0 or NaN gives ``(1, 0, …, 0)`` (no
  mixing); α in (0, 1e-20) is drawn as 1e-20 (one slot takes all the
  weight); α above 1e20, +∞ included, gives 1/k everywhere. Normalised in log
  space, so small α does not underflow to 0/0.
  """
  on, safe = concentration(alpha)
  log_g = log_gamma(key, safe, tuple(shape) + (k,))
  weights = jax.nn.softmax(log_g, axis=-1)
  weights = jnp.where(safe >= ALPHA_MAX, 1.0 / k, weights)
  off = jnp.zeros((k,), jnp.float32).at[0].set(1.0)
  return jnp.where(on, weights, off)


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


def partner_index(key: jax.Array, batch_size: int, pairing: str, *, involution: bool = False) -> jax.Array:
  """int32 `[B]`: the partner of each sample.

  Args:
    key: PRNG key, used only by ``permute``.
    batch_size: B.
    pairing: ``"flip"``, ``"roll"`` or ``"permute"``.
    involution: require that partners are mutual (``pair`` mode). flip
      already is; ``permute`` then draws random disjoint pairs; ``roll``
      cannot be, and raises.
  """
  validation.check_choice("pairing", pairing, validation.PAIRINGS)
  ar = jnp.arange(batch_size, dtype=jnp.int32)
  if pairing == "flip":
    return ar[::-1]
  if pairing == "roll":
    if involution and batch_size > 2:
      raise ValueError(
        "mode='pair' needs mutual partners; pairing='roll' pairs i with i-1, which is not "
        "mutual. Use pairing='flip' or 'permute'."
      )
    return jnp.roll(ar, 1)
  perm = jax.random.permutation(key, batch_size).astype(jnp.int32)
  if not involution:
    return perm
  # Random disjoint pairs: consecutive entries of a random order swap places;
  # with an odd batch the last entry of the order is its own partner.
  swapped = ar ^ 1
  swapped = jnp.where(swapped >= batch_size, ar, swapped)
  index = jnp.zeros(batch_size, jnp.int32).at[perm].set(perm[swapped])
  return index


# Rotation constants and key-schedule parity of Threefry-2x32 with 20 rounds (Salmon et al. 2011,
# "Parallel random numbers: as easy as 1, 2, 3", Table 4; the Random123 library's threefry2x32).
_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_THREEFRY_PARITY = 0x1BD11BDA


def _rotate_left(x: jax.Array, r: int) -> jax.Array:
  return (x << jnp.uint32(r)) | (x >> jnp.uint32(32 - r))


def threefry2x32(k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The Threefry-2x32 hash (20 rounds) of the counter pairs ``(x1, x2)`` under the key ``(k1, k2)``.

  Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3", the hash
  behind JAX's default PRNG, written out round by round with constant
  rotations. JAX lowers its own hash on the CPU as a ``fori_loop`` over 5
  groups of 4 rounds (for compile time), which keeps the rotation amounts and
  the state out of registers; unrolled, XLA fuses the 20 rounds into one pass,
  several times faster on the CPU, with the same bits.
  """
  ks = (k1, k2, k1 ^ k2 ^ jnp.uint32(_THREEFRY_PARITY))
  x1, x2 = x1 + ks[0], x2 + ks[1]
  for group in range(5):
    for r in _THREEFRY_ROTATIONS[group % 2]:
      x1 = x1 + x2
      x2 = _rotate_left(x2, r) ^ x1
    x1 = x1 + ks[(group + 1) % 3]
    x2 = x2 + ks[(group + 2) % 3] + jnp.uint32(group + 1)
  return x1, x2


def _is_fast_threefry(key: jax.Array, size: int) -> bool:
  """Whether :func:`normal` can draw `key`'s bits itself: a threefry key in JAX's partitionable mode."""
  return (
    str(jax.random.key_impl(key)) == "threefry2x32"
    and bool(jax.config.jax_threefry_partitionable)  # type: ignore[attr-defined]
    and size < 2**32
    and key.ndim == (0 if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else 1)
  )


def normal(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """float32 standard normals, bit for bit ``jax.random.normal(key, shape)``, faster on the CPU.

  For a threefry key (JAX's default) in JAX's default partitionable mode, the
  bits are JAX's: the hash of the flat index of each element (high word 0,
  low word the index) under the key, the two output words xor-ed; they become
  a uniform on ``(-1, 1)`` from their top 23 bits and a normal by
  ``√2 · erfinv``, as ``jax.random.normal`` does, but the hash is
  :func:`threefry2x32` unrolled. Other keys (``rbg``, a custom PRNG) or the
  non-partitionable mode call ``jax.random.normal``. The test suite checks
  the bits against ``jax.random.normal``.
  """
  size = math.prod(shape)
  if not _is_fast_threefry(key, size):
    return jax.random.normal(key, shape, jnp.float32)
  k1, k2 = jax.random.key_data(key)
  count = jax.lax.iota(jnp.uint32, size).reshape(shape)
  b1, b2 = threefry2x32(k1, k2, jnp.zeros_like(count), count)
  mantissa = ((b1 ^ b2) >> jnp.uint32(32 - 23)) | jnp.uint32(0x3F800000)  # a float in [1, 2)
  floats = jax.lax.bitcast_convert_type(mantissa, jnp.float32) - jnp.float32(1.0)
  lo = jnp.float32(jnp.nextafter(jnp.float32(-1.0), jnp.float32(0.0)))
  uniform = jnp.maximum(lo, floats * (jnp.float32(1.0) - lo) + lo)
  return jnp.float32(jnp.sqrt(2.0)) * jax.lax.erf_inv(uniform)
