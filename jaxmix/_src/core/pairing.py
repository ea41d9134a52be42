"""Who mixes with whom.

* ``flip``: sample ``i`` takes ``B - 1 - i`` (timm). With an odd batch the
  middle sample is its own partner, so it comes out unchanged with its own
  label (its λ is reported as 1).
* ``roll``: sample ``i`` takes ``i - 1`` (torchvision, big_vision).
* ``permute``: a uniformly random permutation (a gather, not a slice). It can
  map a sample to itself (about one sample per batch on average, whatever B);
  such a sample comes back unchanged with λ = 1. In ``pair`` mode the pairs
  are disjoint and only the odd one out of an odd batch is alone.

flip and roll lower to XLA ``reverse`` and ``slice``/``concatenate``, never to a
gather, so they fuse with the blend into one pass over the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def take_partner(x: jax.Array, pairing: str | None, index: jax.Array, axis: int = 0) -> jax.Array:
  """Each sample's partner along `axis`: a slice for flip/roll, a gather for permute.

  On a mesh with Explicit axes (``jax.make_mesh``'s default) a roll or gather
  along a sharded batch axis has no sharding rule under plain ``jit``; there it
  runs under ``jax.sharding.auto_axes`` so XLA picks the communication, and the
  result keeps `x`'s sharding. (``jaxmix.sharding.local`` avoids the communication.)
  """
  return take_slot(x, pairing, index, 1, axis)


def take_slot(x: jax.Array, pairing: str | None, index: jax.Array, slot: int, axis: int = 0) -> jax.Array:
  """The batch seen through source slot `slot` of a k-source plan (slot 0 is `x`, slot 1 the partner).

  `index` holds the slot's source of each sample (`[B]`); ``flip`` takes slot 1
  reversed and slot s ≥ 2 reversed then rolled by s − 1, ``roll`` rolls by
  `slot`, ``permute`` gathers. The one place sources are taken, with the
  sharding rule of :func:`take_partner`.
  """
  if slot == 0:
    return x
  if pairing == "flip":
    flipped = jnp.flip(x, axis)
    if slot == 1:
      return flipped
    take = lambda v, i: jnp.roll(jnp.flip(v, axis), slot - 1, axis)
  elif pairing == "roll":
    take = lambda v, i: jnp.roll(v, slot, axis)
  else:
    take = lambda v, i: jnp.take(v, i, axis=axis)
  sharding = getattr(jax.typeof(x), "sharding", None)
  spec = getattr(sharding, "spec", None)
  mesh = getattr(sharding, "mesh", None)
  explicit = mesh is not None and any(
    t == jax.sharding.AxisType.Explicit for t in getattr(mesh, "axis_types", ())
  )
  if explicit and spec is not None and len(spec) > axis and spec[axis] is not None:
    return jax.sharding.auto_axes(take, out_sharding=sharding)(x, index)
  return take(x, index)


def self_pairs(index: jax.Array) -> jax.Array:
  """bool `[B]`: True where a sample is its own partner (the middle of an odd batch under flip).

  The one self-pair rule: such a sample is left unmixed (λ = 1, output = input).
  """
  return index == jnp.arange(index.shape[0], dtype=index.dtype)


def blend(x: jax.Array, partner: jax.Array, own: jax.Array) -> jax.Array:
  """``own · x + (1 − own) · partner``, exact at the ends: the one blend of two sources.

  Where ``own == 1`` the result is `x` and where ``own == 0`` it is `partner`,
  bit for bit: a source with weight 0 is never read, so an inf, −inf or NaN in
  it cannot turn into NaN through ``0 · inf`` (prob = 0 and λ = 1 are the
  identity; a pixel taken whole from one source ignores the other). The two
  selects fuse with the blend into the same pass.
  """
  mixed = x * own + partner * (1 - own)
  return jnp.where(own == 1, x, jnp.where(own == 0, partner, mixed))


def blend_with_partner(y: jax.Array, own: jax.Array, pairing: str, index: jax.Array) -> jax.Array:
  """``own · y + (1 − own) · y[partner]`` (:func:`blend`), `own` `[B]` broadcast over trailing axes:
  the one label blend."""
  own = own.reshape(own.shape + (1,) * (y.ndim - own.ndim))
  return blend(y, take_partner(y, pairing, index), own)


def weigh_with_partner(
  y: jax.Array, own: jax.Array, partner: jax.Array, pairing: str, index: jax.Array
) -> jax.Array:
  """``own · y + partner · y[partner]`` with two weights `[B]` that need not sum to 1 (TokenMix's
  teacher labels, SnapMix): the two-weight label rule. A source with weight 0 is never read."""
  shape = own.shape + (1,) * (y.ndim - own.ndim)
  own, partner = own.reshape(shape), partner.reshape(shape)
  other = take_partner(y, pairing, index)
  return jnp.where(own == 0, 0.0, own * y) + jnp.where(partner == 0, 0.0, partner * other)
